import Foundation
import Synchronization
import Testing

@Suite("Admin API: status, interrupt, reset")
struct AdminTests {
    @Test("status reports version, requests, queue, memory and the running evaluation")
    func status() throws {
        let stack = try Stack(settings: ["limits.time=10"])
        _ = try stack.eval("return 1")
        _ = try stack.eval("x x")
        let idle = try stack.request("/api/v1/admin/status", token: stack.adminToken)
        #expect(idle.status == 200)
        #expect(idle.headers["content-type"] == "application/json")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(idle.body)) as? [String: Any])
        #expect(object["version"] as? String == "0.1.0")
        #expect(object["uptime_s"] is Int)
        #expect(object["queue_length"] as? Int == 0)
        #expect((object["memory_bytes"] as? Int ?? 0) > 0)
        #expect(object["running"] is NSNull)
        let requests = try #require(object["requests"] as? [String: Int])
        #expect(requests["ok"] == 1)
        #expect(requests["syntax"] == 1)

        // While a chunk spins, status names its token and elapsed time; interrupt ends it.
        let spinner = Thread { _ = try? stack.eval("while true do end") }
        spinner.start()
        var running: [String: Any]?
        try Stack.waitUntil(timeout: .seconds(5), "the spinning chunk to show in status") {
            let result = try? stack.request("/api/v1/admin/status", token: stack.adminToken)
            let object = result.flatMap { try? JSONSerialization.jsonObject(with: Data($0.body)) as? [String: Any] }
            running = object?["running"] as? [String: Any]
            return running != nil
        }
        #expect(running?["token"] as? String == "admin")
        #expect(running?["elapsed_ms"] is Double)
    }

    @Test("interrupt from a second client ends a spinning chunk as 500 interrupted")
    func interrupt() throws {
        let stack = try Stack(settings: ["limits.time=30"])
        _ = try stack.eval("kept = 'yes'")
        let spun = Mutex<Stack.HTTPResult?>(nil)
        let spinner = Thread { spun.withLock { $0 = try? stack.eval("print('spinning') while true do end") } }
        spinner.start()
        var interrupted = false
        try Stack.waitUntil(timeout: .seconds(5), "the interrupt to hit a running chunk") {
            let result = try? stack.request("/api/v1/admin/interrupt", method: "POST", token: stack.adminToken)
            interrupted = result?.text == #"{"interrupted":true}"#
            return interrupted
        }
        try Stack.waitUntil(timeout: .seconds(5), "the spinning request to end") { spun.withLock { $0 } != nil }
        let result = try #require(spun.withLock { $0 })
        #expect(result.status == 500)
        #expect(result.headers["x-lua-error"] == "interrupted")
        #expect(
            result.text == "spinning\nthe chunk was interrupted by an administrator\n"
                + "stack traceback:\n\tinteractive.lua:1: in main chunk\n\t[C]: in ?\n")
        #expect(try stack.eval("return kept").text == "yes")
        let idle = try stack.request("/api/v1/admin/interrupt", method: "POST", token: stack.adminToken)
        #expect(idle.text == #"{"interrupted":false}"#)
    }

    @Test("reset gives a fresh state with the init scripts run again")
    func reset() throws {
        let stack = try Stack()
        _ = try stack.eval("before_reset = true system = nil")
        let reset = try stack.request("/api/v1/admin/reset", method: "POST", token: stack.adminToken)
        #expect(reset.status == 200)
        #expect(reset.text == #"{"ok":true}"#)
        #expect(try stack.eval("return before_reset").body == [])
        #expect(try stack.eval("return type(system.toast)").text == "function")
    }

    @Test("admin endpoints need the admin scope and the right method")
    func scopeAndMethods() throws {
        let stack = Stack.shared
        let created = try Stack.run(
            Stack.binDirectory + "/luaexec",
            ["token", "create", "exec-only-\(UInt32.random(in: 0...UInt32.max))", "--database", stack.database])
        let token = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        var result = try stack.request("/api/v1/admin/status", token: token)
        try Stack.waitUntil(timeout: .seconds(5), "the new token to be known") {
            result = (try? stack.request("/api/v1/admin/status", token: token)) ?? result
            return result.status != 401
        }
        #expect(result.status == 403)
        #expect(result.headers["www-authenticate"] == #"Bearer realm="luaexec", error="insufficient_scope", scope="admin""#)
        #expect(try stack.request("/api/v1/admin/status").status == 401)
        let wrongMethod = try stack.request("/api/v1/admin/reset", token: stack.adminToken)
        #expect(wrongMethod.status == 405)
        #expect(wrongMethod.headers["allow"] == "POST")
    }
}
