import Foundation
import Testing

@Suite("Authentication before anything runs")
struct AuthTests {
    let stack = Stack.shared

    func marker() -> String { "auth_marker_\(UInt32.random(in: 0...UInt32.max))" }

    @Test("no credentials: 401 with the Bearer challenge, nothing runs")
    func missing() throws {
        let name = marker()
        let result = try stack.request(body: Array("\(name) = true".utf8))
        #expect(result.status == 401)
        #expect(result.headers["www-authenticate"] == #"Bearer realm="luaexec""#)
        #expect(try stack.eval("return \(name)").body == [])
    }

    @Test("a wrong token: 401 invalid_token, not echoed, nothing runs", arguments: [
        "lxk_000000000000000000000000000000000000", "not-a-token",
    ])
    func wrongToken(token: String) throws {
        let name = marker()
        let result = try stack.request(token: token, body: Array("\(name) = true".utf8))
        #expect(result.status == 401)
        #expect(result.headers["www-authenticate"] == #"Bearer realm="luaexec", error="invalid_token""#)
        #expect(!result.text.contains(token))
        #expect(try stack.eval("return \(name)").body == [])
    }

    @Test("a token with a typo is refused by its checksum")
    func typo() throws {
        var bytes = Array(stack.adminToken.utf8)
        bytes[8] = bytes[8] == UInt8(ascii: "A") ? UInt8(ascii: "B") : UInt8(ascii: "A")
        let result = try stack.request(token: String(decoding: bytes, as: UTF8.self), body: Array("return 1".utf8))
        #expect(result.status == 401)
    }

    @Test("a token in both header and query: 400 invalid_request, nothing runs")
    func bothPlaces() throws {
        let name = marker()
        let result = try stack.request(
            "/api/v1/exec/interactive.lua?AuthToken=\(stack.adminToken)", token: stack.adminToken,
            body: Array("\(name) = true".utf8))
        #expect(result.status == 400)
        #expect(result.headers["www-authenticate"] == #"Bearer realm="luaexec", error="invalid_request""#)
        #expect(try stack.eval("return \(name)").body == [])
    }

    @Test("a malformed Authorization header: 400 invalid_request")
    func malformedHeader() throws {
        let result = try stack.request(headers: ["Authorization: Basic dXNlcjpwYXNz"], body: Array("return 1".utf8))
        #expect(result.status == 400)
        #expect(result.headers["www-authenticate"] == #"Bearer realm="luaexec", error="invalid_request""#)
    }

    @Test("the Authorization header twice, even with the same good token: 400, nothing runs")
    func twoAuthorizations() throws {
        let name = marker()
        let result = try stack.request(
            headers: ["Authorization: Bearer \(stack.adminToken)", "Authorization: Bearer \(stack.adminToken)"],
            body: Array("\(name) = true".utf8))
        // nginx refuses it itself ("client sent duplicate header line"); luaexecd would too
        // (ExecServiceTests), behind a server that passes both.
        #expect(result.status == 400)
        #expect(try stack.eval("return \(name)").body == [])
    }

    @Test("a token without the exec scope: 403 insufficient_scope")
    func scope() throws {
        let created = try Stack.run(
            Stack.binDirectory + "/luaexec",
            ["token", "create", "admin-only-\(UInt32.random(in: 0...UInt32.max))", "--scope", "admin", "--database", stack.database])
        #expect(created.status == 0)
        let token = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        var result = try stack.request(token: token, body: Array("return 1".utf8))
        // The daemon picks up new tokens within a second.
        try Stack.waitUntil(timeout: .seconds(5), "the new token to be known") {
            result = (try? stack.request(token: token, body: Array("return 1".utf8))) ?? result
            return result.status != 401
        }
        #expect(result.status == 403)
        #expect(result.headers["www-authenticate"] == #"Bearer realm="luaexec", error="insufficient_scope", scope="exec""#)
    }

    /// luaexecd percent-decodes parameter names, so `Auth%54oken` is a token to it; a lower-case
    /// `authtoken` is not, but is a secret all the same; two are refused, and masked from the first.
    @Test("the query token never reaches nginx's access log, however the parameter is spelled", arguments: [
        ("AuthToken=SECRET&x=1", 200, "?AuthToken=***&x=1 "),
        ("x=2&Auth%54oken=SECRET", 200, "?x=2&Auth%54oken=*** "),
        ("authtoken=SECRET&x=3", 401, "?authtoken=***&x=3 "),
        ("x=4&AuthToken=SECRET&y=4&AuthToken=SECRET", 400, "?x=4&AuthToken=*** "),
        // Under a name nobody reads, it is still a secret: masked from its prefix on.
        ("AuthToken%3dSECRET&x=5", 401, "?AuthToken%3d*** "),
        ("x=6&token=SECRET&y=6", 401, "?x=6&token=*** "),
        ("SECRET", 401, "?*** "),
        ("AuthToken=SECRET&note=SECRET", 200, "?AuthToken=***&note=*** "),
    ])
    func accessLogMasked(query: String, status: Int, logged: String) throws {
        let path = "/api/v1/exec/interactive.lua?" + query.replacingOccurrences(of: "SECRET", with: stack.adminToken)
        #expect(try stack.request(path, body: Array("return 1".utf8)).status == status)
        let accessLog = stack.directory + "/logs/access.log"
        try Stack.waitUntil(timeout: .seconds(5), "the request's line in the access log") {
            ((try? String(contentsOfFile: accessLog, encoding: .utf8)) ?? "").contains("interactive.lua" + logged)
        }
        #expect(!(try String(contentsOfFile: accessLog, encoding: .utf8)).contains(stack.adminToken))
        #expect(!stack.luaexecdLog().contains(stack.adminToken))
    }
}
