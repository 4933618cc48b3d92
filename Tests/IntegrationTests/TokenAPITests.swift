import Foundation
import Testing

/// The admin token API (SPEC M4): what `luaexec token` does, over HTTP, for the web page.
@Suite("Admin token API")
struct TokenAPITests {
    func post(_ stack: Stack, _ json: String, token: String? = nil) throws -> Stack.HTTPResult {
        try stack.request(
            "/api/v1/admin/tokens", method: "POST", token: token ?? stack.adminToken, body: Array(json.utf8))
    }

    @Test("create answers the secret once, which works at once; list never shows one; revoke takes effect at once")
    func lifecycle() throws {
        let stack = try Stack()
        let created = try post(stack, #"{"name":"ops","scopes":["exec","endpoint:status.lua"],"expires":"30d"}"#)
        #expect(created.status == 201)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(created.body)) as? [String: Any])
        #expect(object["name"] as? String == "ops")
        #expect(object["scopes"] as? [String] == ["endpoint:status.lua", "exec"])
        #expect(object["expires"] is String)
        #expect(object["last_used"] is NSNull)
        let secret = try #require(object["token"] as? String)
        #expect(secret.hasPrefix("lxk_") && secret.count == 40)
        #expect(try stack.request(token: secret, body: Array("return 'ops works'".utf8)).text == "ops works")

        let listed = try stack.request("/api/v1/admin/tokens", token: stack.adminToken)
        #expect(listed.status == 200)
        #expect(!listed.text.contains("lxk_"))
        let tokens = try #require(
            (try JSONSerialization.jsonObject(with: Data(listed.body)) as? [String: Any])?["tokens"] as? [[String: Any]]
        )
        #expect(tokens.map { $0["name"] as? String } == ["admin", "ops"])
        let cli = try Stack.run(
            Stack.binDirectory + "/luaexec", ["token", "list", "--json", "--database", stack.database])
        #expect(listed.text == "{\"tokens\":" + cli.stdout.trimmingCharacters(in: .newlines) + "}")

        let revoked = try stack.request("/api/v1/admin/tokens/ops", method: "DELETE", token: stack.adminToken)
        #expect(revoked.status == 200)
        #expect(revoked.text == #"{"revoked":"ops"}"#)
        #expect(try stack.request(token: secret, body: Array("return 1".utf8)).status == 401)
        #expect(try stack.request("/api/v1/admin/tokens/ops", method: "DELETE", token: stack.adminToken).status == 404)
        let log = stack.luaexecdLog()
        #expect(log.contains("token created by=admin name=ops scopes=endpoint:status.lua,exec"))
        #expect(log.contains("token revoked by=admin name=ops"))
    }

    @Test(
        "refusals say what to change",
        arguments: [
            (#"{"name":"admin"}"#, 409, "a token named 'admin' already exists; revoke it first or pick another name\n"),
            (
                #"{"name":"x","scopes":["root"]}"#, 400,
                "unknown scope 'root': use exec, admin, metrics, endpoint:NAME or action:NAME\n"
            ),
            (
                #"{"name":"x","expires":"soon"}"#, 400,
                "expires: expected a number and s, m, h or d, e.g. 30d, 12h, 45m, 90s, at most 36525d (100 years), got 'soon'\n"
            ),
            // Past an Int64 of seconds: this trapped the daemon when it stored the expiry.
            (
                #"{"name":"x","expires":"999999999999999999d"}"#, 400,
                "expires: expected a number and s, m, h or d, e.g. 30d, 12h, 45m, 90s, at most 36525d (100 years), got '999999999999999999d'\n"
            ),
            (
                #"{"name":"bad name"}"#, 400,
                "invalid token name 'bad name': use 1 to 64 letters, digits, '.', '_' or '-'\n"
            ),
            (#"{"name":"x","scopes":[]}"#, 400, "a token needs at least one scope\n"),
            (
                #"{"scopes":["exec"]}"#, 400,
                #"send {"name": "ops", "scopes": ["exec"], "expires": "30d"} (scopes and expires may be left out)"#
                    + "\n"
            ),
        ])
    func refusals(json: String, status: Int, message: String) throws {
        let stack = Stack.shared
        let pid = try stack.eval(LimitsTests.pidChunk).text
        let result = try post(stack, json, token: stack.adminToken)
        #expect(result.status == status)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.body)) as? [String: Any])
        #expect((object["error"] as? [String: Any])?["message"] as? String == String(message.dropLast()))
        #expect(try stack.eval(LimitsTests.pidChunk).text == pid)
    }

    @Test("a token cannot give scopes it lacks, and the last admin token cannot be revoked here")
    func privileges() throws {
        let stack = try Stack()
        let created = try post(stack, #"{"name":"keeper","scopes":["admin"]}"#)
        #expect(created.status == 201)
        let keeper = try #require(
            (try JSONSerialization.jsonObject(with: Data(created.body)) as? [String: Any])?["token"] as? String)
        let escalate = try post(stack, #"{"name":"sneaky","scopes":["exec"]}"#, token: keeper)
        #expect(escalate.status == 403)
        #expect(escalate.text.contains("your token lacks the scope 'exec', so it cannot give it to another"))
        #expect(try post(stack, #"{"name":"peer","scopes":["admin"]}"#, token: keeper).status == 201)

        // Two other admin tokens: "admin" may go; then "peer"; then "keeper" is the last.
        #expect(try stack.request("/api/v1/admin/tokens/admin", method: "DELETE", token: keeper).status == 200)
        #expect(try stack.request("/api/v1/admin/tokens/peer", method: "DELETE", token: keeper).status == 200)
        let last = try stack.request("/api/v1/admin/tokens/keeper", method: "DELETE", token: keeper)
        #expect(last.status == 409)
        #expect(last.text.contains("'keeper' is the last admin token"))
        #expect(try stack.request("/api/v1/admin/tokens", token: keeper).status == 200)

        let exec = try stack.makeToken("exec-only", scopes: ["exec"])
        #expect(try stack.request("/api/v1/admin/tokens", token: exec).status == 403)
        #expect(try stack.request("/api/v1/admin/tokens", method: "PUT", token: keeper).status == 405)
    }
}
