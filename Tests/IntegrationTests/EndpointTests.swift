import Foundation
import Synchronization
import Testing

/// Endpoints registered with `http.listen` (SPEC V4), through nginx, libfcgi, Lua and curl.
@Suite("Endpoints: scripts serve their own URLs")
struct EndpointTests {
    @Test("the example init script's status.lua answers JSON")
    func exampleEndpoint() throws {
        let stack = Stack.shared
        let result = try stack.request("/api/v1/exec/status.lua", token: stack.adminToken)
        #expect(result.status == 200)
        #expect(result.headers["content-type"] == "application/json")
        #expect(result.headers["cache-control"] == "no-store")
        #expect(result.headers["server-timing"]?.hasPrefix("lua;dur=") == true)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(result.body)) as? [String: Any])
        let hostname = try String(contentsOfFile: "/proc/sys/kernel/hostname", encoding: .utf8)
        #expect(object["hostname"] as? String == hostname.trimmingCharacters(in: .whitespacesAndNewlines))
        #expect((object["uptime_s"] as? Double ?? 0) > 0)
        #expect((object["load"] as? [Double])?.count == 3)
    }

    @Test("the callback gets the url, the body, the headers and the request, never the token")
    func callbackArguments() throws {
        let stack = try Stack(tcp: true)
        #expect(
            try stack.eval(
                """
                http.listen('echo', function(url, body, headers, request)
                  local query = {}
                  for k, v in pairs(request.query) do query[#query + 1] = k .. '=' .. v end
                  table.sort(query)
                  return table.concat({url, body, headers['x-test'], tostring(headers.authorization), request.method,
                    table.concat(query, ','), request.client_address, request.token_name}, '\\n')
                end)
                """
            ).status == 200)
        let viaQuery = try stack.request(
            "/api/v1/exec/echo?b=2&a=x%20y&AuthToken=\(stack.adminToken)", method: "PUT", headers: ["X-Test: hi"],
            body: Array("payload".utf8))
        #expect(viaQuery.status == 200)
        #expect(viaQuery.text == "/api/v1/exec/echo?b=2&a=x%20y\npayload\nhi\nnil\nPUT\na=x y,b=2\n127.0.0.1\nadmin")
        let viaHeader = try stack.request("/api/v1/exec/echo", token: stack.adminToken, headers: ["X-Test: h"])
        #expect(viaHeader.text == "/api/v1/exec/echo\n\nh\nnil\nGET\n\n127.0.0.1\nadmin")
    }

    @Test("a body; status and body; status, body and headers: the exact bytes, status and headers")
    func returnShapes() throws {
        let stack = Stack.shared
        let prefix = "shape\(UInt32.random(in: 0...UInt32.max))"
        #expect(
            try stack.eval(
                """
                http.listen('\(prefix)-body', function() return 'plain\\0bytes' end)
                http.listen('\(prefix)-status', function() return 201, 'made' end)
                http.listen('\(prefix)-headers', function()
                  return 202, '{"a":1}', {['Content-Type'] = 'application/json', ['X-Count'] = 7, ['Cache-Control'] = 'max-age=5'}
                end)
                http.listen('\(prefix)-empty', function() return 404 end)
                http.listen('\(prefix)-nocontent', function() return 204, 'dropped' end)
                http.listen('\(prefix)-notmodified', function() return 304, 'dropped', {ETag = '"v1"'} end)
                """
            ).status == 200)
        let body = try stack.request("/api/v1/exec/\(prefix)-body", token: stack.adminToken)
        #expect(body.status == 200)
        #expect(body.body == Array("plain\0bytes".utf8))
        #expect(body.headers["content-type"] == "text/plain; charset=utf-8")
        #expect(body.headers["cache-control"] == "no-store")
        let status = try stack.request("/api/v1/exec/\(prefix)-status", token: stack.adminToken)
        #expect(status.status == 201)
        #expect(status.text == "made")
        let headers = try stack.request("/api/v1/exec/\(prefix)-headers", token: stack.adminToken)
        #expect(headers.status == 202)
        #expect(headers.text == #"{"a":1}"#)
        #expect(headers.headers["content-type"] == "application/json")
        #expect(headers.headers["x-count"] == "7")
        #expect(headers.headers["cache-control"] == "max-age=5")
        #expect(headers.headers["x-lua-error"] == nil)
        let empty = try stack.request("/api/v1/exec/\(prefix)-empty", token: stack.adminToken)
        #expect(empty.status == 404)
        #expect(empty.body.isEmpty)
        // No content in a 204 or a 304 (RFC 9110): no body, no Content-Length, no made-up type.
        let noContent = try stack.request("/api/v1/exec/\(prefix)-nocontent", token: stack.adminToken)
        #expect(noContent.status == 204)
        #expect(noContent.body.isEmpty)
        #expect(noContent.headers["content-length"] == nil)
        #expect(noContent.headers["content-type"] == nil)
        #expect(noContent.headers["transfer-encoding"] == nil)
        let notModified = try stack.request("/api/v1/exec/\(prefix)-notmodified", token: stack.adminToken)
        #expect(notModified.status == 304)
        #expect(notModified.body.isEmpty)
        #expect(notModified.headers["content-length"] == nil)
        #expect(notModified.headers["etag"] == #""v1""#)
    }

    @Test(
        "results of the wrong shape are the handler's runtime error",
        arguments: [
            ("return {}", "returned a table first, which is neither a body nor a status from 200 to 599"),
            ("return 99, 'x'", "returned the number 99 first, which is neither a body nor a status from 200 to 599"),
            ("return 200, {}", "returned a table as its body"),
            (
                "return 200, 'x', {['X-A'] = 'a\\r\\nSet-Cookie: stolen'}",
                "set the header 'X-A' to a value with a line break"
            ),
            (
                "return 200, 'x', {['Content-Length'] = '1'}",
                "set the header 'Content-Length', which luaexec sets itself"
            ),
            ("return 200, 'x', {['bad name'] = '1'}", "set a header with the invalid name 'bad name'"),
            // nginx answered its own 502 for these (fastcgi_buffer_size), the call counted answered.
            (
                "return 200, 'x', {['X-Big'] = string.rep('a', 100 * 1024)}",
                "set headers of 102409 bytes together, past the 2048 that fit in the web server's buffer"
            ),
            (
                "return 200, 'x', {['X-A'] = string.rep('a', 1100), ['X-B'] = string.rep('b', 1100)}",
                "set headers of 2214 bytes together, past the 2048 that fit in the web server's buffer"
            ),
            // Counted as sent: each byte that is not UTF-8 goes out as U+FFFD, three bytes.
            (
                "return 200, 'x', {['X-A'] = string.rep('\\255', 700)}",
                "set headers of 2107 bytes together, past the 2048 that fit in the web server's buffer"
            ),
        ])
    func wrongShapes(code: String, problem: String) throws {
        let stack = Stack.shared
        let name = "wrong\(UInt32.random(in: 0...UInt32.max))"
        #expect(try stack.eval("http.listen('\(name)', function() \(code) end)").status == 200)
        let result = try stack.request("/api/v1/exec/\(name)", token: stack.adminToken)
        #expect(result.status == 500)
        #expect(result.headers["x-lua-error"] == "runtime")
        #expect(result.headers["set-cookie"] == nil)
        #expect(result.text == "endpoint '\(name)' \(problem); return a body string, or status, body, headers\n")
    }

    @Test("a handler's headers up to the 2048 bytes allowed reach the client through nginx")
    func largestHeadersPass() throws {
        let stack = Stack.shared
        let name = "bigheaders\(UInt32.random(in: 0...UInt32.max))"
        // 'X-Big: ' + 2037 bytes + CRLF: 2048.
        #expect(
            try stack.eval("http.listen('\(name)', function() return 200, 'x', {['X-Big'] = string.rep('a', 2037)} end)")
                .status == 200)
        let result = try stack.request("/api/v1/exec/\(name)", token: stack.adminToken)
        #expect(result.status == 200)
        #expect(result.headers["x-big"] == String(repeating: "a", count: 2037))
    }

    @Test("errors, time and memory limits in a handler answer as a chunk's do, and the state lives on")
    func errorsAndLimits() throws {
        let stack = try Stack(settings: ["limits.time=0.5", "limits.memory=32"])
        #expect(
            try stack.eval(
                """
                kept = 'yes'
                http.listen('broken', function() print('before') error('broken handler') end)
                http.listen('spin', function() while true do end end)
                http.listen('hungry', function() local s = ('x'):rep(1 << 20) while true do s = s .. s end end)
                """
            ).status == 200)
        let broken = try stack.request("/api/v1/exec/broken", token: stack.adminToken)
        #expect(broken.status == 500)
        #expect(broken.headers["x-lua-error"] == "runtime")
        #expect(broken.text.hasPrefix("before\ninteractive.lua:2: broken handler\nstack traceback:\n"))
        let json = try stack.request(
            "/api/v1/exec/broken", token: stack.adminToken, headers: ["Accept: application/json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.body)) as? [String: Any])
        #expect(object["ok"] as? Bool == false)
        #expect((object["error"] as? [String: Any])?["kind"] as? String == "runtime")
        let spin = try stack.request("/api/v1/exec/spin", token: stack.adminToken)
        #expect(spin.status == 504)
        #expect(spin.headers["x-lua-error"] == "timeout")
        // Where the handler was stopped (SPEC O11): called from luaexec's C, it has no name.
        #expect(
            spin.text == "the chunk exceeded its time limit (0.5 seconds)\nstack traceback:\n"
                + "\tinteractive.lua:3: in function <interactive.lua:3>\n\t[C]: in ?\n\t[C]: in ?\n")
        let hungry = try stack.request("/api/v1/exec/hungry", token: stack.adminToken)
        #expect(hungry.status == 500)
        #expect(hungry.headers["x-lua-error"] == "memory")
        #expect(try stack.eval("return kept").text == "yes")
    }

    @Test("a name nobody registered is 404 and bad names are refused at http.listen")
    func unknownAndBadNames() throws {
        let stack = Stack.shared
        let missing = try stack.request(
            "/api/v1/exec/nobody-\(UInt32.random(in: 0...UInt32.max))", token: stack.adminToken)
        #expect(missing.status == 404)
        #expect(try stack.request("/api/v1/exec/status.lua").status == 401)
        let bad = try stack.eval("http.listen('a/b', print)")
        #expect(bad.status == 500)
        #expect(
            bad.text.hasPrefix(
                "interactive.lua:1: http.listen: bad endpoint name 'a/b': use letters, digits, '.', '_', '~' and '-' only\n"
            ))
        let reserved = try stack.eval("http.listen('interactive.lua', print)")
        #expect(
            reserved.text.hasPrefix(
                "interactive.lua:1: http.listen: bad endpoint name 'interactive.lua': luaexec serves that URL itself\n")
        )
    }

    @Test("swap and stop while 32 clients keep calling: every answer comes from one whole registration")
    func swapUnderLoad() throws {
        let stack = try Stack()
        #expect(try stack.eval("version = 'A' http.listen('v', function() return 'A:' .. version end)").status == 200)
        let answers = Mutex<[String]>([])
        let clients = (0..<32).map { _ in
            Thread {
                var mine: [String] = []
                for _ in 0..<10 {
                    let result = try? stack.request("/api/v1/exec/v", token: stack.adminToken)
                    mine.append(result.map { "\($0.status) \($0.text)" } ?? "curl failed")
                }
                answers.withLock { $0 += mine }
            }
        }
        for client in clients { client.start() }
        var swaps = 0
        while answers.withLock({ $0.count }) < 320 && swaps < 200 {
            let next = swaps % 2 == 0 ? "B" : "A"
            _ = try stack.eval("version = '\(next)' http.listen('v', function() return '\(next):' .. version end)")
            swaps += 1
        }
        try Stack.waitUntil(timeout: .seconds(60), "every client to finish") { answers.withLock { $0.count } == 320 }
        let all = answers.withLock { $0 }
        #expect(swaps > 0)
        #expect(all.count == 320)
        #expect(all.allSatisfy { $0 == "200 A:A" || $0 == "200 B:B" }, "\(Set(all))")
        #expect(try stack.eval("return http.stop_listen('v')").text == "true")
        #expect(try stack.request("/api/v1/exec/v", token: stack.adminToken).status == 404)
    }

    @Test("an endpoint:NAME token reaches that endpoint and nothing else; what it may not do never runs")
    func narrowToken() throws {
        let stack = try Stack(settings: ["exec.actions=true"])
        #expect(
            try stack.eval(
                """
                http.listen('a', function() hits_a = (hits_a or 0) + 1 return 'a' end)
                http.listen('b', function() hits_b = (hits_b or 0) + 1 return 'b' end)
                http.action('act', function() acted = true return 'acted' end)
                """
            ).status == 200)
        // Used the moment `luaexec token create` returns (SPEC T7).
        let bell = try stack.makeToken("bell", scopes: ["endpoint:a"])
        let a = try stack.request("/api/v1/exec/a", token: bell)
        #expect(a.status == 200)
        #expect(a.text == "a")
        let b = try stack.request("/api/v1/exec/b", token: bell)
        #expect(b.status == 403)
        #expect(
            b.headers["www-authenticate"]
                == #"Bearer realm="luaexec", error="insufficient_scope", scope="endpoint:b exec""#)
        #expect(b.text == "the token lacks the 'endpoint:b' scope (or 'exec')\n")
        let chunk = try stack.request(token: bell, body: Array("ran = true".utf8))
        #expect(chunk.status == 403)
        #expect(try stack.request("/api/v1/exec/command?action=act", token: bell).status == 403)
        #expect(try stack.request("/api/v1/exec/command?action=%3F", token: bell).status == 403)
        #expect(try stack.request("/api/v1/admin/status", token: bell).status == 403)
        #expect(try stack.eval("return hits_a, hits_b, ran, acted").text == "1\tnil\tnil\tnil")
        let audit = stack.luaexecdLog().split(separator: "\n").filter { $0.contains("token=bell") }
        #expect(audit.contains { $0.contains("scope=endpoint:a endpoint=\"GET /api/v1/exec/a\" status=200") })
        #expect(
            audit.contains { $0.contains("scope=endpoint:b endpoint=\"GET /api/v1/exec/b\" status=403 error=scope") })
        let listed = try Stack.run(Stack.binDirectory + "/luaexec", ["token", "list", "--database", stack.database])
        #expect(listed.stdout.contains("\nbell   endpoint:a  "))
    }

    @Test("a token works on its very first request, every time")
    func freshTokens() throws {
        let stack = Stack.shared
        for round in 0..<5 {
            let token = try stack.makeToken("fresh-\(round)-\(UInt32.random(in: 0...UInt32.max))", scopes: ["exec"])
            #expect(try stack.request(token: token, body: Array("return 'ok'".utf8)).text == "ok")
        }
    }

    @Test("scopes with a bad name are refused by token create")
    func badScopes() throws {
        let stack = Stack.shared
        for scope in ["endpoint:", "endpoint:a/b", "action:..", "door:a"] {
            let result = try Stack.run(
                Stack.binDirectory + "/luaexec",
                ["token", "create", "x", "--scope", scope, "--database", stack.database])
            #expect(result.status == 64, "\(scope)")
            #expect(result.stderr.contains("--scope"), "\(result.stderr)")
        }
    }
}
