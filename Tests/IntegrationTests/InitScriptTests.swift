import Foundation
import Testing

/// Init scripts under the limits (SPEC V2, L1, L2): none can keep luaexecd from serving.
@Suite("Init scripts: limited, logged, skippable")
struct InitScriptTests {
    /// A directory of init scripts, by file name.
    func directory(_ scripts: [String: String]) throws -> String {
        let path = NSTemporaryDirectory() + "luaexec-init-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        for (name, text) in scripts { try text.write(toFile: path + "/" + name, atomically: true, encoding: .utf8) }
        return path
    }

    @Test("a looping, a memory-eating and a failing script are stopped and logged; the good one runs; luaexecd serves")
    func badScriptsDoNotStopStartUp() throws {
        let dir = try directory([
            "10-loop.lua": "while true do end",
            "20-hungry.lua": "local s = ('x'):rep(1 << 20) while true do s = s .. s end",
            "30-error.lua": "error('this script is broken')",
            "40-good.lua": "good = 'yes' http.listen('good', function() return good end)",
        ])
        let stack = try Stack(settings: ["limits.init_time=0.5", "limits.memory=32"], initDirectory: dir)
        // Before this change, this request waited forever: luaexecd never finished starting.
        let result = try stack.request(
            token: stack.adminToken, body: Array("return good".utf8), extra: ["--max-time", "60"])
        #expect(result.text == "yes")
        #expect(try stack.request("/api/v1/exec/good", token: stack.adminToken).text == "yes")
        let log = stack.luaexecdLog()
        #expect(
            log.contains(
                "init script failed error=\"the chunk exceeded its time limit (0.5 seconds)\" kind=timeout script=\(dir)/10-loop.lua\n"
            ))
        #expect(
            log.contains(
                "init script failed error=\"not enough memory: the state's limit is 33554432 bytes\" kind=memory script=\(dir)/20-hungry.lua\n"
            ))
        // Lua shortens a long file name from the left, as `lua5.4 /long/path/30-error.lua` does.
        #expect(log.contains("/30-error.lua:1: this script is broken\" kind=runtime script=\(dir)/30-error.lua\n"))
        #expect(log.contains("init script ran script=\(dir)/40-good.lua"))
        // The same holds at a reset.
        #expect(
            try stack.request(
                "/api/v1/admin/reset", method: "POST", token: stack.adminToken, extra: ["--max-time", "60"]
            ).status == 200)
        #expect(stack.luaexecdLog().components(separatedBy: "kind=timeout script=\(dir)/10-loop.lua\n").count == 3)
        #expect(try stack.eval("return good").text == "yes")
    }

    @Test("SIGTERM during a looping init script ends luaexecd at once with status 0")
    func sigtermDuringStartUp() throws {
        let marker = NSTemporaryDirectory() + "luaexec-looping-\(UUID().uuidString)"
        let dir = try directory(["10-loop.lua": "io.open('\(marker)', 'w'):close() while true do end"])
        let stack = try Stack(settings: ["limits.init_time=600"], initDirectory: dir)
        try Stack.waitUntil(timeout: .seconds(20), "the init script to loop") {
            FileManager.default.fileExists(atPath: marker)
        }
        kill(stack.luaexecdPID, SIGTERM)
        #expect(try stack.waitForExitStatus() == "0\n")
        #expect(stack.luaexecdLog().contains("stopped during start-up"))
    }

    @Test("SIGTERM during a reset's looping init script stops luaexecd without waiting for the script's limit")
    func sigtermDuringReset() throws {
        let marker = NSTemporaryDirectory() + "luaexec-reset-\(UUID().uuidString)"
        // Loops only from the second run on: the reset's.
        let dir = try directory([
            "10-loop.lua": """
            local f = io.open('\(marker)', 'r')
            if f then f:close() io.open('\(marker).looping', 'w'):close() while true do end end
            io.open('\(marker)', 'w'):close()
            """
        ])
        let stack = try Stack(settings: ["limits.init_time=600"], initDirectory: dir)
        #expect(try stack.eval("return 1").text == "1")
        let resetter = Thread { _ = try? stack.request("/api/v1/admin/reset", method: "POST", token: stack.adminToken) }
        resetter.start()
        try Stack.waitUntil(timeout: .seconds(20), "the reset's init script to loop") {
            FileManager.default.fileExists(atPath: marker + ".looping")
        }
        kill(stack.luaexecdPID, SIGTERM)
        #expect(try stack.waitForExitStatus() == "0\n")
    }

    @Test("safe mode runs no init script, from the config file or from --safe-mode")
    func safeMode() throws {
        let marker = NSTemporaryDirectory() + "luaexec-safe-\(UUID().uuidString)"
        let dir = try directory(["10-mark.lua": "io.open('\(marker)', 'w'):close() marked = true"])
        for stack in [
            try Stack(settings: ["lua.safe_mode=true"], initDirectory: dir),
            try Stack(initDirectory: dir, arguments: ["--safe-mode"]),
        ] {
            #expect(try stack.eval("return marked, system").text == "nil\tnil")
            #expect(stack.luaexecdLog().contains("safe mode: no init scripts and no stored scripts run"))
        }
        #expect(!FileManager.default.fileExists(atPath: marker))
        let normal = try Stack(initDirectory: dir)
        #expect(try normal.eval("return marked").text == "true")
    }
}
