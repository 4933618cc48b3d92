import Foundation
import Testing

/// Completion and inspection of the live state (SPEC O10, docs/console.md) through nginx:
/// what each answer holds, that reading the state runs nothing of it (no `__index` or `__pairs`
/// function, no inspected function), and that every answer stays bounded.
@Suite("Console completion and inspection")
struct ConsoleTests {
    static let stack: Stack = try! Stack(settings: ["exec.actions=true", "auth.failure_limit=1000000"])

    func complete(_ text: String, token: String? = nil) throws -> Stack.HTTPResult {
        try Self.stack.request(
            "/api/v1/console/complete", token: token ?? Self.stack.adminToken, body: Array(text.utf8))
    }

    func inspect(_ name: String, token: String? = nil) throws -> Stack.HTTPResult {
        try Self.stack.request("/api/v1/console/inspect", token: token ?? Self.stack.adminToken, body: Array(name.utf8))
    }

    func object(_ result: Stack.HTTPResult) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(result.body)) as? [String: Any], "\(result.text)")
    }

    /// Runs `chunk` and expects it to succeed.
    func run(_ chunk: String, headers: [String] = []) throws {
        let result = try Self.stack.eval(chunk, headers: headers)
        #expect(result.status == 200, "\(chunk): \(result.text)")
    }

    @Test("globals complete with their types, after any code before the cursor; keywords too")
    func globals() throws {
        try run("cg_alpha = 1; cg_alphabet = {}; function cg_alfa(x) end; cg_beta = 'b'")
        let answer = try complete("cg_al")
        #expect(answer.status == 200)
        #expect(answer.headers["content-type"] == "application/json")
        #expect(answer.headers["cache-control"] == "no-store")
        #expect(
            answer.text
                == #"{"word":"cg_al","candidates":[{"name":"cg_alfa","type":"function"},{"name":"cg_alpha","type":"number"},{"name":"cg_alphabet","type":"table"}],"truncated":false}"#
        )
        // The text before the cursor may be a whole editor's: only the name at its end counts.
        let long = String(repeating: "local x = 1\n", count: 1000) + "print(cg_be"
        #expect(
            try complete(long).text
                == #"{"word":"cg_be","candidates":[{"name":"cg_beta","type":"string"}],"truncated":false}"#)
        #expect(
            try complete("whi").text
                == #"{"word":"whi","candidates":[{"name":"while","type":"keyword"}],"truncated":false}"#)
        // After a call, an index, a number or a string's quote there is no name to complete.
        for text in ["f().x", "t[1].x", "x = 1.5", "cg_alpha..cg_al"] {
            let nothing = try complete(text)
            #expect(nothing.status == 200, "\(text)")
            if text == "cg_alpha..cg_al" {
                #expect(nothing.text.contains(#"{"name":"cg_alpha","type":"number"}"#), "concatenation: a global")
            } else {
                #expect(nothing.text == #"{"word":"","candidates":[],"truncated":false}"#, "\(text)")
            }
        }
    }

    @Test("fields by . and :, following __index tables; : offers functions only; strings have their methods")
    func fields() throws {
        #expect(
            try complete("sip.calls.ge").text
                == #"{"word":"ge","candidates":[{"name":"get_all","type":"function"}],"truncated":false}"#)
        try run(
            """
            cf_base = {greet = function(self) end, count = 3, shadowed = 'base'}
            cf_obj = setmetatable({n = 1, shadowed = 'own'}, {__index = cf_base})
            cf_str = 'text'
            """)
        #expect(
            try complete("cf_obj.").text
                == #"{"word":"","candidates":[{"name":"count","type":"number"},{"name":"greet","type":"function"},{"name":"n","type":"number"},{"name":"shadowed","type":"string"}],"truncated":false}"#
        )
        #expect(
            try complete("cf_obj:").text
                == #"{"word":"","candidates":[{"name":"greet","type":"function"}],"truncated":false}"#)
        #expect(
            try complete("x = cf_str:up").text
                == #"{"word":"up","candidates":[{"name":"upper","type":"function"}],"truncated":false}"#)
        #expect(
            try complete("string.for").text
                == #"{"word":"for","candidates":[{"name":"format","type":"function"}],"truncated":false}"#)
    }

    @Test("an __index or __pairs function is never called: the global it would set stays unset")
    func nothingRuns() throws {
        try run(
            """
            cn_trap = setmetatable({}, {
              __index = function(t, k) cn_ran = 'index ' .. tostring(k) return {x = 1} end,
              __pairs = function(t) cn_ran = 'pairs' return next, {}, nil end,
              __len = function() cn_ran = 'len' return 0 end,
              __tostring = function() cn_ran = 'tostring' return 'trap' end,
              __name = 'trap',
            })
            """)
        #expect(try complete("cn_trap.").text == #"{"word":"","candidates":[],"truncated":false}"#)
        #expect(try complete("cn_trap.a.").text == #"{"word":"","candidates":[],"truncated":false}"#)
        #expect(try complete("cn_trap:").text == #"{"word":"","candidates":[],"truncated":false}"#)
        let trap = try object(try inspect("cn_trap"))
        #expect(trap["type"] as? String == "table")
        #expect((trap["value"] as? String)?.hasPrefix("trap: 0x") == true)  // __name, read raw
        #expect(trap["index"] as? String == "function")
        #expect(trap["keys"] as? Int == 0)
        #expect(trap["metatable"] as? Bool == true)
        let missing = try object(try inspect("cn_trap.anything"))
        #expect(missing["type"] as? String == "nil")
        // The function inspected is not called either.
        try run("function cn_side(a) cn_ran = 'called' end")
        #expect(try inspect("cn_side").status == 200)
        #expect(try Self.stack.eval("return tostring(rawget(_G, 'cn_ran'))").text == "nil")
    }

    @Test("a table of a million keys: a bounded answer that says it was cut")
    func millionKeys() throws {
        try run("cm_big = {} for i = 1, 1000000 do cm_big[i] = i end")
        #expect(try complete("cm_big.").text == #"{"word":"","candidates":[],"truncated":true}"#)
        let big = try object(try inspect("cm_big"))
        #expect(big["length"] as? Int == 1_000_000)
        #expect(big["keys"] as? Int == 100_000)
        #expect(big["keys_exact"] as? Bool == false)
        #expect(big["truncated"] as? Bool == true)
        #expect((big["preview"] as? [Any])?.count == 8)

        try run("cm_many = {} for i = 1, 5000 do cm_many['k' .. i] = i end")
        let many = try object(try complete("cm_many.k"))
        #expect((many["candidates"] as? [Any])?.count == 200)
        #expect(many["truncated"] as? Bool == true)
    }

    @Test("cycles: a table that holds itself, and __index tables that point at each other")
    func cycles() throws {
        try run(
            """
            cc_self = {}; cc_self.me = cc_self
            cc_a, cc_b = {own = 1}, {other = 2}
            setmetatable(cc_a, {__index = cc_b}); setmetatable(cc_b, {__index = cc_a})
            """)
        #expect(
            try complete("cc_self.me.me.me.").text
                == #"{"word":"","candidates":[{"name":"me","type":"table"}],"truncated":false}"#)
        #expect(
            try complete("cc_a.").text
                == #"{"word":"","candidates":[{"name":"other","type":"number"},{"name":"own","type":"number"}],"truncated":false}"#
        )
        #expect(try complete("cc_a.nothing.").text == #"{"word":"","candidates":[],"truncated":false}"#)
        let me = try object(try inspect("cc_self.me.me"))
        let preview = try #require(me["preview"] as? [[String: Any]])
        #expect(preview.count == 1)
        #expect(preview.first?["key"] as? String == "me")
        #expect((preview.first?["value"] as? String)?.hasPrefix("table: 0x") == true)
    }

    @Test("binary keys are not offered; inspection shows them as base64")
    func binaryKeys() throws {
        try run(#"cb_bin = {["\0\255"] = 1, ["a b"] = 2, ok = 3}"#)
        #expect(
            try complete("cb_bin.").text
                == #"{"word":"","candidates":[{"name":"ok","type":"number"}],"truncated":false}"#)
        let bin = try object(try inspect("cb_bin"))
        let preview = try #require(bin["preview"] as? [[String: Any]])
        #expect(preview.count == 3)
        #expect(preview.contains { ($0["key"] as? [String: String]) == ["base64": "AP8="] && $0["value"] as? Int == 1 })
        #expect(preview.contains { $0["key"] as? String == "a b" && $0["type"] as? String == "number" })
        #expect(bin["keys"] as? Int == 3)
        #expect(bin["truncated"] as? Bool == false)
    }

    @Test("a name of 10 KB is refused with 400 and a reason; a 10 KB text ending in a short name is fine")
    func longPrefix() throws {
        let expected =
            #"{"ok":false,"error":{"kind":"http","message":"the name is longer than 1024 bytes; completion and inspection read names up to that"}}"#
        let long = String(repeating: "a", count: 10240)
        let refused = try complete(long)
        #expect(refused.status == 400)
        #expect(refused.text == expected)
        let dotted = try complete(String(repeating: "ab.", count: 3400) + "c")
        #expect(dotted.status == 400)
        #expect(dotted.text == expected)
        let inspected = try inspect(long)
        #expect(inspected.status == 400)
        #expect(inspected.text == expected)
        let bad = try inspect("sip.calls.get_all()")
        #expect(bad.status == 400)
        #expect(
            bad.text
                == #"{"ok":false,"error":{"kind":"http","message":"'sip.calls.get_all()' is not a name: send Lua names joined by . (and : before the last), such as sip.calls.get_all"}}"#
        )
    }

    @Test("a Lua function: parameters, vararg and where it was defined; a C function says so")
    func functions() throws {
        try run("function ci_add(a, b, ...)\n  return a + b\nend", headers: ["Lua-Chunk-Name: @tools/ci.lua"])
        let add = try object(try inspect("ci_add"))
        #expect(add["type"] as? String == "function")
        #expect(add["what"] as? String == "Lua")
        #expect(add["params"] as? [String] == ["a", "b"])
        #expect(add["vararg"] as? Bool == true)
        #expect(add["source"] as? String == "tools/ci.lua")
        #expect(add["line"] as? Int == 1)
        #expect(add["lastline"] as? Int == 3)
        #expect(add["name"] as? String == "ci_add")
        let toast = try object(try inspect("system.toast"))
        #expect(toast["params"] as? [String] == ["message"])
        #expect(toast["vararg"] as? Bool == false)
        #expect((toast["source"] as? String)?.hasSuffix("init.d/10-system.lua") == true)
        #expect(toast["line"] as? Int == 36)
        let method = try object(try inspect("string:format"))
        #expect(method["name"] as? String == "string.format")
        let format = try object(try inspect("string.format"))
        #expect(Set(format.keys) == ["name", "type", "value", "what", "source"])
        #expect(format["what"] as? String == "C")
        #expect(format["source"] as? String == "[C]")
        #expect((format["value"] as? String)?.hasPrefix("function: ") == true)
        let text = try object(try inspect("_VERSION"))
        #expect(text["value"] as? String == "Lua 5.4")
        #expect(text["length"] as? Int == 7)
    }

    @Test("an action: its help and typed parameters from the registry")
    func action() throws {
        let toast = try inspect("toast")
        #expect(toast.status == 200)
        #expect(
            toast.text
                == #"{"action":{"help":"Show a message on the box (here: a line in luaexecd's log).","params":[{"name":"text","optional":false,"type":"string"},{"name":"times","optional":true,"type":"integer"}]},"name":"toast","type":"action","value":null}"#
        )
    }

    @Test("the state's own globals: those a fresh state has not, with their types")
    func ownGlobals() throws {
        try run("cgl_mine = {}; cgl_text = 'x'")
        let answer = try Self.stack.request("/api/v1/console/globals", token: Self.stack.adminToken)
        #expect(answer.status == 200)
        let body = try object(answer)
        let globals = try #require(body["globals"] as? [[String: String]])
        #expect(globals.contains(["name": "cgl_mine", "type": "table"]))
        #expect(globals.contains(["name": "cgl_text", "type": "string"]))
        #expect(globals.contains(["name": "system", "type": "table"]))  // an init script's
        #expect(globals.contains(["name": "sip", "type": "table"]))
        for standard in ["print", "string", "_G", "http", "persisted", "shared", "sleep", "timer"] {
            #expect(!globals.contains { $0["name"] == standard }, "\(standard) is a fresh state's")
        }
        let names = globals.compactMap { $0["name"] }
        #expect(names == names.sorted())
        #expect(body["truncated"] as? Bool == false)
    }

    @Test("off with exec.interactive, as interactive.lua is: 404 and nothing read")
    func offWithInteractive() throws {
        let stack = try Stack(settings: ["exec.interactive=false"])
        for (path, body) in [
            ("/api/v1/console/complete", Array("sys".utf8)), ("/api/v1/console/inspect", Array("system".utf8)),
            ("/api/v1/console/globals", nil),
        ] as [(String, [UInt8]?)] {
            let answer = try stack.request(path, token: stack.adminToken, body: body)
            #expect(answer.status == 404, "\(path)")
            #expect(answer.text == #"{"ok":false,"error":{"kind":"http","message":"no such endpoint: \#(path)"}}"#)
        }
    }

    @Test("scope exec: 401 without a token, 403 for a token without exec; never an evaluation; audit kind console")
    func scopeAndAccounting() throws {
        let narrow = try Self.stack.makeToken(
            "console-narrow-\(UInt32.random(in: 0...UInt32.max))", scopes: ["metrics"])
        for (path, method) in [
            ("/api/v1/console/complete", "POST"), ("/api/v1/console/inspect", "POST"),
            ("/api/v1/console/globals", "GET"),
        ] {
            let body: [UInt8]? = method == "POST" ? Array("sys".utf8) : nil
            let refused = try Self.stack.request(path, token: narrow, body: body)
            #expect(refused.status == 403, "\(path)")
            #expect(
                refused.headers["www-authenticate"]
                    == #"Bearer realm="luaexec", error="insufficient_scope", scope="exec""#)
            #expect(try Self.stack.request(path, body: body).status == 401, "\(path)")
        }
        let wrongMethod = try Self.stack.request("/api/v1/console/complete", token: Self.stack.adminToken)
        #expect(wrongMethod.status == 405)
        #expect(wrongMethod.headers["allow"] == "POST")
        #expect(wrongMethod.headers["content-type"] == "application/json")

        // A stack of its own, so that no other test's chunk moves the counts.
        let stack = try Stack()
        #expect(try stack.eval("return 1").status == 200)
        for _ in 0..<3 {
            #expect(
                try stack.request("/api/v1/console/complete", token: stack.adminToken, body: Array("sys".utf8)).status
                    == 200)
        }
        #expect(
            try stack.request("/api/v1/console/inspect", token: stack.adminToken, body: Array("system".utf8)).status
                == 200)
        let metrics = try stack.request("/api/v1/metrics", token: stack.adminToken).text
        for line in [
            "luaexec_evaluation_seconds_count 1",
            #"luaexec_requests_total{endpoint="console/complete",status="200"} 3"#,
            #"luaexec_requests_total{endpoint="console/inspect",status="200"} 1"#,
        ] {
            #expect(metrics.contains(line + "\n"), "\(line) in\n\(metrics)")
        }
        var listed = ""
        try Stack.waitUntil(timeout: .seconds(10), "the console's audit records") {
            listed = (try? stack.request("/api/v1/admin/audit?kind=console", token: stack.adminToken).text) ?? ""
            return listed.components(separatedBy: #""kind":"console""#).count - 1 == 4
        }
        #expect(listed.components(separatedBy: #""path":"/api/v1/console/complete""#).count - 1 == 3)
        let exec = try stack.request("/api/v1/admin/audit?kind=exec", token: stack.adminToken).text
        #expect(!exec.contains("/api/v1/console/"))
    }
}
