import Foundation
import Testing

/// The core behaviours through each web server luaexec ships a site for (SPEC §1, E1;
/// docs/servers.md): real nginx, lighttpd and Apache httpd, each in front of a real luaexecd.
/// The rest of the suite runs through nginx; this one shows the others give the same answers,
/// and that a URL reaches the luaexecd path its server resolved.
@Suite("Behind each web server")
struct WebServerTests {
    /// One stack per server for the whole suite, started when a test first needs it: an endpoint
    /// that answers its URL, and an action.
    static let nginx = makeStack(.nginx)
    static let lighttpd = makeStack(.lighttpd)
    static let apache = makeStack(.apache)

    static func stack(_ server: Stack.WebServer) -> Stack {
        switch server {
        case .nginx: nginx
        case .lighttpd: lighttpd
        case .apache: apache
        }
    }

    private static func makeStack(_ server: Stack.WebServer) -> Stack {
        let stack = try! Stack(settings: ["exec.actions=true", "auth.failure_limit=1000000"], server: server)
        let registered = try! stack.eval(
            """
            http.listen('where', function(url) return url end)
            http.action('greet', function(name, times) return ('hi ' .. name .. ' '):rep(times or 1) end,
              {help = 'Greets.', params = {{name = 'name', type = 'string'}, {name = 'times', type = 'integer', optional = true}}})
            """)
        precondition(registered.status == 200, "registering through \(server): \(registered.status) \(registered.text)")
        return stack
    }

    static let servers = Stack.WebServer.allCases

    /// The headers every API answer carries, whichever server set them.
    static let apiSecurityHeaders = [
        "content-security-policy":
            "sandbox; default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        "x-content-type-options": "nosniff",
        "referrer-policy": "no-referrer",
        "x-frame-options": "DENY",
    ]

