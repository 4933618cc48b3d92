import Foundation
import Testing

/// The endpoint registry (SPEC V4): `GET /api/v1/admin/endpoints` and `luaexec endpoints`.
@Suite("Endpoint registry")
struct RegistryTests {
    func listing(_ stack: Stack) throws -> [String: [String: Any]] {
        let result = try stack.request("/api/v1/admin/endpoints", token: stack.adminToken)
        #expect(result.status == 200)
        #expect(result.headers["content-type"] == "application/json")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.body)) as? [String: Any])
        let entries = try #require(object["endpoints"] as? [[String: Any]])
        return Dictionary(uniqueKeysWithValues: entries.map { ("\($0["kind"]!):\($0["name"]!)", $0) })
    }

    @Test("lists what init scripts and chunks registered, with origin, counts and the source's SHA-256")
    func adminListing() throws {
        let stack = try Stack()
        let script = Stack.repository + "/init.d/30-example.lua"
        var entries = try listing(stack)
        let status = try #require(entries["endpoint:status.lua"])
        let origin = try #require(status["registered_by"] as? [String: Any])
        #expect(origin["script"] as? String == script)
        #expect(origin["line"] as? Int == 16)
        let digest = try Stack.run("/usr/bin/sha256sum", [script]).stdout.prefix(64)
        #expect(status["source_sha256"] as? String == String(digest))
        #expect(status["calls"] as? Int == 0)
        #expect((status["since"] as? String)?.hasSuffix("Z") == true)
        let toast = try #require(entries["action:toast"])
        #expect(toast["help"] as? String == "Show a message on the box (here: a line in luaexecd's log).")
        #expect((toast["params"] as? [[String: Any]])?.map { $0["name"] as? String } == ["text", "times"])

        let chunk = "http.listen('mine', function(url, body) if body == 'fail' then error('no') end return 'ok' end)"
        #expect(try stack.eval(chunk).status == 200)
        _ = try stack.request("/api/v1/exec/mine", token: stack.adminToken)
        _ = try stack.request("/api/v1/exec/mine", token: stack.adminToken, body: Array("fail".utf8))
        _ = try stack.request("/api/v1/exec/status.lua", token: stack.adminToken)
        entries = try listing(stack)
        let mine = try #require(entries["endpoint:mine"])
        #expect(mine["registered_by"] as? [String: String] == ["token": "admin"])
        #expect(mine["calls"] as? Int == 2)
        #expect(mine["errors"] as? Int == 1)
        let chunkDigest = try Stack.run("/bin/sh", ["-c", "printf '%s' \"$0\" | sha256sum", chunk]).stdout.prefix(64)
        #expect(mine["source_sha256"] as? String == String(chunkDigest))
        #expect(entries["endpoint:status.lua"]?["calls"] as? Int == 1)

        // A reset drops what requests registered; the init scripts register theirs again.
        #expect(try stack.request("/api/v1/admin/reset", method: "POST", token: stack.adminToken).status == 200)
        entries = try listing(stack)
        #expect(entries["endpoint:mine"] == nil)
        #expect(entries["endpoint:status.lua"]?["calls"] as? Int == 0)
        #expect(try stack.request("/api/v1/exec/mine", token: stack.adminToken).status == 404)
    }

    @Test("luaexec endpoints shows the running daemon's registry as a table and as JSON")
    func commandLine() throws {
        let stack = try Stack()
        #expect(try stack.eval("http.listen('cli-check', print)").status == 200)
        var table = ""
        try Stack.waitUntil(timeout: .seconds(10), "luaexecd to publish the new endpoint") {
            table =
                (try? Stack.run(Stack.binDirectory + "/luaexec", ["endpoints", "--database", stack.database]))?.stdout
                ?? ""
            return table.contains("cli-check")
        }
        let lines = table.split(separator: "\n")
        #expect(lines.first?.hasPrefix("KIND      NAME        REGISTERED BY") == true)
        #expect(
            lines.contains { $0.hasPrefix("action    toast       \(Stack.repository)/init.d/30-example.lua:23") },
            "\(table)")
        #expect(lines.contains { $0.hasPrefix("endpoint  cli-check   token admin") }, "\(table)")
        #expect(lines.last == "interactive.lua: on; Action URLs: off (exec.actions)")
        let json = try Stack.run(
            Stack.binDirectory + "/luaexec", ["endpoints", "--json", "--database", stack.database])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [String: Any])
        #expect((object["endpoints"] as? [[String: Any]])?.count == 3)
        #expect(object["actions"] as? Bool == false)
    }

    @Test("the registry needs the admin scope")
    func needsAdmin() throws {
        let stack = Stack.shared
        let token = try stack.makeToken("no-admin-\(UInt32.random(in: 0...UInt32.max))", scopes: ["exec"])
        #expect(try stack.request("/api/v1/admin/endpoints", token: token).status == 403)
        #expect(try stack.request("/api/v1/admin/endpoints", method: "POST", token: stack.adminToken).status == 405)
    }
}
