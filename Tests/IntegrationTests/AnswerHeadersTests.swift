import Foundation
import Testing

@testable import FastCGI

/// What an answer may make a browser or the web server in front do (issue 24, items 6 and 11).
/// The web console lives on the same origin as every endpoint, so an answer that ran script
/// there could read the console's token; and a header a web server acts on (X-Accel-Redirect,
/// X-Sendfile, a local Location) would let a handler reach what nginx serves only internally.
/// luaexecd is the authority (lighttpd or Apache may front it instead of nginx): every answer it
/// writes carries the sandbox policy, and a handler sets only the headers of an allow-list.
@Suite("Answers run no script in the console's origin, and no web server acts on a handler's headers")
struct AnswerHeadersTests {
    /// A small body limit, so that the daemon's own 413 is reached over FastCGI without
    /// megabytes; Action URLs on.
    static let stack: Stack = try! Stack(
        settings: ["auth.failure_limit=1000000", "exec.actions=true", "exec.max_body=4096"])

    /// What luaexecd adds to every answer (`HeaderPolicy.securityLines`).
    static let policy = "sandbox; default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    static let registered: Void = {
        let answer = try! stack.eval(
            """
            http.listen('page.html', function()
              return 200, '<p id="s">inert</p><script>document.title = sessionStorage.getItem("luaexec.token")</script>',
                {['Content-Type'] = 'text/html; charset=utf-8'}
            end)
            http.action('twice', function(n) return n * 2 end, {params = {{name = 'n', type = 'integer'}}})
            """)
        precondition(answer.status == 200, answer.text)
    }()

    /// One request straight to luaexecd's socket, as a web server other than nginx would send it.
    static func direct(
        _ path: String, method: String = "GET", query: String = "", headers: [(String, String)] = [],
        token: String? = stack.adminToken, body: String = ""
    ) throws -> FastCGIClient.Answer {
        var params: [UInt8] = []
        var pairs = [
            ("REQUEST_METHOD", method), ("DOCUMENT_URI", path), ("QUERY_STRING", query), ("REMOTE_ADDR", "127.0.0.1"),
            ("CONTENT_LENGTH", String(body.utf8.count)),
        ]
        if let token { pairs.append(("HTTP_AUTHORIZATION", "Bearer " + token)) }
        for (name, value) in headers {
            pairs.append(("HTTP_" + name.uppercased().replacingOccurrences(of: "-", with: "_"), value))
        }
        for (name, value) in pairs { FastCGIEncoder.pair(Array(name.utf8), Array(value.utf8), into: &params) }
        let client = try FastCGIClient(stack.fastcgiSocket)
        try client.send(
            FastCGIClient.begin(id: 1) + FastCGIClient.record(4, id: 1, params) + FastCGIClient.record(4, id: 1)
                + (body.isEmpty ? [] : FastCGIClient.record(5, id: 1, Array(body.utf8)))
                + FastCGIClient.record(5, id: 1))
        return try client.readAnswer()
    }

    /// The head of an answer through nginx as sent: every header line, duplicates kept.
    static func rawHead(_ path: String, token: String? = stack.adminToken, body: String? = nil) throws -> [(
        String, String
    )] {
        var arguments = ["-sk", "-o", "/dev/null", "-D", "-", "--unix-socket", stack.httpsSocket]
        if let token { arguments += ["-H", "Authorization: Bearer \(token)"] }
        if let body { arguments += ["--data-binary", body] }
        let result = try Stack.run("/usr/bin/curl", arguments + ["https://localhost" + path])
        return result.stdout.components(separatedBy: "\r\n").dropFirst().compactMap { line in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
    }

    @Test(
        "every answer luaexecd writes carries the sandbox policy, nosniff and no-referrer",
        arguments: [
            ("interactive.lua, text", "/api/v1/exec/interactive.lua", "POST", "", [], "return '<b>x</b>'", "200 OK"),
            (
                "interactive.lua, JSON", "/api/v1/exec/interactive.lua", "POST", "", [("Accept", "application/json")],
                "return 1", "200 OK"
            ),
            ("a syntax error", "/api/v1/exec/interactive.lua", "POST", "", [], "return +", "400 Bad Request"),
            (
                "a runtime error", "/api/v1/exec/interactive.lua", "POST", "", [], "error('<script>')",
                "500 Internal Server Error"
            ),
            (
                "a body over exec.max_body", "/api/v1/exec/interactive.lua", "POST", "", [],
                String(repeating: " ", count: 5000), "413 Content Too Large"
            ),
            ("a method refused", "/api/v1/exec/interactive.lua", "DELETE", "", [], "", "405 Method Not Allowed"),
            ("an endpoint's text/html", "/api/v1/exec/page.html", "GET", "", [], "", "200 OK"),
            ("an unknown endpoint", "/api/v1/exec/nobody.html", "GET", "", [], "", "404 Not Found"),
            ("an Action URL", "/api/v1/exec/command", "GET", "action=twice&n=21", [], "", "200 OK"),
            (
                "an ill-typed action parameter", "/api/v1/exec/command", "GET", "action=twice&n=x", [], "",
                "400 Bad Request"
            ),
            ("the admin status", "/api/v1/admin/status", "GET", "", [], "", "200 OK"),
            ("the metrics", "/api/v1/metrics", "GET", "", [], "", "200 OK"),
            ("whoami", "/api/v1/whoami", "GET", "", [], "", "200 OK"),
            ("a path outside the API", "/index.html", "GET", "", [], "", "404 Not Found"),
        ] as [(String, String, String, String, [(String, String)], String, String)])
    func everyAnswerIsSandboxed(
        what: String, path: String, method: String, query: String, headers: [(String, String)], body: String,
        status: String
    ) throws {
        _ = Self.registered
        let answer = try Self.direct(path, method: method, query: query, headers: headers, body: body)
        #expect(answer.status == status, "\(what)")
        #expect(answer.headers["content-security-policy"] == Self.policy, "\(what)")
        #expect(answer.headers["x-content-type-options"] == "nosniff", "\(what)")
        #expect(answer.headers["referrer-policy"] == "no-referrer", "\(what)")
        // Refused before any token is looked at, too.
        let anonymous = try Self.direct(path, method: method, query: query, headers: headers, token: nil, body: body)
        #expect(anonymous.headers["content-security-policy"] == Self.policy, "\(what), without a token")
        #expect(anonymous.headers["x-content-type-options"] == "nosniff", "\(what), without a token")
    }

    @Test("through nginx an API answer carries the sandbox policy once, and never the page's")
    func throughNginx() throws {
        _ = Self.registered
        for (path, token, body) in [
            ("/api/v1/exec/page.html", Self.stack.adminToken, nil), ("/api/v1/exec/interactive.lua", nil, "return 1"),
            ("/api/v1/exec/page.html?AuthToken=\(Self.stack.adminToken)", nil, nil),
        ] as [(String, String?, String?)] {
            let head = try Self.rawHead(path, token: token, body: body)
            #expect(head.filter { $0.0 == "content-security-policy" }.map(\.1) == [Self.policy], "\(path)")
            #expect(head.filter { $0.0 == "x-content-type-options" }.map(\.1) == ["nosniff"], "\(path)")
            #expect(head.filter { $0.0 == "referrer-policy" }.map(\.1) == ["no-referrer"], "\(path)")
            #expect(head.filter { $0.0 == "x-frame-options" }.map(\.1) == ["DENY"], "\(path)")
        }
    }

    /// Headers a web server acts on (an internal redirect, a file sent from its disk, a local
    /// redirect, the status, hop-by-hop), that change the origin for the browser (a cookie,
    /// HSTS, a service worker's scope, wiped storage, reports elsewhere, a credentials prompt),
    /// or that luaexec sets itself: the handler's call is a runtime error that names the header.
    @Test(
        "a header outside the allow-list makes the call the handler's runtime error, and is not sent",
        arguments: [
            ("X-Accel-Redirect", "/index.html", "which a handler may not set"),
            ("x-accel-buffering", "no", "which a handler may not set"),
            ("X-Sendfile", "/etc/passwd", "which a handler may not set"),
            ("X-LIGHTTPD-send-file", "/etc/passwd", "which a handler may not set"),
            ("X-Reproxy-URL", "http://127.0.0.1/", "which a handler may not set"),
            ("Set-Cookie", "session=1; Path=/", "which a handler may not set"),
            ("Refresh", "0; url=https://example.com/", "which a handler may not set"),
            ("Link", "</x.js>; rel=preload", "which a handler may not set"),
            ("Service-Worker-Allowed", "/", "which a handler may not set"),
            ("Clear-Site-Data", "\"storage\"", "which a handler may not set"),
            ("Strict-Transport-Security", "max-age=1", "which a handler may not set"),
            ("NEL", "{}", "which a handler may not set"),
            ("WWW-Authenticate", "Basic realm=\"box\"", "which a handler may not set"),
            ("Transfer-Encoding", "chunked", "which a handler may not set"),
            ("Connection", "close", "which a handler may not set"),
            ("Upgrade", "websocket", "which a handler may not set"),
            ("X-Frame-Options", "ALLOWALL", "which a handler may not set"),
            ("Status", "302 Found", "which luaexec sets itself"),
            ("Content-Security-Policy", "script-src *", "which luaexec sets itself"),
            ("content-security-policy-report-only", "script-src *", "which luaexec sets itself"),
            ("X-Content-Type-Options", "sniff", "which luaexec sets itself"),
            ("Referrer-Policy", "unsafe-url", "which luaexec sets itself"),
            ("Server-Timing", "x;dur=1", "which luaexec sets itself"),
            ("X-Lua-Error", "none", "which luaexec sets itself"),
        ])
    func refusedHeaders(name: String, value: String, why: String) throws {
        let stack = Self.stack
        let endpoint = "h\(UInt32.random(in: 0...UInt32.max))"
        let set = try stack.eval(
            "http.listen('\(endpoint)', function() return 200, 'handler body', {['\(name)'] = \(luaString(value))} end)"
        )
        #expect(set.status == 200)
        let answer = try stack.request("/api/v1/exec/\(endpoint)", token: stack.adminToken)
        #expect(answer.status == 500)
        #expect(answer.headers["x-lua-error"] == "runtime")
        let detail =
            why.hasSuffix("itself")
            ? "" : " (web servers and browsers act on it; docs/endpoints.md lists what a handler may set)"
        #expect(
            answer.text
                == "endpoint '\(endpoint)' set the header '\(name)', \(why)\(detail); return a body string, or status, body, headers\n"
        )
        #expect(
            answer.headers["set-cookie"] == nil && answer.headers["refresh"] == nil && answer.headers["link"] == nil)
        #expect(answer.headers["content-security-policy"] == Self.policy)
    }

    @Test(
        "a Location must be an absolute http or https URL: a path would be a web server's local redirect",
        arguments: [
            "/index.html", "//example.com/", "javascript:alert(1)", "https:///x", "data:text/html,x", "ftp://x/",
        ])
    func localRedirectRefused(location: String) throws {
        let stack = Self.stack
        let endpoint = "loc\(UInt32.random(in: 0...UInt32.max))"
        #expect(
            try stack.eval(
                "http.listen('\(endpoint)', function() return 302, '', {Location = \(luaString(location))} end)"
            )
            .status == 200)
        let answer = try stack.request("/api/v1/exec/\(endpoint)", token: stack.adminToken)
        #expect(answer.status == 500)
        #expect(answer.headers["location"] == nil)
        #expect(
            answer.text
                == "endpoint '\(endpoint)' set the header 'Location' to '\(location)', not an absolute http:// or https:// URL; return a body string, or status, body, headers\n"
        )
    }

    @Test("what a handler may set passes unchanged")
    func allowedHeaders() throws {
        let stack = Self.stack
        let endpoint = "ok\(UInt32.random(in: 0...UInt32.max))"
        #expect(
            try stack.eval(
                """
                http.listen('\(endpoint)', function()
                  return 302, '<svg xmlns="http://www.w3.org/2000/svg"/>', {
                    ['Content-Type'] = 'image/svg+xml', ['Content-Disposition'] = 'inline; filename="a.svg"',
                    ['Content-Language'] = 'de', ETag = '"v2"', ['Last-Modified'] = 'Tue, 01 Dec 2026 10:00:00 GMT',
                    Expires = '0', Vary = 'Accept', ['Cache-Control'] = 'max-age=5', ['Retry-After'] = 3, Allow = 'GET',
                    Location = 'https://example.com/next?a=1', ['Access-Control-Allow-Origin'] = '*',
                    ['X-Request-Count'] = 7, ['x-custom'] = 'yes'}
                end)
                """
            ).status == 200)
        let answer = try stack.request("/api/v1/exec/\(endpoint)", token: stack.adminToken)
        #expect(answer.status == 302)
        #expect(answer.text == #"<svg xmlns="http://www.w3.org/2000/svg"/>"#)
        #expect(answer.headers["content-type"] == "image/svg+xml")
        #expect(answer.headers["content-disposition"] == #"inline; filename="a.svg""#)
        #expect(answer.headers["content-language"] == "de")
        #expect(answer.headers["etag"] == #""v2""#)
        #expect(answer.headers["last-modified"] == "Tue, 01 Dec 2026 10:00:00 GMT")
        #expect(answer.headers["cache-control"] == "max-age=5")
        #expect(answer.headers["retry-after"] == "3")
        #expect(answer.headers["location"] == "https://example.com/next?a=1")
        #expect(answer.headers["access-control-allow-origin"] == "*")
        #expect(answer.headers["x-request-count"] == "7")
        #expect(answer.headers["x-custom"] == "yes")
        #expect(answer.headers["content-security-policy"] == Self.policy)
        #expect(answer.headers["x-content-type-options"] == "nosniff")
    }

    /// nginx acts on X-Accel-Redirect from a FastCGI answer: an internal redirect to any
    /// location of the site, internal ones included, with the caller's own headers. Here the
    /// caller holds an admin token and the handler's author wants the admin status (a GET of
    /// /api/v1/admin/... through the internal query-token location), or a file nginx serves.
    @Test(
        "X-Accel-Redirect from a handler is followed by nobody",
        arguments: ["/luaexec-query-token/admin/status", "/index.html", "/vendor/codemirror/lib/codemirror.js"])
    func accelRedirectNotFollowed(target: String) throws {
        let stack = Self.stack
        let endpoint = "xa\(UInt32.random(in: 0...UInt32.max))"
        #expect(
            try stack.eval(
                "http.listen('\(endpoint)', function() return 200, 'handler body', {['X-Accel-Redirect'] = '\(target)'} end)"
            ).status == 200)
        for query in ["", "?AuthToken=\(stack.adminToken)"] {
            let answer = try stack.request(
                "/api/v1/exec/\(endpoint)\(query)", token: query.isEmpty ? stack.adminToken : nil)
            #expect(answer.status == 500, "\(target)\(query.isEmpty ? "" : " (query token)")")
            #expect(answer.headers["x-lua-error"] == "runtime")
            #expect(
                answer.text.hasPrefix(
                    "endpoint '\(endpoint)' set the header 'X-Accel-Redirect', which a handler may not set"))
            #expect(
                !answer.text.contains("uptime") && !answer.text.contains("<html") && !answer.text.contains("CodeMirror")
            )
            #expect(answer.headers["x-accel-redirect"] == nil)
        }
    }

    func luaString(_ text: String) -> String {
        "'" + text.replacingOccurrences(of: "\\", with: "\\\\").replacingOccurrences(of: "'", with: "\\'") + "'"
    }
}
