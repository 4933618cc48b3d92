import Testing

@testable import LuaRuntime

/// table.insert, remove, move, concat and sort are luaexec's (CLuaSupport/tablelib.c): liblua's,
/// with a look at the stop in each loop, since they run in C for as long as their caller asks
/// (EscapeTests has the chunks that would run for hours); so is string.rep (patterns.c), which
/// made an empty string by copying nothing n times. Their answers, errors and the order in which
/// they read and write through metamethods are liblua's.
@Suite("The table library: liblua's answers, and the stop reaches inside")
struct TableLibraryTests {
    @Test("a corpus of calls gives liblua's answers, errors and metamethod calls, line by line")
    func sameAnswersAsLiblua() throws {
        guard let (expectedLines, actualLines, _) = try PatternTests.answers(of: Self.corpus) else { return }
        #expect(String(decoding: expectedLines.last ?? [], as: UTF8.self) == "cases: 77")
        #expect(expectedLines.count == actualLines.count)
        for (index, (want, got)) in zip(expectedLines, actualLines).enumerated() where want != got {
            Issue.record("""
                case \(index + 1):
                liblua:  \(String(decoding: want, as: UTF8.self))
                luaexec: \(String(decoding: got, as: UTF8.self))
                """)
        }
    }

    /// Each case is `label: ` and what pcall returned: tables by their raw array part, a proxy's
    /// metamethod calls in order (`len`, `getK`, `setK=V`).
    static let corpus = #"""
local out = {}
local function show(v)
  if type(v) ~= "table" then return tostring(v) end
  local parts = {}
  for i = 1, rawlen(v) do parts[i] = tostring(rawget(v, i)) end
  return "{" .. table.concat(parts, ",") .. "}"
end
local function case(label, f, ...)
  local r = table.pack(pcall(f, ...))
  local parts = {}
  for i = 1, r.n do parts[i] = show(r[i]) end
  out[#out + 1] = label .. ": " .. table.concat(parts, " ")
end
local function T(...) return {...} end
local function proxy(n)
  local log, store = {}, {}
  local p = setmetatable({}, {
    __len = function() log[#log + 1] = "len" return n end,
    __index = function(_, k) log[#log + 1] = "get" .. tostring(k) return store[k] or ("v" .. tostring(k)) end,
    __newindex = function(_, k, v) log[#log + 1] = "set" .. tostring(k) .. "=" .. tostring(v) store[k] = v end,
  })
  return p, log
end
local function lcg(n)
  local x, t = 12345, {}
  for i = 1, n do x = (x * 1103515245 + 12345) % 2147483648 t[i] = x end
  return t
end

case("insert end", function() local t = T(1, 2, 3) table.insert(t, 4) return t end)
case("insert front", function() local t = T(1, 2, 3) table.insert(t, 1, 0) return t end)
case("insert middle", function() local t = T(1, 2, 3) table.insert(t, 2, "x") return t end)
case("insert at n+1", function() local t = T(1, 2, 3) table.insert(t, 4, "y") return t end)
case("insert past", function() local t = T(1, 2, 3) table.insert(t, 5, "z") return t end)
case("insert zero", function() local t = T(1, 2, 3) table.insert(t, 0, "z") return t end)
case("insert none", table.insert, {})
case("insert many", table.insert, {}, 1, 2, 3)
case("insert nil table", table.insert, nil, 1)
case("insert pos type", table.insert, {}, "a", 1)
case("insert pos float", table.insert, {}, 1.5, 1)
case("insert empty", function() local t = {} table.insert(t, "a") table.insert(t, 1, "b") return t end)
case("insert string", table.insert, "abc", 1)
case("insert direct", function() table.insert(nil, 1) end)
case("insert proxy", function() local p, log = proxy(3) table.insert(p, 2, "x") return log end)
case("remove last", function() local t = T(1, 2, 3) return table.remove(t), t end)
case("remove first", function() local t = T(1, 2, 3) return table.remove(t, 1), t end)
case("remove empty", function() local t = {} return table.remove(t), t end)
case("remove empty 0", function() local t = {} return table.remove(t, 0), t end)
case("remove n+1", function() local t = T(1, 2, 3) return table.remove(t, 4), t end)
case("remove n+2", table.remove, {1, 2, 3}, 5)
case("remove 0 of 3", table.remove, {1, 2, 3}, 0)
case("remove neg", table.remove, {1, 2, 3}, -1)
case("remove zero key", function() local t = {[0] = "z"} return table.remove(t, 0), t[0] end)
case("remove proxy", function() local p, log = proxy(3) local v = table.remove(p, 1) return v, log end)
case("move forward", function() return table.move({1, 2, 3, 4, 5}, 1, 3, 3) end)
case("move backward", function() return table.move({1, 2, 3, 4, 5}, 3, 5, 1) end)
case("move other", function() return table.move({1, 2, 3}, 1, 3, 2, {"a", "b", "c", "d"}) end)
case("move empty range", function() return table.move({1, 2, 3}, 3, 1, 1) end)
case("move negative", function() local t = table.move({[-1] = 1, [0] = 2, 3}, -1, 1, 1) return t end)
case("move too many", table.move, {}, -1, math.maxinteger, 1)
case("move wrap", table.move, {}, 1, math.maxinteger, 2)
case("move wrap 2", table.move, {}, 1, 10, math.maxinteger)
case("move bad dest", table.move, {}, 1, 2, 3, 5)
case("move bad src", table.move, 5, 1, 2, 3)
case("move args", table.move, {}, 1)
case("move into itself", function() local t = {1, 2, 3, 4} return table.move(t, 1, 3, 2, t) end)
case("move proxy", function() local p, log = proxy(0) table.move(p, 1, 3, 2) return log end)
case("concat", table.concat, {1, 2, 3})
case("concat sep", table.concat, {1, "a", 2.5}, ", ")
case("concat range", table.concat, {"a", "b", "c", "d"}, "-", 2, 3)
case("concat empty range", table.concat, {"a"}, "-", 3, 2)
case("concat one", table.concat, {"a", "b"}, "-", 2, 2)
case("concat bad value", table.concat, {1, {}, 3})
case("concat nil value", table.concat, {}, "x", 1, 1)
case("concat bad sep", table.concat, {1}, {})
case("concat nil", table.concat, nil)
case("concat string", table.concat, "abc")
case("concat float index", table.concat, {"a"}, "", 1.5)
case("concat huge index", table.concat, {}, "", math.maxinteger, math.maxinteger)
case("concat least index", table.concat, {}, "", math.mininteger, math.mininteger)
case("concat proxy", function() local p, log = proxy(3) return table.concat(p, "+"), log end)
case("sort numbers", function()
  local t = lcg(300) table.sort(t)
  local ok = true
  for i = 2, #t do ok = ok and t[i - 1] <= t[i] end
  return ok, t[1], t[150], t[300]
end)
case("sort desc", function() local t = lcg(300) table.sort(t, function(a, b) return a > b end) return t[1], t[300] end)
case("sort strings", function() local t = {"pear", "apple", "fig", "banana", "cherry"} table.sort(t) return t end)
case("sort mixed", table.sort, {1, "x", 2})
case("sort bad comparator", table.sort, {3, 1, 2}, 5)
case("sort bad comparator, one element", table.sort, {1}, 5)
case("sort invalid order", table.sort, {5, 3, 8, 1, 9, 2, 7, 4, 6, 10, 12, 11}, function() return true end)
case("sort nil", table.sort, nil)
case("sort C comparator", function() local t = {5, -1, 3, 0} table.sort(t, math.ult) return t end)
case("sort failing comparator", table.sort, {3, 2, 1}, function(a, b) error("cmp " .. a .. b) end)
case("sort sorted", function() local t = {} for i = 1, 1000 do t[i] = i end table.sort(t) return t[1], t[1000] end)
case("sort equal", function() local t = {} for i = 1, 500 do t[i] = 7 end table.sort(t) return t[1], t[500] end)
case("sort proxy", function() local p, log = proxy(5) table.sort(p) return log end)
case("rep", string.rep, "ab", 3)
case("rep sep", string.rep, "ab", 3, ",")
case("rep empty", string.rep, "", 1000)
case("rep empty sep", string.rep, "", 4, "-")
case("rep zero", string.rep, "x", 0)
case("rep negative", string.rep, "x", -1)
case("rep too large", string.rep, "x", 1 << 40)
case("rep too large sep", string.rep, "", 1 << 40, "-")
case("rep nil", string.rep, nil, 2)
case("rep float", string.rep, "x", 1.5)
case("rep bad sep", string.rep, "x", 2, {})
case("rep method", function() return ("xy"):rep(2, "|") end)
out[#out + 1] = "cases: " .. #out
return table.concat(out, "\n")
"""#
}
