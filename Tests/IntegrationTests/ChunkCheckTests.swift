import Foundation
import Synchronization
import Testing

@Suite("Lua-Check: syntax compiles and runs nothing (SPEC E12)")
struct ChunkCheckTests {
    let stack = Stack.shared

    @Test("a chunk that compiles: 200 with an empty body, and none of it ran")
    func compilesAndRunsNothing() throws {
        let marker = "checked_\(UInt32.random(in: 0...UInt32.max))"
        let result = try stack.eval("\(marker) = true print('side effect') return 1", headers: ["Lua-Check: syntax"])
        #expect(result.status == 200)
        #expect(result.body == [])
        #expect(result.headers["content-type"] == "text/plain; charset=utf-8")
        #expect(result.headers["cache-control"] == "no-store")
        #expect(result.headers["server-timing"]?.hasPrefix("lua;dur=") == true)
        #expect(result.headers["x-lua-error"] == nil)
        #expect(try stack.eval("return \(marker) == nil").text == "true")
    }

    @Test("JSON mode answers E5's object with no results")
    func json() throws {
        let result = try stack.eval("checked_json = 1", headers: ["Lua-Check: syntax", "Accept: application/json"])
        #expect(result.status == 200)
        #expect(result.text.hasPrefix(#"{"ok":true,"results":[],"output":"","elapsed_ms":"#))
        #expect(try stack.eval("return checked_json").body == [])
    }

    @Test("a chunk that does not compile: E6's 400 syntax, the message a run would give")
    func syntaxError() throws {
        for headers in [[], ["Lua-Chunk-Name: @tools/setup.lua"]] {
            let checked = try stack.eval("x = = 1", headers: headers + ["Lua-Check: syntax"])
            let ran = try stack.eval("x = = 1", headers: headers)
            #expect(checked.status == 400)
            #expect(checked.headers["x-lua-error"] == "syntax")
            #expect(checked.text == ran.text)
        }
        let named = try stack.eval("x = = 1", headers: ["Lua-Chunk-Name: @tools/setup.lua", "Lua-Check: syntax"])
        #expect(named.text == "tools/setup.lua:1: unexpected symbol near '='\n")
        let json = try stack.eval("return (", headers: ["Lua-Check: syntax", "Accept: application/json"])
        #expect(json.status == 400)
        #expect(
            json.text.hasPrefix(
                #"{"ok":false,"error":{"kind":"syntax","message":"interactive.lua:1: unexpected symbol near <eof>""#))
    }

    @Test("a binary chunk is refused as a run refuses it")
    func binaryChunk() throws {
        let result = try stack.request(
            token: stack.adminToken, headers: ["Lua-Check: syntax"], body: [0x1B, 0x4C, 0x75, 0x61])
        #expect(result.status == 400)
        #expect(result.headers["x-lua-error"] == "syntax")
        #expect(result.text == "binary (precompiled) chunks are refused: send Lua source text\n")
    }

    @Test("a Lua-Check value other than syntax is 400 and nothing runs")
    func unknownMode() throws {
        let result = try stack.eval("checked_unknown = 1", headers: ["Lua-Check: run"])
        #expect(result.status == 400)
        #expect(result.text == "the Lua-Check header takes one value, syntax (compile only, run nothing)\n")
        #expect(try stack.eval("return checked_unknown").body == [])
    }

    @Test("Lua-Check where there is nothing to compile (an endpoint, a config change, a reset) is 400, and nothing runs or changes")
    func endpointRefused() throws {
        let name = "checked_ep_\(UInt32.random(in: 0...UInt32.max))"
        #expect(try stack.eval("\(name)_calls = 0 http.listen('\(name)', function() \(name)_calls = \(name)_calls + 1 return 'ran' end)")
            .status == 200)
        let result = try stack.request("/api/v1/exec/" + name, token: stack.adminToken, headers: ["Lua-Check: syntax"])
        #expect(result.status == 400)
        #expect(result.text
            == "Lua-Check asks for a compile only, which /api/v1/exec/interactive.lua and POST /api/v1/admin/scripts/NAME/check do; this request runs or changes something, and nothing ran\n")
        #expect(try stack.eval("return \(name)_calls").text == "0")
        #expect(try stack.request("/api/v1/exec/" + name, token: stack.adminToken).text == "ran")
        // Nor a change: a config value, a reset.
        let put = try stack.request(
            "/api/v1/admin/config/" + name, method: "PUT", token: stack.adminToken,
            headers: ["Lua-Check: syntax", "Content-Type: application/json"], body: Array(#"{"value": 1}"#.utf8))
        #expect(put.status == 400)
        #expect(try stack.eval("return config.get('\(name)')").body == [])
        #expect(try stack.eval("\(name)_kept = true").status == 200)
        let reset = try stack.request("/api/v1/admin/reset", method: "POST", token: stack.adminToken, headers: ["Lua-Check: syntax"])
        #expect(reset.status == 400)
        #expect(try stack.eval("return \(name)_kept").text == "true")
    }

    @Test("a check answers while another request spins, without waiting for it")
    func doesNotQueue() throws {
        let stack = try Stack(settings: ["limits.time=30"])
        let spun = Mutex<Stack.HTTPResult?>(nil)
        // The answer is stored once it has come: holding the lock through the request would
        // make every look at `spun` wait for the spinner.
        let spinner = Thread {
            let answer = try? stack.eval("while true do end")
            spun.withLock { $0 = answer }
        }
        spinner.start()
        try Stack.waitUntil(timeout: .seconds(5), "the spinning chunk to show in status") {
            let result = try? stack.request("/api/v1/admin/status", token: stack.adminToken)
            return result?.text.contains(#""running":{"token":"admin""#) == true
        }
        let checked = try stack.eval("return 1", headers: ["Lua-Check: syntax"])
        let failed = try stack.eval("return (", headers: ["Lua-Check: syntax"])
        // Both answered while the spinner still ran: its limit is 30 s, and the interrupt
        // below still finds it running.
        #expect(spun.withLock { $0 } == nil)
        #expect(checked.status == 200)
        #expect(failed.status == 400)
        let interrupt = try stack.request("/api/v1/admin/interrupt", method: "POST", token: stack.adminToken)
        #expect(interrupt.text == #"{"interrupted":true}"#)
        try Stack.waitUntil(timeout: .seconds(5), "the spinning request to end") { spun.withLock { $0 } != nil }
        #expect(spun.withLock { $0 }?.headers["x-lua-error"] == "interrupted")
    }
}