    @Test("a chunk with the token as a bearer header and as ?AuthToken= answers its exact result", arguments: servers)
    func exec(server: Stack.WebServer) throws {
        let stack = Self.stack(server)
        let bearer = try stack.request(token: stack.adminToken, body: Array("return 1+1, 'x'".utf8))
        #expect(bearer.status == 200)
        #expect(bearer.text == "2\tx")
        #expect(bearer.headers["content-type"] == "text/plain; charset=utf-8")
        #expect(bearer.headers["cache-control"] == "no-store")
        for (name, value) in Self.apiSecurityHeaders { #expect(bearer.headers[name] == value, "\(name)") }
        let query = try stack.request(
            "/api/v1/exec/interactive.lua?AuthToken=\(stack.adminToken)", body: Array("print('hello world')".utf8))
        #expect(query.status == 200)
        #expect(query.text == "hello world\n")
        let json = try stack.request(
            token: stack.adminToken, headers: ["Accept: application/json"], body: Array("return 7".utf8))
        #expect(json.status == 200)
        #expect(json.text.hasPrefix(#"{"ok":true,"results":[7],"output":"","elapsed_ms":"#))
    }

    @Test("a runtime error is 500 with its kind; another method is 405 with Allow", arguments: servers)
    func errors(server: Stack.WebServer) throws {
        let stack = Self.stack(server)
        let failed = try stack.request(token: stack.adminToken, body: Array("error('no')".utf8))
        #expect(failed.status == 500)
        #expect(failed.headers["x-lua-error"] == "runtime")
        #expect(failed.text.hasPrefix("interactive.lua:1: no\nstack traceback:\n"))
        let syntax = try stack.request(token: stack.adminToken, body: Array("return +".utf8))
        #expect(syntax.status == 400)
        #expect(syntax.headers["x-lua-error"] == "syntax")
        let other = try stack.request(method: "DELETE", token: stack.adminToken)
        #expect(other.status == 405)
        #expect(other.headers["allow"] == "GET, POST")
    }

    @Test("a wrong token is 401 invalid_token, and its chunk does not run", arguments: servers)
    func wrongToken(server: Stack.WebServer) throws {
        let stack = Self.stack(server)
        let marker = "ran_\(UInt32.random(in: 0...UInt32.max))"
        let refused = try stack.request(token: "lxk_wrong", body: Array("\(marker) = true".utf8))
        #expect(refused.status == 401)
        #expect(refused.headers["www-authenticate"] == #"Bearer realm="luaexec", error="invalid_token""#)
        #expect(try stack.eval("return \(marker) == nil").text == "true")
    }

    @Test("a body over 1 MiB is 413 from the server, and nothing runs", arguments: servers)
    func tooLarge(server: Stack.WebServer) throws {
        let stack = Self.stack(server)
        let marker = "big_\(UInt32.random(in: 0...UInt32.max))"
        let chunk = "\(marker) = true --" + String(repeating: "x", count: 1 << 20)
        let refused = try stack.request(token: stack.adminToken, body: Array(chunk.utf8))
        #expect(refused.status == 413)
        #expect(try stack.eval("return \(marker) == nil").text == "true")
    }

    @Test("an endpoint gets its URL; an Action URL gets its query parameters", arguments: servers)
    func endpointAndAction(server: Stack.WebServer) throws {
        let stack = Self.stack(server)
        let endpoint = try stack.request("/api/v1/exec/where?a=1&b=x%20y", token: stack.adminToken)
        #expect(endpoint.status == 200)
        #expect(endpoint.text == "/api/v1/exec/where?a=1&b=x%20y")
        let action = try stack.request("/api/v1/exec/command?action=greet&name=ann&times=2", token: stack.adminToken)
        #expect(action.status == 200)
        #expect(action.text == "hi ann hi ann ")
        let missing = try stack.request("/api/v1/exec/command?action=greet", token: stack.adminToken)
        #expect(missing.status == 400)
    }

    /// A request target sent as is (curl --path-as-is), and what luaexecd must route it as: the
    /// path each server resolved, the same for every server unless `differs` says otherwise.
    struct PathCase: Sendable, CustomStringConvertible {
        let target: String
        let status: Int
        /// The answer's body, or its start for a JSON status.
        let body: String
        /// Servers that resolve the target otherwise, with their status (the body is the server's own).
        var differs: [Stack.WebServer: Int] = [:]
        var description: String { target }
    }

    static let pathCases: [PathCase] = [
        // %2F is a slash to nginx (and to lighttpd with the shipped url-path-2f-decode); Apache
        // refuses an encoded slash (AllowEncodedSlashes Off): 404, luaexecd never asked.
        PathCase(target: "/api/v1/exec/..%2Fadmin/status", status: 200, body: #"{"version":"#, differs: [.apache: 404]),
        PathCase(
            target: "/api/v1/exec/a%2Fb", status: 404, body: "no such endpoint: /api/v1/exec/a/b\n",
            differs: [.apache: 404]),
        // An encoded dot segment is resolved before routing, by every server.
        PathCase(target: "/api/v1/exec/%2e%2e/admin/status", status: 200, body: #"{"version":"#),
        PathCase(target: "/api/v1/exec/a/.%2e/where", status: 200, body: "/api/v1/exec/where"),
        PathCase(target: "//api///v1/exec//where", status: 200, body: "/api/v1/exec/where"),
        PathCase(target: "/api/v1/exec/caf%C3%A9", status: 404, body: "no such endpoint: /api/v1/exec/café\n"),
        PathCase(target: "/api/v1/exec/a%20b", status: 404, body: "no such endpoint: /api/v1/exec/a b\n"),
        PathCase(target: "/api/v1/exec/x/..", status: 404, body: "no such endpoint: /api/v1/exec/\n"),
        // A malformed escape: nginx and Apache refuse it; lighttpd passes it on as text, and no
        // endpoint has that name.
        PathCase(
            target: "/api/v1/exec/a%zzb", status: 404, body: "no such endpoint: /api/v1/exec/a%zzb\n",
            differs: [.nginx: 400, .apache: 400]),
    ]

    @Test(
        "a path with %2F, .., // or non-ASCII reaches the luaexecd path its server resolved", arguments: servers,
        pathCases)
    func paths(server: Stack.WebServer, path: PathCase) throws {
        let stack = Self.stack(server)
        let answer = try stack.request(path.target, token: stack.adminToken, extra: ["--path-as-is"])
        if let status = path.differs[server] {
            #expect(answer.status == status)
            #expect(!answer.text.contains("no such endpoint"), "answered by the server, not luaexecd")
        } else {
            #expect(answer.status == path.status)
            #expect(answer.text.hasPrefix(path.body), "\(answer.text)")
            if path.status != 200 || !path.body.hasPrefix("{") { #expect(answer.text == path.body) }
        }
    }

    /// Targets no server passes on, with each server's own status.
    static let refusedTargets: [(target: String, statuses: [Stack.WebServer: Int])] = [
        // nginx and Apache refuse a climb above the root; lighttpd stops at the root (RFC 3986
        // §5.2.4) and finds no file /x.
        ("/api/v1/%2e%2e/%2e%2e/%2e%2e/x", [.nginx: 400, .lighttpd: 404, .apache: 400]),
        ("/api/v1/exec/a%00b", [.nginx: 400, .lighttpd: 400, .apache: 404]),
    ]

    @Test(
        "a target that climbs above the root, or holds a NUL, is answered by the server, never by luaexecd",
        arguments: servers, refusedTargets.indices)
    func refusedByServer(server: Stack.WebServer, index: Int) throws {
        let stack = Self.stack(server)
        let (target, statuses) = Self.refusedTargets[index]
        let answer = try stack.request(target, token: stack.adminToken, extra: ["--path-as-is"])
        #expect(answer.status == statuses[server], "\(target)")
        // luaexecd's answers, its refusals too, all carry Cache-Control: no-store.
        #expect(!answer.text.contains("no such endpoint") && answer.headers["cache-control"] != "no-store")
    }

    @Test("a 600 KB body, and a chunked one, reach the chunk whole", arguments: servers)
    func bodies(server: Stack.WebServer) throws {
        let stack = Self.stack(server)
        let chunk = "return #'" + String(repeating: "y", count: 600_000) + "'"
        let whole = try stack.request(token: stack.adminToken, body: Array(chunk.utf8))
        #expect(whole.status == 200)
        #expect(whole.text == "600000")
        let chunked = try stack.request(
            token: stack.adminToken, headers: ["Transfer-Encoding: chunked"], body: Array(chunk.utf8))
        #expect(chunked.status == 200)
        #expect(chunked.text == "600000")
    }

    @Test("the page and the editor's files are served with the page's policy; admin status answers", arguments: servers)
    func pageAndAdmin(server: Stack.WebServer) throws {
        let stack = Self.stack(server)
        let page = try stack.request("/")
        #expect(page.status == 200)
        // nginx names no charset (the page declares it); the others' sites add it.
        #expect(page.headers["content-type"] == (server == .nginx ? "text/html" : "text/html; charset=utf-8"))
        #expect(
            page.headers["content-security-policy"]
                == "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
        )
        #expect(page.headers["x-frame-options"] == "DENY")
        #expect(page.headers["cache-control"] == "no-cache")
        #expect(page.text.hasPrefix("<!doctype html>\n"))
        let editor = try stack.request("/vendor/codemirror/lib/codemirror.js")
        #expect(editor.status == 200)
        #expect(editor.headers["cache-control"] == "max-age=86400")
        #expect(
            editor.headers["content-type"]?.hasPrefix(server == .nginx ? "application/javascript" : "text/javascript")
                == true)
        let status = try stack.request("/api/v1/admin/status", token: stack.adminToken)
        #expect(status.status == 200)
        #expect(status.text.hasPrefix(#"{"version":"#))
        #expect(status.headers["content-security-policy"] == Self.apiSecurityHeaders["content-security-policy"])
    }

    @Test(
        "luaexecd's audit line carries the server's request id (nginx, Apache), or one of its own (lighttpd)",
        arguments: servers)
    func requestID(server: Stack.WebServer) throws {
        let stack = Self.stack(server)
        let marker = "traced-\(UInt32.random(in: 0...UInt32.max))"
        #expect(try stack.request("/api/v1/exec/\(marker)", token: stack.adminToken).status == 404)
        var auditLine = ""
        try Stack.waitUntil(timeout: .seconds(10), "luaexecd's audit line") {
            auditLine = stack.luaexecdLog().split(separator: "\n").last { $0.contains(marker) }.map(String.init) ?? ""
            return !auditLine.isEmpty
        }
        let id = try #require(auditLine.split(separator: " ").first { $0.hasPrefix("id=") }?.dropFirst(3))
        switch server {
        case .lighttpd:
            #expect(id.count == 32 && id.allSatisfy(\.isHexDigit), "\(id)")
        case .nginx, .apache:
            let file = stack.directory + "/logs/" + (server == .nginx ? "access.log" : "apache-access.log")
            var accessLine = ""
            try Stack.waitUntil(timeout: .seconds(10), "\(server)'s access log line") {
                let log = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
                accessLine = log.split(separator: "\n").last { $0.contains(marker) }.map(String.init) ?? ""
                return !accessLine.isEmpty
            }
            #expect(accessLine.hasSuffix(" " + id), "\(accessLine) / id=\(id)")
        }
    }

    @Test(
        "the plain-HTTP port redirects, refuses a token sent in clear without using or echoing it, and passes nothing to luaexecd",
        arguments: servers)
    func plainPort(server: Stack.WebServer) throws {
        let stack = Self.stack(server)
        let flag = "plain_ran_\(UInt32.random(in: 0...UInt32.max))"
        func plain(_ target: String, _ arguments: [String] = []) throws -> (status: Int, headers: String, body: String) {
            let base = stack.plainPort.map { "http://127.0.0.1:\($0)" } ?? "http://localhost"
            var command = ["-s", "-D", "-", "--path-as-is"] + arguments
            if stack.plainPort == nil { command += ["--unix-socket", stack.httpSocket] }
            let result = try Stack.run("/usr/bin/curl", command + [base + target])
            let parts = result.stdout.components(separatedBy: "\r\n\r\n")
            let status = Int(parts[0].split(separator: " ").dropFirst().first ?? "") ?? 0
            return (status, parts[0], parts.dropFirst().joined(separator: "\r\n\r\n"))
        }
        let page = try plain("/index.html?a=1")
        #expect(page.status == 301)
        #expect(page.headers.lowercased().contains("\r\nlocation: https://"), "\(page.headers)")
        // nginx and Apache say why in a sentence; lighttpd (no mod_magnet) answers 403.
        let refused = server == .lighttpd ? 403 : 400
        let token = stack.adminToken
        for (target, arguments) in [
            ("/api/v1/exec/interactive.lua", ["-H", "Authorization: Bearer \(token)", "--data-binary", "\(flag) = 1"]),
            ("/api/v1/exec/interactive.lua?AuthToken=\(token)", ["--data-binary", "\(flag) = 2"]),
            ("/api/v1/exec/interactive.lua%3FAuthToken=\(token)", ["--data-binary", "\(flag) = 3"]),
            ("/api/v1/exec/interactive.lua?authtoken=\(token)", ["--data-binary", "\(flag) = 4"]),
        ] {
            let answer = try plain(target, arguments)
            #expect(answer.status == refused, "\(server) \(target)")
            #expect(!answer.headers.lowercased().contains("location:"), "\(server) \(target): \(answer.headers)")
            #expect(!answer.headers.contains(token) && !answer.body.contains(token), "\(server) \(target)")
            if server != .lighttpd {
                #expect(answer.body.hasPrefix("a token was sent over plain HTTP, where anyone on the way can read it: it was not used."))
            }
        }
        // HTTP/1.0 without a Host: nowhere to redirect to, and nothing reaches luaexecd.
        let hostless = try plain(
            "/api/v1/exec/interactive.lua",
            ["--http1.0", "-H", "Host:", "-H", "Authorization: Bearer \(token)", "--data-binary", "\(flag) = 5"])
        #expect(hostless.status >= 400, "\(server): \(hostless.status)")
        #expect(try stack.request(token: token, body: Array("return \(flag)".utf8)).body == [], "\(server)")
    }

    @Test("TRACE reaches no endpoint behind any server", arguments: servers)
    func trace(server: Stack.WebServer) throws {
        let stack = Self.stack(server)
        let traced = try stack.request("/api/v1/exec/where", method: "TRACE", token: stack.adminToken)
        #expect([403, 405].contains(traced.status), "\(server): \(traced.status) \(traced.text)")
        #expect(!traced.text.contains("/api/v1/exec/where"), "\(server)")
    }

    @Test("the lines of the lighttpd and Apache sites' logs go through a filter that masks every token")
    func maskFilter() throws {
        let token = "lxk_Gxh7V1X1fIlnE0mRObzF813Y3e1JN301buBz"
        let lines = [
            "(gw_backend.c.960) all handlers for /api/v1/exec?AuthToken=\(token) on /api/v1/ are down.",
            "AH10244: invalid URI path (/api/v1/exec/where%zz?AuthToken=\(token))",
            "\"GET /api/v1/exec/where%3FAuthToken=\(token) HTTP/1.1\" 404",
            "\"GET /api/v1/exec/where?Auth%54oken=not-a-token&x=1 HTTP/1.1\" 404",
            "\"GET /a/%6Cxk_%41bc/b HTTP/1.1\" 404 \(token.uppercased())",
            "nothing secret here: lx_k, token=, Authorization",
            "a mistyped value: /x?AuthToken=RET)A4\"B,C\"&y=1 HTTP/1.1",
        ]
        let input = Stack.repository + "/packaging/mask-tokens.sed"
        let file = NSTemporaryDirectory() + "mask-\(UUID().uuidString)"
        try lines.joined(separator: "\n").appending("\n").write(toFile: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(atPath: file) }
        let masked = try Stack.run("/bin/sed", ["-u", "-E", "-f", input, file])
        #expect(masked.status == 0)
        #expect(
            masked.stdout.split(separator: "\n").map(String.init) == [
                "(gw_backend.c.960) all handlers for /api/v1/exec?AuthToken=*** on /api/v1/ are down.",
                "AH10244: invalid URI path (/api/v1/exec/where%zz?AuthToken=***",
                "\"GET /api/v1/exec/where%3FAuthToken=*** HTTP/1.1\" 404",
                "\"GET /api/v1/exec/where?AuthToken=***&x=1 HTTP/1.1\" 404",
                "\"GET /a/lxk_***/b HTTP/1.1\" 404 lxk_***",
                "nothing secret here: lx_k, token=, Authorization",
                "a mistyped value: /x?AuthToken=***&y=1 HTTP/1.1",
            ])
    }

    @Test("no token reaches any of the server's logs: in the query, in a path, in a path the server refuses", arguments: servers)
    func noTokenInLogs(server: Stack.WebServer) throws {
        let stack = Self.stack(server)
        let marker = "masked-\(UInt32.random(in: 0...UInt32.max))"
        let token = stack.adminToken
        _ = try stack.request("/api/v1/exec/\(marker)-q?AuthToken=\(token)")
        _ = try stack.request("/api/v1/exec/\(marker)-p%3FAuthToken=\(token)", extra: ["--path-as-is"])
        _ = try stack.request("/api/v1/exec/\(marker)-e%zz?AuthToken=\(token)", extra: ["--path-as-is"])
        let logs = stack.directory + "/logs"
        func everything() -> String {
            let names = (try? FileManager.default.contentsOfDirectory(atPath: logs)) ?? []
            return names.map { (try? String(contentsOfFile: logs + "/" + $0, encoding: .utf8)) ?? "" }.joined()
        }
        // Written through the filter's pipe: wait for the lines. nginx logs no line at all for
        // the path it refuses (%zz).
        try Stack.waitUntil(timeout: .seconds(10), "\(server) to log the requests") {
            let all = everything()
            return all.contains("\(marker)-q") && all.contains("\(marker)-p")
                && (server == .nginx || all.contains("\(marker)-e"))
        }
        let all = everything()
        #expect(!all.contains(String(token.dropFirst(4).prefix(12))), "\(server)")
    }

    @Test("a token sent as ?AuthToken= never reaches the server's access log", arguments: servers)
    func accessLog(server: Stack.WebServer) throws {
        let stack = Self.stack(server)
        let marker = "logged-\(UInt32.random(in: 0...UInt32.max))"
        let answer = try stack.request("/api/v1/exec/\(marker)?AuthToken=\(stack.adminToken)&x=1")
        #expect(answer.status == 404)
        let file =
            stack.directory + "/logs/" + [
                "nginx": "access.log", "lighttpd": "lighttpd-access.log", "apache": "apache-access.log",
            ][server.rawValue]!
        var log = ""
        // lighttpd writes its access log about once a second: wait for the line, then read it.
        try Stack.waitUntil(timeout: .seconds(10), "\(server) to log the request") {
            log = (try? String(contentsOfFile: file, encoding: .utf8)) ?? ""
            return log.contains(marker)
        }
        #expect(!log.contains(stack.adminToken))
        #expect(!log.contains(String(stack.adminToken.dropFirst(4).prefix(12))))
    }
}

/// `LUAEXEC_SERVER=lighttpd|apache make run` (scripts/run.sh) for real: it serves the README's
/// two curl lines through that server. The binaries are the tests' own (`LUAEXEC_BIN_DIR`).
@Suite("make run behind each web server")
struct MakeRunServerTests {
    @Test("an unknown LUAEXEC_SERVER stops make run at once, naming the choices")
    func unknownServer() throws {
        let result = try Stack.run(
            "/usr/bin/env", ["LUAEXEC_SERVER=caddy", "LUAEXEC_RUN_DIR=/nonexistent/x", Stack.repository + "/scripts/run.sh"])
        #expect(result.status == 2)
        #expect(result.stderr == "make run: LUAEXEC_SERVER is 'caddy'; it takes nginx (the default), lighttpd or apache\n")
    }

