import CLua
import Synchronization
import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import LuaRuntime

/// string.find, match, gmatch and gsub are luaexec's own (CLuaSupport/patterns.c): liblua's
/// matcher with a step budget, so that the stop reaches a call that backtracks for minutes.
@Suite("Pattern matching: liblua's answers, and the stop reaches inside")
struct PatternTests {
    /// Runs `script` in a plain state of the linked liblua, with its own string functions, and
    /// returns the string it returns.
    static func liblua(_ script: String) -> Result<[UInt8], PatternCorpusError> {
        guard let state = luaL_newstate() else { return .failure(.init(message: "no state")) }
        defer { lua_close(state) }
        luaL_openlibs(state)
        let bytes = Array(script.utf8)
        let loaded = bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) {
                luaL_loadbufferx(state, $0.baseAddress, $0.count, LuaVM.source("interactive.lua"), "t")
            }
        }
        guard loaded == LUA_OK, clua_pcall(state, 0, 1, 0) == LUA_OK else {
            return .failure(.init(message: clua_tostring(state, -1).map { String(cString: $0) } ?? "?"))
        }
        var length = 0
        guard let text = lua_tolstring(state, -1, &length) else { return .failure(.init(message: "no string")) }
        return .success(Array(UnsafeRawBufferPointer(start: text, count: length)))
    }

    /// The string `corpus` returns, from the linked liblua and from a luaexec state, line by
    /// line; nil (recorded) when luaexec's run returned no string.
    static func answers(
        of corpus: String
    ) throws -> (liblua: [ArraySlice<UInt8>], luaexec: [ArraySlice<UInt8>], whole: ([UInt8], [UInt8]))? {
        let expected = try liblua(corpus).get()
        let vm = try LuaVM()
        guard case .string(let actual) = try vm.evaluate(Array(corpus.utf8), chunkName: "interactive.lua", rendering: .text).outcome.get().first else {
            Issue.record("the corpus returned no string")
            return nil
        }
        return (
            expected.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false),
            actual.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false), (expected, actual)
        )
    }

    @Test("the corpus and the fuzz give liblua's answers and errors, byte for byte")
    func sameAnswersAsLiblua() throws {
        guard let (expectedLines, actualLines, (expected, actual)) = try Self.answers(of: Self.corpus) else { return }
        // The last line counts the cases; tens of thousands, most of them fuzzed.
        let last = String(decoding: expectedLines.last ?? [], as: UTF8.self)
        #expect(last.hasPrefix("cases: ") && (Int(last.dropFirst(7)) ?? 0) > 40_000, "\(last)")
        if let index = zip(expectedLines, actualLines).enumerated().first(where: { $0.element.0 != $0.element.1 })?.offset {
            Issue.record("""
                first difference, case \(index + 1):
                liblua:  \(String(decoding: expectedLines[index], as: UTF8.self))
                luaexec: \(String(decoding: actualLines[index], as: UTF8.self))
                """)
        }
        #expect(expectedLines.count == actualLines.count)
        #expect(expected == actual)
    }

    /// Calls that take minutes in liblua (backtracking, %b over unbalanced text, a replacement
    /// string of many %0 over empty matches), alone, caught by pcall, and in a coroutine.
    static let slowChunks = [
        #"return string.rep("a", 300):find(string.rep("a*", 20) .. "b")"#,
        #"return string.rep("a", 300):match(string.rep("a*", 20) .. "b")"#,
        #"for m in string.rep("a", 300):gmatch(string.rep("a*", 20) .. "b") do end"#,
        #"return (string.rep("a", 300):gsub(string.rep("a*", 20) .. "b", "x"))"#,
        #"return ("a"):rep(5000):match(".-.-.-.-.-.-.-b")"#,
        #"return ("a"):rep(150):match(("a?"):rep(150) .. "b")"#,
        #"return (("("):rep(1000000):gsub("%b()", ""))"#,
        #"return #(("a"):rep(100000):gsub("", ("%0"):rep(100000)))"#,
        #"for i = 1, 10 do pcall(string.find, string.rep("a", 300), string.rep("a*", 20) .. "b") end"#,
        #"return coroutine.wrap(function() return string.rep("a", 300):find(string.rep("a*", 20) .. "b") end)()"#,
    ]

    @Test("the time limit ends a pattern call that would run for minutes; the state survives", arguments: slowChunks)
    func timeLimit(chunk: String) throws {
        let executor = try LuaExecutorTests.executor(timeLimit: .milliseconds(300))
        let evaluation = try LuaExecutorTests.eval(executor, chunk)
        guard case .failure(let failure) = evaluation.outcome else {
            Issue.record("the chunk completed")
            return
        }
        #expect(failure.kind == .timeout)
        #expect(try LuaExecutorTests.eval(executor, "return 1+1").outcome.get() == [.string("2")])
    }

    @Test("an administrator's interrupt ends a pattern call that would run for minutes", arguments: [
        slowChunks[0], slowChunks[2], slowChunks[3],
    ])
    func interrupt(chunk: String) throws {
        let executor = try LuaExecutorTests.executor(timeLimit: .seconds(600))
        let interrupted = Mutex(false)
        Thread.detach {
            while executor.status.running == nil { usleep(1_000) }
            // Well inside the call: the chunk reaches it within microseconds.
            usleep(200_000)
            interrupted.withLock { $0 = executor.interruptRunning() }
        }
        let evaluation = try LuaExecutorTests.eval(executor, chunk)
        #expect(interrupted.withLock { $0 })
        guard case .failure(let failure) = evaluation.outcome else {
            Issue.record("the chunk completed")
            return
        }
        #expect(failure.kind == .interrupted)
        #expect(try LuaExecutorTests.eval(executor, "return 1+1").outcome.get() == [.string("2")])
    }
}

