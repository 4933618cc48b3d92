import Testing

@testable import LuaRuntime

/// os.date is luaexec's wrapper of liblua's (CLuaSupport/baselib.c): a long format goes to liblua
/// a piece at a time with a look at the stop between pieces. Its answers and errors are liblua's.
@Suite("os.date: liblua's answers, in pieces the stop reaches")
struct DateTests {
    static let corpus = #"""
        local out = {}
        local function put(...)
          local t = table.pack(...)
          for i = 1, t.n do
            local v = t[i]
            if type(v) == 'table' then
              local keys = {}
              for k, x in pairs(v) do keys[#keys + 1] = k .. '=' .. tostring(x) end
              table.sort(keys)
              v = '{' .. table.concat(keys, ',') .. '}'
            end
            t[i] = tostring(v)
          end
          out[#out + 1] = table.concat(t, ' | ')
        end
        local when = 1700000000
        -- Every conversion character, alone and after E and O, at a fixed time, UTC and local.
        for c = 32, 126 do
          local ch = string.char(c)
          for _, f in ipairs({'%' .. ch, '%E' .. ch, '%O' .. ch, '!%' .. ch, 'x%' .. ch .. 'y'}) do
            put(f, pcall(os.date, f, when))
          end
        end
        put('default', pcall(os.date, nil, when))
        put('*t', pcall(os.date, '*t', when))
        put('!*t', pcall(os.date, '!*t', when))
        put('*t longer', pcall(os.date, '*tx', when))
        put('*t nul', pcall(os.date, '*t\0x', when))
        put('nul inside', pcall(os.date, '%Y\0%m', when))
        put('trailing %', pcall(os.date, '%Y%', when))
        put('empty', pcall(os.date, '', when))
        put('bang only', pcall(os.date, '!', when))
        put('bad format', pcall(os.date, {}, when))
        put('bad time', pcall(os.date, '%Y', 'x'))
        put('float time', pcall(os.date, '%Y', 1.5))
        put('called by name', pcall(function() return os.date('%Q') end))
        put('called by name, time', pcall(function() return os.date('%Y', {}) end))
        -- Long formats, across the pieces luaexec cuts them in.
        local long = string.rep('%Y-%m-%d %H:%M:%S %% %Ec|', 2000)
        put('long', os.date(long, when) == string.rep(os.date('%Y-%m-%d %H:%M:%S %% %Ec|', when), 2000))
        put('long utc', #os.date('!' .. long, when), os.date('!' .. long, when) == string.rep(os.date('!%Y-%m-%d %H:%M:%S %% %Ec|', when), 2000))
        put('long sum', #os.date(long, when))
        for n = 4090, 4100 do
          put('star at ' .. n, pcall(os.date, string.rep('x', n) .. '*t', when))
          put('bang star at ' .. n, pcall(os.date, '!' .. string.rep('x', n) .. '*t', when))
          put('split %E at ' .. n, pcall(os.date, string.rep('x', n) .. '%Ec%Y', when))
        end
        put('long invalid', pcall(os.date, string.rep('%Y', 5000) .. '%Q and the rest'))
        -- A piece after the first that would start with '!' (UTC) or be '!*t' (a table).
        for n = 4094, 4098 do
          put('bang at ' .. n, pcall(os.date, string.rep('x', n) .. '!', when))
          put('bang star t at ' .. n, pcall(os.date, string.rep('x', n) .. '!*t', when))
          put('bang hour at ' .. n, pcall(os.date, string.rep('x', n) .. '!%H', when))
          put('utc bang at ' .. n, pcall(os.date, '!' .. string.rep('x', n) .. '!%H', when))
        end
        -- A time it cannot represent is the error before an invalid conversion.
        put('unrepresentable', pcall(os.date, '%Q', 1 << 60))
        put('unrepresentable long', pcall(os.date, string.rep('%Y', 3000) .. '%Q', 1 << 60))
        put('long star', #os.date(string.rep('*', 9000) .. 't', when))
        return table.concat(out, '\n')
        """#

    @Test("every conversion, error and long format answers as liblua's os.date, byte for byte")
    func sameAnswersAsLiblua() throws {
        let expected = String(decoding: try PatternTests.liblua(Self.corpus).get(), as: UTF8.self)
        let vm = try LuaVM()
        let actual = try vm.evaluate(Array(Self.corpus.utf8), chunkName: "interactive.lua", rendering: .text).outcome.get()
        guard case .string(let bytes) = actual.first else { Issue.record("no string: \(actual)"); return }
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        let expectedLines = expected.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == expectedLines.count)
        for (line, expectedLine) in zip(lines, expectedLines) where line != expectedLine {
            Issue.record("luaexec: \(line)\nliblua:  \(expectedLine)")
        }
        // The corpus reached what it tests (checked without printing 300 KB of lines).
        let reached = [
            expectedLines.contains("long | true"),
            expectedLines.contains("%Q | false | bad argument #1 to 'os.date' (invalid conversion specifier '%Q')"),
            expectedLines.contains {
                $0.hasPrefix("called by name | false | interactive.lua:")
                    && $0.hasSuffix(": bad argument #1 to 'date' (invalid conversion specifier '%Q')")
            },
            expectedLines.contains("long invalid | false | bad argument #1 to 'os.date' (invalid conversion specifier '%Q and the rest')"),
        ]
        #expect(reached == [true, true, true, true])
    }
}
