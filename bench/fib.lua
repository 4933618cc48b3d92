-- CPU-bound chunk of `make bench`: recursive fib(32), timed inside Lua with os.clock, so that
-- lua5.4 and luaexec are measured on exactly the same code. Returns milliseconds.
local function fib(n) if n < 2 then return n end return fib(n - 1) + fib(n - 2) end
local start = os.clock()
local value = fib(32)
assert(value == 2178309)
return string.format("%.1f", (os.clock() - start) * 1000)