    @Test(
        "LUAEXEC_SERVER=lighttpd and =apache make run answer the README's two curl lines through that server",
        arguments: [Stack.WebServer.lighttpd, .apache])
    func serves(server: Stack.WebServer) throws {
        let directory = NSTemporaryDirectory() + "luaexec-makerun-\(server)-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory + "/run", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let runDirectory = directory + "/run"
        let (port, httpPort) = (try Stack.freePort(), try Stack.freePort())
        let environment = [
            "LUAEXEC_BIN_DIR=\(Stack.binDirectory)", "LUAEXEC_RUN_DIR=\(runDirectory)", "LUAEXEC_PORT=\(port)",
            "LUAEXEC_HTTP_PORT=\(httpPort)", "LUAEXEC_SERVER=\(server)",
        ]
        let run = try Stack.startWithLifeline(
            "/usr/bin/env", ["-u", "SUDO_USER"] + environment + [Stack.repository + "/scripts/run.sh"],
            log: directory + "/make-run.log", pidFile: directory + "/make-run.pid")
        defer { try? run.lifeline.close() }
        let log = { (try? String(contentsOfFile: directory + "/make-run.log", encoding: .utf8)) ?? "" }
        // The message comes after the token file: wait for it, or for make run's end.
        let serving = "luaexec is serving on https://127.0.0.1:\(port) behind \(server) "
        try Stack.waitUntil(timeout: .seconds(60), "make run to serve (\(log()))") {
            log().contains(serving) || FileManager.default.fileExists(atPath: directory + "/make-run.pid.status")
        }
        #expect(log().contains(serving))
        let token = try String(contentsOfFile: runDirectory + "/token", encoding: .utf8)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let url = "https://127.0.0.1:\(port)/api/v1/exec/interactive.lua"
        let bearer = try Stack.run(
            "/usr/bin/curl",
            ["-sk", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Authorization: Bearer \(token)", url, "-d",
             #"system.toast("hello world")"#])
        #expect(bearer.stdout == "200")
        let query = try Stack.run(
            "/usr/bin/curl", ["-sk", url + "?AuthToken=\(token)", "-d", "return sip.calls.get_all()[1]:getState()"])
        #expect(query.stdout == "active")
    }
}