struct PatternCorpusError: Error {
    var message: String
}

extension PatternTests {
    /// Returns one line per case: the call, "ok" or "error", and the values or the message. The
    /// hand-written cases follow the manual (§6.4.1) and what Lua's own pm.lua exercises; the
    /// fuzz draws a few thousand short patterns from a small alphabet with a fixed seed.
    static let corpus = #"""
local out, count = {}, 0

local function show(v)
  local t = type(v)
  if t == "string" then return string.format("%q", v)
  elseif t == "number" then return math.type(v) .. ":" .. string.format("%q", v)
  elseif t == "nil" or t == "boolean" then return tostring(v)
  else return t end
end

local function record(label, ok, ...)
  count = count + 1
  local parts = {label, ok and "ok" or "error"}
  for i = 1, select("#", ...) do parts[#parts + 1] = show((select(i, ...))) end
  out[#out + 1] = table.concat(parts, " ")
end

local function args(...)
  local parts = {}
  for i = 1, select("#", ...) do parts[i] = show((select(i, ...))) end
  return table.concat(parts, ", ")
end

-- gmatch's results, every capture of every iteration, as one string.
local function collect(s, p, init)
  local it = string.gmatch(s, p, init)
  local all = {}
  for _ = 1, 1000 do
    local r = table.pack(it())
    if r[1] == nil then break end
    local one = {}
    for i = 1, r.n do one[i] = show(r[i]) end
    all[#all + 1] = table.concat(one, ",")
  end
  return table.concat(all, ";")
end

local function find(...) record("find(" .. args(...) .. ")", pcall(string.find, ...)) end
local function match(...) record("match(" .. args(...) .. ")", pcall(string.match, ...)) end
local function gsub(...) record("gsub(" .. args(...) .. ")", pcall(string.gsub, ...)) end
local function gmatch(...) record("gmatch(" .. args(...) .. ")", pcall(collect, ...)) end

-- Every function on one subject and pattern.
local function all(s, p, init)
  find(s, p, init)
  match(s, p, init)
  gmatch(s, p, init)
  gsub(s, p, "<%0>")
end

local subjects = {
  "", "a", "aaab", "aaa", "alo123alo", "hello world from Lua", "  x  ", "(foo(bar))baz",
  "THE (quick) fox", "f[o]o-bar%", "a\0b\0c", "\n\t x\r\f\v", "abc=def, ghi = jkl",
  "0x1F 077 9e3 -1.5", "[[x]]", "^$", "$a^", "\195\161\195\169", "a.b.c", "this is a test",
  "\255\128\1\127", "%%a", "a-b-c", "key = value; k2=v2", "((a)", "'q' \"d\"", "x%1y",
}

local patterns = {
  -- single characters, classes and their complements
  "a", ".", "%a", "%A", "%d", "%D", "%s", "%S", "%w", "%W", "%p", "%P", "%x", "%X",
  "%l", "%L", "%u", "%U", "%c", "%C", "%g", "%G", "%z", "%Z", "%.", "%%", "%-", "%]", "%(", "%)",
  "%^", "%$", "%[", "%*", "%?", "%+", "\0", "%\0", "%1", "%0", "%q",
  -- sets
  "[a-c]", "[^a-c]", "[%a_][%w_]*", "[]]", "[^]]", "[a-]", "[-a]", "[%]]", "[a%-z]", "[%w%-]+",
  "[^%s]+", "[a-c-e]", "[z-a]", "[%a%d]+", "[^%a%d]+", "[.]", "[%.]", "[^.]", "[%%]", "[\0-\31]",
  "[\128-\255]+", "[%^]", "[^^]", "[a^]", "[]", "[^]", "[%", "[a", "[a-", "[^%]", "[%]", "[-]",
  "[--]", "[a-z-]+", "[%w%]]", "[%D]", "[%S%s]",
  -- repetition
  "a*", "a+", "a-", "a?", ".-", ".*", ".+", ".?", "a-b", "a*b", "a+b", "a?b", "[ab]*c",
  "x*", ".-$", "%a*", "%a+", "%a-", "%a?", "%d+%.?%d*", "[%a]-[%d]", "a**", "a+-", "*", "+", "-",
  "?", "a?a?a?aaa", ".-.-.-b",
  -- anchors
  "^a", "^", "$", "^$", "a$", "^a*$", "$a", "a$b", "^^", "^%$", "^.-$", "^(.-)$", ".$", "^.",
  "%$$", "^%^",
  -- captures
  "()", "(a)", "(a*(.)%w(%s*))", "()a()", "(%a+)%s*=%s*(%w+)", "((a)(b))", "(h)(e)(l)(l)(o)",
  "(", ")", "(()", "())", "(.)%1", "(%w+)%s+%1", "(a)%2", "(a%1)", "(.-)(%1)", "%s*(%S+)%s*",
  "(.-)%s", "^(%s*)(.-)(%s*)$", "(([%w])%2)", "()()()", "(%a)(%a)%2%1", "(.)%0", "((.)%1)",
  "(a)(", "(a))", "((a)", "(.)-", "(.)*", "(%a+)(%d+)",
  -- balance
  "%b()", "%b[]", "%b''", "%bxy", "%b", "%b(", "(%b())", "%b)(", "%b%%", "%bab", "%b()%b()",
  "%b\0\0", "%baa",
  -- frontier
  "%f[%w]%w+", "%f[%W]", "%f[%a]", "%f[%l]", "%f[%S].-%f[%s]", "%f", "%fa", "%f[a", "%f[^]",
  "%f[%w]$", "%f[\0]", "%f[^\0]", "%f[%a]%a*%f[%A]", "%f[%p]", "%f[]]", "()%f[%s]",
  -- malformed
  "a%", "%", "%g%", "(%", "[%a",
}

for _, s in ipairs(subjects) do
  for _, p in ipairs(patterns) do all(s, p) end
end

-- init: negative, zero, within, at and past the end, and the extremes
local inits = {math.mininteger, -100, -10, -4, -3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 10, 100, math.maxinteger, 2.0, "2"}
for _, init in ipairs(inits) do
  for _, p in ipairs({"", "a", "c", "^a", "^c", "b*", "()", ".-", "$", "x", "%w", "(", "[", "%"}) do
    all("abc", p, init)
    find("abc", p, init, true)
  end
  find("", "", init)
  find("", "", init, true)
  gmatch("", "", init)
  match("", "()", init)
end
find("abc", "b", 2.5)
find("abc", "b", "x")
find("abc", "b", {})
gmatch("abc", ".", 1.5)

-- plain find: specials taken literally, zeros, the fourth argument's truthiness
for _, p in ipairs({"", "a", "a.", ".", "%a", "[a]", "(", ")", "a\0", "\0", "^a", "a$", "*", "b\0c"}) do
  for _, s in ipairs({"", "a.a", "xa.b%a[a]()^a$*", "a\0b\0c", "b\0c\0", "a"}) do
    find(s, p, 1, true)
    find(s, p, nil, true)
    find(s, p, 1, false)
    find(s, p, 1, 0)
    find(s, p, -2, "yes")
  end
end
find("a\0o a\0o a\0o", "a", 1)
find("a\0o a\0o a\0o", "a\0o", 2)
find("a\0o a\0o a\0o", "a\0o", 9)
find("a\0a\0a\0a\0\0ab", "\0ab", 2)
find("a\0a\0a\0a\0\0ab", "b")
find("a\0a\0a\0a\0\0ab", "b\0")
find("", "\0")
find("alo123alo", "12")
find("alo123alo", "^12")
find(string.rep("a", 50) .. "b", string.rep("a", 30) .. "b")

-- numbers are strings here
find(12345, 34)
find(12345, 3.0)
match(1.5, "%d")
gsub(12345, 3, 9)
gsub(123, "%d", 4.5)
gmatch(1e15, "%d")

-- argument errors
find(nil, "x")
find("x", nil)
find({}, "x")
find("x")
match()
gmatch(nil, "x")
gmatch("x", {})
gsub("x", "x")
gsub("x", "x", nil)
gsub("x", "x", true)
gsub(nil, "x", "y")
gsub("x", nil, "y")
gsub("x", "x", "y", "z")
gsub("x", "x", "y", 1.5)

-- gsub: replacement strings
local repls = {"", "-", "%0", "%1", "%2", "%%", "%", "%a", "[%0|%1]", "%0%0%0", "%1%2", "x%9",
  "%%1", "\0%0\0", "%", "%10", "100%"}
for _, p in ipairs({"", "%w", "%w+", "(%w)", "(%w)(%w)", "()", "(%w)()", "(b", "^%w", "%w*", "x*", "$"}) do
  for _, r in ipairs(repls) do
    gsub("abc de", p, r)
  end
end
gsub("hello world", "(%w+)", "%1 %1")
gsub("hello world", "%w+", "%0 %0", 1)
gsub("hello world from Lua", "(%w+)%s*(%w+)", "%2 %1")
gsub("abc", "%w", "%%%0")
gsub("abc", "", "-")
gsub("abc", "b*", "-")
gsub("", "^", "x")
gsub("", "", "x")
gsub("abc", "^", "x")
gsub("abc", "$", "x")
gsub("abc", "^a*", "x")
gsub("aaa", "^a", "x")
gsub("abc", "%w*", "-")
gsub("abc", "%w-", "-")
gsub("a b c", " *", "-")
gsub("  trim  me  ", "^%s*(.-)%s*$", "%1")
gsub("x = 1, y = 2", "(%w+)%s*=%s*(%w+)", "%2=%1")
gsub("abc", "()", "%1")
gsub("abc", "(b)()", "%2%1")
gsub("abc", "b", 5)
gsub("abc", "b", 1.5)
gsub("abc", "b", -0.0)
gsub("abc", "b", math.mininteger)
gsub("a\0b\0c", "\0", "%%")
gsub("a\0b\0c", "%z", "Z")

-- gsub: max_n
for _, n in ipairs({math.mininteger, -1, 0, 1, 2, 3, 4, 100, math.maxinteger, 2.0, "2", "0x2"}) do
  gsub("abcabc", "b", "x", n)
  gsub("abc", "", "-", n)
  gsub("abc", "%w*", "-", n)
  gsub("abc", "^a", "-", n)
  gsub("aaa", "a", {a = "b"}, n)
  gsub("aaa", "a", function() return "f" end, n)
end

-- gsub: tables
local t = {a = "1", b = true, c = false, d = 2, e = 2.5, f = {}, g = "", ["1"] = "one", [2] = "two"}
for _, s in ipairs({"abcdefgh", "a1b2c", "x", ""}) do
  for _, p in ipairs({"%w", "(%w)", "(%w)(%w)", "()", "%d", "(%d)", "", "%w*", "()%w"}) do
    gsub(s, p, t)
  end
end
gsub("abc", "%w", setmetatable({}, {__index = function(_, k) return k:upper() end}))
gsub("abc", "%w", setmetatable({}, {__index = function(_, k) return nil end}))
gsub("abc", "%w", setmetatable({}, {__index = function(_, k) error("index " .. k, 0) end}))

-- gsub: functions
local fs = {
  function(...) return nil end,
  function(...) return false end,
  function(...) return true end,
  function(...) return select("#", ...) end,
  function(...) return table.concat({...}, "|") end,
  function(a) return a .. a, "ignored" end,
  function(...) return {} end,
  function(...) return end,
  function(...) error("boom", 0) end,
  function(...) error({}) end,
  function(a) return a == "b" and "B" end,
  function(a) return 1.25 end,
  function(...) return print end,
}
for _, f in ipairs(fs) do
  for _, p in ipairs({"%w", "(%w)(%w)", "()", "(%w)()", "", "(b"}) do
    gsub("abc", p, f)
  end
end
-- a function that matches while gsub matches: each call has its own state
gsub("ab cd", "%w+", function(w) return (string.gsub(w, "%w", function(c) return string.find("xyzab", c) end)) end)

-- gmatch: empty matches, the lastmatch rule, init, anchors as characters
for _, s in ipairs({"", "a", "abc", "bab", "a,b,,c", "hello world from Lua", "^a^a", "a1b22c333"}) do
  for _, p in ipairs({"", "a*", "%a*", "%a+", "()", "(%w+)=(%w+)", ",", "[^,]*", "^a", "%d*", "(%a)(%d*)", "$", "^", "%f[%w]"}) do
    for _, init in ipairs({1, 2, 0, -1, -3, 4, 5, 100, -100}) do gmatch(s, p, init) end
  end
end
do
  local it = string.gmatch("a b c", "%a")
  record("gmatch iterated by hand", true, it(), it(), it(), it(), it())
  local it2 = string.gmatch("abc", "(")
  record("gmatch unfinished", pcall(it2))
end

-- limits: captures, depth
local long = string.rep("a", 300)
match(long, string.rep("()", 32))
match(long, string.rep("()", 33))
match(long, string.rep("(a)", 32))
match(long, string.rep("(a)", 33))
find(long, string.rep("(a", 33) .. string.rep(")", 33))
gsub(long, string.rep("()", 33), "")
gmatch(long, string.rep("()", 40))
match(long, string.rep("a?", 199))
match(long, string.rep("a?", 198))
match(long, string.rep("a?", 200))
match(long, string.rep("a?", 300))
match(long, string.rep(".?", 300))
match(long, string.rep("(a)?", 20))
find(string.rep("a", 250), string.rep("a", 250))
match(long, string.rep(".", 299) .. "$")
match(string.rep("a", 60), string.rep("a-", 3) .. "b")
match(string.rep("a", 30), string.rep("a*", 5) .. "b")
find(string.rep("(", 100) .. string.rep(")", 99), "%b()")
find(string.rep("(", 100) .. string.rep(")", 100), "%b()")
gsub(string.rep("x y ", 50), "%f[%w]%w+", "%0%0")

-- fuzz: short patterns over a small alphabet, against short subjects
local seed = 12345
local function rand(n)
  seed = (seed * 1103515245 + 12345) % 2147483648
  return seed % n + 1
end
local tokens = {
  "a", "b", "c", "x", " ", "1", ".", "%a", "%d", "%s", "%w", "%p", "%x", "%l", "%u", "%c", "%g",
  "%A", "%S", "%W", "[ab]", "[^ab]", "[a-c]", "[%d%s]", "[^%w]", "*", "+", "-", "?", "*", "+", "-",
  "?", "^", "$", "()", "(", ")", "(", ")", "%b()", "%f[%w]", "%f[%W]", "%1", "%2", "%", "[", "]",
  "%%", "%.", "%(",
}
local letters = {"a", "b", "c", "x", "1", "2", " ", "(", ")", "%", ".", "A", "\0", "\n", "a", "b"}
local repls = {"<%0>", "%1", "%%", "-", "%2", "[%1|%0]"}
local fuzzed = 0
for _ = 1, 3000 do
  local p = {}
  for i = 1, rand(6) do p[i] = tokens[rand(#tokens)] end
  p = table.concat(p)
  for _ = 1, 2 do
    local s = {}
    for i = 1, rand(11) - 1 do s[i] = letters[rand(#letters)] end
    s = table.concat(s)
    local init = rand(3) == 1 and rand(25) - 13 or nil
    find(s, p, init)
    match(s, p, init)
    gmatch(s, p, init)
    gsub(s, p, repls[rand(#repls)], rand(4) == 1 and rand(4) - 1 or nil)
    if rand(8) == 1 then gsub(s, p, {a = "A", ["1"] = false, [" "] = 3}) end
    if rand(8) == 1 then gsub(s, p, function(...) return select("#", ...) .. "" end) end
    fuzzed = fuzzed + 1
  end
end

out[#out + 1] = "cases: " .. count
return table.concat(out, "\n")
"""#
}
