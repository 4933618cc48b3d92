import Foundation
import Testing

/// No token in any of nginx's logs (SPEC T5; issue 24, item 12). nginx writes the request line,
/// query included, into every error-log line about a request: a file it cannot find, a directory
/// it will not list, a body over the limit. The access log masks `AuthToken=` (AuthTests); the
/// error log must never see a request that carries one.
@Suite("nginx logs no token, whatever path it answers itself")
struct NginxLogTests {
    /// Paths nginx answers without luaexecd: (method, path, body size).
    static let nginxAnswers: [(String, String, Int)] = [
        ("GET", "/vendor/codemirror/no-such-file.js", 0),  // a missing vendor asset: open() failed
        ("GET", "/vendor/codemirror/lib/", 0),  // a directory: index forbidden
        ("GET", "/js/", 0),
        ("GET", "/no-such-page", 0),
        ("GET", "/api/nope", 0),  // a 404 under the API prefix that luaexecd never sees
        ("GET", "/api/v1", 0),
        ("GET", "/", 0),  // the page
        ("POST", "/index.html", 8),  // a method nginx refuses: 405
        ("PROPFIND", "/", 0),
        ("POST", "/", 2 << 20),  // a body over client_max_body_size: 413
    ]

    static let refusal =
        "this URL takes no token: send it as Authorization: Bearer, or in the query of an /api/v1/ URL\n"

    @Test("a query token on a path nginx answers itself is refused there and reaches no log, in any spelling")
    func queryTokenOnNginxPaths() throws {
        let stack = try Stack()
        let secret = stack.adminToken
        // The spellings luaexecd reads as AuthToken (names are percent-decoded) and others in any case.
        for name in ["AuthToken", "authtoken", "Auth%54oken", "AUTHTOKEN", "%61uthToken"] {
            for (method, path, size) in Self.nginxAnswers {
                let answer = try stack.request(
                    path + "?x=1&\(name)=\(secret)", method: method,
                    body: size == 0 ? nil : Array(repeating: 0x20, count: size))
                let what = "\(method) \(path)?\(name)="
                if size > 1 << 20 {
                    #expect(answer.status == 413, "\(what)")
                } else {
                    #expect(answer.status == 400, "\(what)")
                    #expect(answer.text == Self.refusal, "\(what)")
                    #expect(answer.headers["content-type"] == "text/plain; charset=utf-8", "\(what)")
                    #expect(answer.headers["cache-control"] == "no-store", "\(what)")
                }
                #expect(!answer.text.contains(secret))
            }
            // Under /api/v1/ luaexecd answers: 404 to a name it reads as AuthToken, 401 to others.
            let reads = name == "AuthToken" || name == "Auth%54oken"
            let missing = try stack.request("/api/v1/exec/nope?\(name)=\(secret)")
            #expect(missing.status == (reads ? 404 : 401), "/api/v1/exec/nope?\(name)=")
        }

        // A token in the path (a client that sent `?` as `%3F`, or no `?` at all): never echoed,
        // in no log, a body over the limit (413, which nginx logs) included.
        for (method, path, size) in [
            ("POST", "/api/v1/exec/interactive.lua%3FAuthToken=\(secret)", 8), ("POST", "/api/v1/exec/\(secret)", 2 << 20),
            ("GET", "/vendor/codemirror/\(secret)", 0), ("GET", "/\(secret)", 0),
        ] {
            for token in [nil, secret] {
                let answer = try stack.request(
                    path, method: method, token: token, body: size == 0 ? nil : Array(repeating: 0x20, count: size))
                #expect(!answer.text.contains(secret), "\(method) \(path.prefix(40))")
                #expect(answer.status >= 400, "\(method) \(path.prefix(40))")
            }
        }

        // The same requests with the token in the header: nginx logs its errors as usual, so the
        // error log is live and was searched for real.
        for (method, path, size) in Self.nginxAnswers {
            _ = try stack.request(
                path, method: method, token: secret, body: size == 0 ? nil : Array(repeating: 0x20, count: size))
        }
        let errorLog = try String(contentsOfFile: stack.directory + "/logs/error.log", encoding: .utf8)
        #expect(errorLog.contains(#"no-such-file.js" failed (2: No such file or directory)"#))
        #expect(errorLog.contains("/web/js/\" is forbidden"))
        #expect(errorLog.contains("client intended to send too large body"))
        let accessLog = try String(contentsOfFile: stack.directory + "/logs/access.log", encoding: .utf8)
        #expect(accessLog.contains("\"GET /js/?x=1&Auth%54oken=*** HTTP/1.1\" 400 "))

        var searched = 0
        for directory in [stack.directory, stack.directory + "/logs"] {
            for file in try FileManager.default.contentsOfDirectory(atPath: directory) {
                guard let data = FileManager.default.contents(atPath: directory + "/" + file) else { continue }
                searched += 1
                #expect(data.range(of: Data(secret.utf8)) == nil, "the secret is in \(directory)/\(file)")
            }
        }
        #expect(searched >= 6)
    }
}
