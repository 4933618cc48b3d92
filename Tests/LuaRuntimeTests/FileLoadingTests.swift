import Testing

#if canImport(Glibc)
import Glibc
#endif

@testable import LuaRuntime

/// loadfile, dofile and require's Lua searcher are luaexec's own (CLuaSupport/stop.c,
/// lx_loadfile_checked): the file is handed to the parser in slices with a look at the stop, as a
/// string given to `load` is. Their answers and messages are liblua's (luaL_loadfilex), but for
/// precompiled chunks, which luaexec refuses everywhere.
@Suite("Loading files: liblua's answers, compiled in slices")
struct FileLoadingTests {
    /// Writes the cases into `dir`, loads each every way, and returns one line per answer.
    static func corpus(_ dir: String) -> String {
        #"""
        local dir = '\#(dir)/'
        local out = {}
        local function put(...)
          local t = table.pack(...)
          for i = 1, t.n do t[i] = type(t[i]) == 'function' and 'function' or tostring(t[i]) end
          out[#out + 1] = table.concat(t, ' | ')
        end
        local cases = {
          {'plain', 'return 1, ...'},
          {'shebang', '#!/usr/bin/lua\nreturn debug.getinfo(1, "l").currentline'},
          {'shebang-only', '#!/usr/bin/lua'},
          {'shebang-no-newline-after', '# comment only, then the end'},
          {'bom', '\239\187\191return "bom"'},
          {'bom-shebang', '\239\187\191# comment\nreturn "both", debug.getinfo(1, "l").currentline'},
          {'half-bom', '\239\187return 1'},
          {'bom-only', '\239\187\191'},
          {'empty', ''},
          {'syntax', 'return return'},
          {'error-line-three', '\n\nerror("line three")'},
          {'crlf', 'local x = 1\r\nreturn x, debug.getinfo(1, "l").currentline'},
          {'long', 'return ' .. string.rep('1 + ', 5000) .. '1'},
          {'long-string', 'return #[[' .. string.rep('x', 1000) .. ']]'},
          {'env', 'return print == nil, marker'},
        }
        for _, case in ipairs(cases) do
          local name, text = case[1], case[2]
          local path = dir .. name .. '.lua'
          local f = assert(io.open(path, 'wb')) f:write(text) f:close()
          local chunk, err = loadfile(path)
          put(name, 'loadfile', chunk, err)
          if chunk then put(name, 'call', pcall(chunk, 'arg')) end
          put(name, 'dofile', pcall(dofile, path))
          local withenv = loadfile(path, 't', {marker = 'env', debug = debug, error = error})
          if withenv then put(name, 'env', pcall(withenv)) end
          put(name, 'mode b', loadfile(path, 'b'))
        end
        put('missing', loadfile(dir .. 'missing.lua'))
        put('missing dofile', pcall(dofile, dir .. 'missing.lua'))
        put('directory', loadfile(dir))
        put('bad name', pcall(loadfile, {}))
        package.path = dir .. '?.lua'
        put('require', pcall(require, 'plain'))
        put('require again', pcall(require, 'plain'))
        put('require syntax', pcall(require, 'syntax'))
        put('require missing', pcall(require, 'nomodule'))
        package.path = 42
        put('require bad path', pcall(require, 'other'))
        return table.concat(out, '\n')
        """#
    }

    @Test("loadfile, dofile and require answer as liblua's, byte for byte")
    func sameAnswersAsLiblua() throws {
        let dir = try FileFixture.temporaryDirectory("luaexec-loadfile")
        defer { FileFixture.remove(dir) }
        let corpus = Self.corpus(dir)
        let expected = String(decoding: try PatternTests.liblua(corpus).get(), as: UTF8.self)
        let vm = try LuaVM()
        let actual = try vm.evaluate(Array(corpus.utf8), chunkName: "interactive.lua", rendering: .text).outcome.get()
        #expect(actual.count == 1)
        guard case .string(let bytes) = actual.first else { Issue.record("no string: \(actual)"); return }
        let lines = String(decoding: bytes, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false)
        let expectedLines = expected.split(separator: "\n", omittingEmptySubsequences: false)
        #expect(lines.count == expectedLines.count)
        // One line at a time, so that a difference names its case.
        for (line, expectedLine) in zip(lines, expectedLines) { #expect(line == expectedLine) }
        // The corpus reached what it tests: a few answers, as a reader would check them.
        #expect(expectedLines.contains("shebang | call | true | 2"))
        #expect(expectedLines.contains("bom | call | true | bom"))
        #expect(expectedLines.contains("missing | nil | cannot open \(dir)/missing.lua: No such file or directory"))
        #expect(expectedLines.contains("require | true | 1 | \(dir)/plain.lua"))
    }

    @Test("loadfile() and dofile() read an empty standard input, as io.stdin is, not the daemon's fd 0")
    func standardInput() throws {
        // fd 0 made a pipe that holds a chunk: liblua's loadfile() would compile it (and, had the
        // pipe stayed open, wait for its end with the state held).
        let saved = dup(0)
        var ends: [Int32] = [0, 0]
        #expect(pipe(&ends) == 0)
        let text = "return 'from fd 0'"
        #expect(write(ends[1], text, text.utf8.count) == text.utf8.count)
        close(ends[1])
        dup2(ends[0], 0)
        close(ends[0])
        defer {
            dup2(saved, 0)
            close(saved)
        }
        let vm = try LuaVM()
        let answers = try vm.evaluate(
            Array("return select('#', dofile()), loadfile()(), debug.getinfo(loadfile(nil, 't', {})).source".utf8),
            chunkName: "interactive.lua", rendering: .text
        ).outcome.get()
        #expect(answers == [.string(Array("0".utf8)), .nil, .string(Array("=stdin".utf8))])
    }

    @Test("loadfile of a FIFO, a terminal or a pipe with nothing to read answers at once, as a read error")
    func nothingToRead() throws {
        let dir = try FileFixture.temporaryDirectory("luaexec-loadfile")
        defer { FileFixture.remove(dir) }
        let fifo = dir + "/fifo"
        #expect(mkfifo(fifo, 0o600) == 0)
        // A writer that writes nothing for 2 s: liblua's loadfile waited for it, in one C call.
        let writer = open(fifo, O_RDWR)
        #expect(writer >= 0)
        Thread.detach {
            usleep(2_000_000)
            _ = write(writer, "return 1", 8)
            close(writer)
        }
        let vm = try LuaVM()
        let clock = ContinuousClock()
        let started = clock.now
        let answers = try vm.evaluate(
            Array("return loadfile('\(fifo)')".utf8), chunkName: "interactive.lua", rendering: .text
        ).outcome.get()
        let waited = clock.now - started
        #expect(answers == [.nil, .string(Array("cannot read \(fifo): Resource temporarily unavailable".utf8))])
        #expect(waited < .milliseconds(1500), "waited \(waited)")
    }

    @Test("a precompiled file is refused by loadfile, dofile and require, as load refuses one")
    func binaryRefused() throws {
        let dir = try FileFixture.temporaryDirectory("luaexec-loadfile")
        defer { FileFixture.remove(dir) }
        // string.dump is liblua's: the bytes are a valid chunk that liblua's loadfile would run.
        let vm = try LuaVM()
        let chunk = """
            local path = '\(dir)/dumped.lua'
            local f = assert(io.open(path, 'wb')) f:write(string.dump(function() return 'ran' end)) f:close()
            package.path = '\(dir)/?.lua'
            return select(2, loadfile(path)), select(2, pcall(dofile, path)), select(2, pcall(require, 'dumped'))
            """
        let answers = try vm.evaluate(Array(chunk.utf8), chunkName: "interactive.lua", rendering: .text).outcome.get()
        let refused = "attempt to load a binary chunk (mode is 't')"
        #expect(answers == [
            .string(Array(refused.utf8)), .string(Array(refused.utf8)),
            .string(Array("error loading module 'dumped' from file '\(dir)/dumped.lua':\n\t\(refused)".utf8)),
        ])
    }
}
