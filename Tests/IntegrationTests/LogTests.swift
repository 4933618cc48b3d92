import Foundation
import SystemSupport
import Testing

/// luaexecd's log (SPEC O2): one line per event, whatever text the event carries. A script's
/// message, a Lua error, what an init script printed, a config file's value: none can end its
/// line early, start a line that passes for luaexecd's own (an audit line above all), or put a
/// control character on an administrator's terminal.
@Suite("The log: one line per event, none forged")
struct LogTests {
    /// A line as luaexecd makes it: its time, its level, its label.
    static var head: Regex<(Substring, Substring)> { #/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (trace|debug|info|notice|warning|error|critical) luaexecd: /# }

    /// The log's lines without their times, after checking that the file is text without a
    /// control byte but its line ends, and that each line is one of luaexecd's whole lines.
    func lines(of stack: Stack) throws -> [String] {
        let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: stack.directory + "/logs/luaexecd.log")))
        let controls = bytes.filter { ($0 < 0x20 && $0 != 0x0A) || $0 == 0x7F }
        #expect(controls.isEmpty, "control bytes in the log: \(controls)")
        var lines: [String] = []
        for line in bytes.split(separator: 0x0A) {
            let text = try #require(String(validating: line, as: UTF8.self), "not UTF-8: \(Array(line))")
            guard text.prefixMatch(of: Self.head) != nil else {
                Issue.record("a line that is not luaexecd's: \(text)")
                continue
            }
            lines.append(String(text.dropFirst("2026-12-04T14:00:00.000Z ".count)))
        }
        return lines
    }

    @Test("a script's text, a Lua error with CR, LF, ESC and NUL, an init script's output and a refused config value: one line each")
    func oneLinePerEvent() throws {
        let dir = NSTemporaryDirectory() + "luaexec-init-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Stack.repository + "/init.d/10-system.lua", toPath: dir + "/10-system.lua")
        try #"""
            print("out\nINFO luaexecd: request id=forged-init-output")
            error("init\r\nINFO luaexecd: request id=forged-init\27[31m\0end", 0)
            """#.write(toFile: dir + "/50-broken.lua", atomically: true, encoding: .utf8)
        let stack = try Stack(initDirectory: dir)

        // system.log's level and system.toast's text, as a script might pass on what a client sent.
        #expect(try stack.eval(#"system.log("x\nINFO luaexecd: request id=forged-log status=200")"#).status == 200)
        #expect(try stack.eval(#"system.toast("hi\r\nINFO luaexecd: request id=forged-toast\27[2J\0")"#).status == 200)
        // A config callback that fails when `luaexec config set` changes its path on the box: its
        // error is logged.
        let callback = try stack.eval(#"""
            config.register("log.test", function()
                error("cb\r\nINFO luaexecd: request id=forged-callback \27[31mred\0nul", 0)
            end)
            """#)
        #expect(callback.status == 200)
        let set = try Stack.run(Stack.binDirectory + "/luaexec", ["config", "set", "log.test", "1", "--database", stack.database])
        #expect(set.status == 0, "\(set.stderr)")
        try Stack.waitUntil(timeout: .seconds(5), "the callback's error") { stack.luaexecdLog().contains("forged-callback") }
        // A config file whose value a reload refuses: the message quotes it.
        try #"exec:\#n  interactive: "maybe\e[2J\nINFO luaexecd: request id=forged-config"\#n"#
            .write(toFile: stack.configFile, atomically: true, encoding: .utf8)
        kill(stack.luaexecdPID, SIGHUP)
        try Stack.waitUntil(timeout: .seconds(5), "the reload refused") { stack.luaexecdLog().contains("config not reloaded") }
        // The audit line of a request after the others: every event before it is in the log.
        #expect(try stack.eval("return 1").text == "1")

        let lines = try lines(of: stack)
        let expected: [(marker: String, line: String)] = [
            (
                "forged-init-output",
                #"info luaexecd: init script output output="out\x0aINFO luaexecd: request id=forged-init-output\x0a" script=\#(dir)/50-broken.lua"#
            ),
            (
                "forged-init\\",
                #"error luaexecd: init script failed error="init\x0d\x0aINFO luaexecd: request id=forged-init\x1b[31m\x00end" kind=runtime script=\#(dir)/50-broken.lua"#
            ),
            ("forged-log", #"info luaexecd: lua tag="x\x0aINFO luaexecd: request id=forged-log status=200" text="""#),
            ("forged-toast", #"info luaexecd: lua tag=toast text="hi\x0d\x0aINFO luaexecd: request id=forged-toast\x1b[2J\x00""#),
            (
                "forged-callback",
                #"error luaexecd: config callback failed error="config: 'log.test' was set and saved, but a function registered for it failed: cb\x0d\x0aINFO luaexecd: request id=forged-callback \x1b[31mred\x00nul" kind=runtime"#
            ),
            (
                "forged-config",
                #"error luaexecd: config not reloaded; the settings in force stay error="\#(stack.configFile):2: exec.interactive: expected true or false, got 'maybe\x1b[2J\x0aINFO luaexecd: request id=forged-config' in quotes, which makes it text: drop the quotes""#
            ),
        ]
        for (marker, line) in expected {
            let found = lines.filter { $0.contains(marker) }
            #expect(found == [line], "\(marker)")
        }
        // No line but the audit lines is one: nothing a script wrote passes for a request.
        #expect(lines.filter { $0.hasPrefix("info luaexecd: request ") }.count == 4)
        #expect(!lines.contains { $0.hasPrefix("info luaexecd: request ") && $0.contains("forged") })
    }

    @Test("a chunk that writes log lines in a loop: 1,000 at once, then dropped with one warning; a long text cut")
    func flood() throws {
        let stack = try Stack()
        let chunk = "local n = 0 for i = 1, 20000 do if log.write('flood', 'line ' .. i) then n = n + 1 end end return n"
        let started = MonotonicInstant.now()
        let result = try stack.eval(chunk)
        let seconds = Double(MonotonicInstant.now().nanoseconds(since: started)) / 1e9
        #expect(result.status == 200)
        // The burst, and what 100 a second added while the loop ran.
        let written = try #require(Int(result.text))
        #expect(written >= 1000 && Double(written) <= 1001 + seconds * 100, "\(written) in \(seconds) s")
        #expect(try stack.eval("log.write('long', string.rep('y', 10000))").status == 200)
        try Stack.waitUntil(timeout: .seconds(5), "the long line") { stack.luaexecdLog().contains("tag=long") }
        let lines = try lines(of: stack)
        #expect(lines.filter { $0.hasPrefix("info luaexecd: lua ") && $0.contains(" tag=flood ") }.count == written)
        #expect(lines.filter { $0.contains("log.write: lines dropped") }.count == 1)
        let long = try #require(lines.first { $0.contains("tag=long") })
        #expect(long.contains("text=\(String(repeating: "y", count: 4096))"), "\(long.prefix(200))")
        #expect(long.contains(" truncated_from=10000") && !long.contains(String(repeating: "y", count: 4097)))
    }

    @Test("luaexecd's message before logging starts is escaped too: a config file's value on one line")
    func startupMessage() throws {
        let file = NSTemporaryDirectory() + "luaexecd-\(UUID().uuidString).conf"
        try #"exec:\#n  interactive: "maybe\e[2J\nforged"\#n"#.write(toFile: file, atomically: true, encoding: .utf8)
        let result = try Stack.run(Stack.binDirectory + "/luaexecd", ["--config", file, "--check-config"])
        #expect(result.status == 78)
        #expect(result.stdout == "")
        #expect(
            result.stderr
                == #"luaexecd: \#(file):2: exec.interactive: expected true or false, got 'maybe\x1b[2J\x0aforged' in quotes, which makes it text: drop the quotes\#n"#
        )
    }
}
