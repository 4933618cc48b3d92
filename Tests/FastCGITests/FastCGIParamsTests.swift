import HTTPCore
import Testing

@testable import FastCGI

/// CGI variables as nginx sends them (luaexec-fastcgi.conf), as a PARAMS stream.
struct Envp {
    let stream: [UInt8]

    init(_ params: [String]) {
        var stream: [UInt8] = []
        for param in params {
            let (name, value) = param.firstIndex(of: "=").map { (param[..<$0], param[param.index(after: $0)...]) }!
            FastCGIEncoder.pair(Array(name.utf8), Array(value.utf8), into: &stream)
        }
        self.stream = stream
    }

    func withParams<T>(_ body: (FastCGIParams) -> T) -> T {
        body(try! FastCGIParams(stream: stream))
    }

    static func nginx() -> Envp {
        Envp([
        "REQUEST_METHOD=POST", "DOCUMENT_URI=/api/v1/exec/interactive.lua", "QUERY_STRING=AuthToken=x&y=1",
        "CONTENT_TYPE=application/x-www-form-urlencoded", "CONTENT_LENGTH=10", "REMOTE_ADDR=192.0.2.7",
        "SERVER_PROTOCOL=HTTP/1.1", "REQUEST_ID=0123abcd", "HTTP_HOST=box", "HTTP_USER_AGENT=curl/7.88.1",
        "HTTP_ACCEPT=application/json", "HTTP_AUTHORIZATION=Bearer lxk_abc",
        ])
    }
}

@Suite("FastCGI params to RequestHead")
struct FastCGIParamsTests {
    @Test("the request line, query, client, request id and every header, by its lower-case name")
    func head() {
        let head = Envp.nginx().withParams { $0.head() }
        #expect(head.method == "POST")
        #expect(head.path == "/api/v1/exec/interactive.lua")
        #expect(head.query == "AuthToken=x&y=1")
        #expect(head.clientAddress == "192.0.2.7")
        #expect(head.requestID == "0123abcd")
        #expect(head.headers.dictionary == [
            "authorization": "Bearer lxk_abc", "accept": "application/json",
            "content-type": "application/x-www-form-urlencoded", "content-length": "10",
            "host": "box", "user-agent": "curl/7.88.1",
        ])
        let custom = Envp(["HTTP_X_DOOR_ID=7=8", "HTTP_=empty", "HTTPS=on"]).withParams { $0.head() }
        #expect(custom.headers.dictionary == ["x-door-id": "7=8", "": "empty"])
    }

    @Test("a header is found by its HTTP name whatever CGI made of it; the last of two wins; other names miss")
    func lookup() {
        let head = Envp([
            "HTTP_LUA_CHUNK_NAME=@a.lua", "CONTENT_TYPE=text/plain", "HTTP_ACCEPT=text/html",
            "HTTP_ACCEPT=application/json", "REMOTE_ADDR=192.0.2.7",
        ]).withParams { $0.head() }
        #expect(head.headers["lua-chunk-name"] == "@a.lua")
        #expect(head.headers["content-type"] == "text/plain")
        #expect(head.headers["accept"] == "application/json")
        // Only lower-case names with dashes are asked for; CGI's own spelling is not a header.
        #expect(head.headers["LUA_CHUNK_NAME"] == nil)
        #expect(head.headers["lua_chunk_name"] == nil)
        #expect(head.headers["remote-addr"] == nil)
        #expect(head.headers["lua-chunk-nam"] == nil)
        // Names of a present one's length and first letter, which share its bit in the index of
        // names present, are compared whole.
        #expect(head.headers["accepx"] == nil)
        #expect(head.headers["content-typf"] == nil)
        #expect(head.headers["lua-chunk-namf"] == nil)
        let literal: HeaderFields = ["x-a": "1"]
        #expect(literal["x-a"] == "1" && literal["x-b"] == nil)
    }

    @Test("missing params: a GET with no headers, no path to route on (a 400 naming the variables), a request id made")
    func defaults() {
        let head = Envp([]).withParams { $0.head() }
        #expect(head.method == "GET")
        #expect(head.path == "")
        #expect(head.pathProblem == "the web server sent no request path: none of DOCUMENT_URI, SCRIPT_NAME, REQUEST_URI")
        #expect(head.query == "")
        #expect(head.headers.dictionary == [:])
        #expect(head.requestID?.utf8.count == 32)
        #expect(head.requestID?.allSatisfy(\.isHexDigit) == true)
    }

    @Test("a server without REQUEST_ID (lighttpd, Apache) gets a fresh id per request; nginx's is kept")
    func requestID() {
        let lighttpd = Envp(["SCRIPT_NAME=/api/v1/exec", "PATH_INFO=/interactive.lua"])
        let (first, second) = (lighttpd.withParams { $0.head() }, lighttpd.withParams { $0.head() })
        #expect(first.requestID != nil && first.requestID != second.requestID)
        #expect(Envp.nginx().withParams { $0.head() }.requestID == "0123abcd")
    }

    /// The variables each server sends for `GET /api/v1/exec/interactive.lua?AuthToken=x`
    /// (recorded from lighttpd 1.4.69 and Apache 2.4 on Debian 12, docs/servers.md).
    @Test("the path each web server sends becomes the same path", arguments: [
        ("nginx", ["DOCUMENT_URI=/api/v1/exec/interactive.lua"]),
        ("lighttpd", ["SCRIPT_NAME=/api/v1/exec", "PATH_INFO=/interactive.lua", "REQUEST_URI=/api/v1/exec/interactive.lua?AuthToken=x"]),
        ("Apache httpd", ["SCRIPT_NAME=/api/v1/exec/interactive.lua", "REQUEST_URI=/api/v1/exec/interactive.lua?AuthToken=x",
                          "SCRIPT_FILENAME=proxy:fcgi://localhost/api/v1/exec/interactive.lua"]),
        ("SCRIPT_NAME empty, the script at the root", ["SCRIPT_NAME=", "PATH_INFO=/api/v1/exec/interactive.lua"]),
        ("REQUEST_URI alone", ["REQUEST_URI=/api/v1/exec/interactive.lua?AuthToken=x"]),
        // lighttpd with a mapping per API prefix splits deeper: the join is the same path.
        ("lighttpd, a mapping per prefix", ["SCRIPT_NAME=/api/v1/exec/interactive.lua", "PATH_INFO="]),
    ])
    func eachServer(server: String, params: [String]) {
        let head = Envp(params + ["PATH_TRANSLATED=/var/www/admin/status"]).withParams { $0.head() }
        #expect(head.path == "/api/v1/exec/interactive.lua", "\(server)")
        #expect(head.pathProblem == nil, "\(server)")
    }

    @Test("an admin path deeper than one part keeps every part behind a mapping per prefix")
    func deepAdminPath() {
        let head = Envp(["SCRIPT_NAME=/api/v1/admin/config", "PATH_INFO=/net/dns/servers"]).withParams { $0.head() }
        #expect(head.path == "/api/v1/admin/config/net/dns/servers")
    }

    @Test("DOCUMENT_URI wins over a different SCRIPT_NAME + PATH_INFO, which wins over REQUEST_URI")
    func precedence() {
        let both = Envp([
            "REQUEST_URI=/api/v1/admin/status", "SCRIPT_NAME=/api/v1/admin", "PATH_INFO=/tokens",
            "DOCUMENT_URI=/api/v1/exec/interactive.lua",
        ]).withParams { $0.head() }
        #expect(both.path == "/api/v1/exec/interactive.lua")
        let cgi = Envp(["REQUEST_URI=/api/v1/admin/status", "SCRIPT_NAME=/api/v1/exec", "PATH_INFO=/x"]).withParams { $0.head() }
        #expect(cgi.path == "/api/v1/exec/x")
    }

    /// Each case as nginx 1.22 answers `return 200 $uri` for that request target (checked by hand
    /// with curl --path-as-is): luaexecd makes the same of a REQUEST_URI, or refuses where nginx
    /// answers 400.
    @Test("a raw REQUEST_URI is decoded and resolved exactly as nginx resolves $document_uri", arguments: [
        ("/api/v1/exec/a%2Fb", "/api/v1/exec/a/b"),
        ("/api/v1/exec/..%2Fadmin/status", "/api/v1/admin/status"),
        ("/api/v1/exec/%2e%2e/admin/status", "/api/v1/admin/status"),
        ("/api/v1/exec/a/.%2e/b", "/api/v1/exec/b"),
        ("//api///v1/exec//x", "/api/v1/exec/x"),
        ("/api/v1/exec/a%2F%2Fb", "/api/v1/exec/a/b"),
        ("/api/v1/exec/x/..", "/api/v1/exec/"),
        ("/api/v1/exec/x/.", "/api/v1/exec/x/"),
        ("/api/v1/exec/./x", "/api/v1/exec/x"),
        ("/api/v1/exec/a/...", "/api/v1/exec/a/..."),
        ("/api/v1/exec/caf%C3%A9", "/api/v1/exec/café"),
        ("/api/v1/exec/a+b%20c", "/api/v1/exec/a+b c"),
        ("/api/v1/exec/a%3Fb?AuthToken=x", "/api/v1/exec/a?b"),
        ("/.", "/"),
    ])
    func rawLikeNginx(target: String, path: String) {
        let head = Envp(["REQUEST_URI=\(target)"]).withParams { $0.head() }
        #expect(head.path == path)
        #expect(head.pathProblem == nil)
    }

    @Test("a REQUEST_URI nginx answers 400 is refused, naming why", arguments: [
        ("/api/v1/%2e%2e/%2e%2e/%2e%2e/x", "the request path (REQUEST_URI) goes above the root with '..'"),
        ("/..", "the request path (REQUEST_URI) goes above the root with '..'"),
        ("/api/v1/exec/a%00b", "the request path (REQUEST_URI) contains a NUL byte"),
        ("/api/v1/exec/a%zzb", "the request path (REQUEST_URI) has a '%' not followed by two hex digits"),
        ("/api/v1/exec/a%2", "the request path (REQUEST_URI) has a '%' not followed by two hex digits"),
        ("api/v1/exec/x", "the request path (REQUEST_URI) does not start with '/'"),
        ("http://box/api/v1/exec/x", "the request path (REQUEST_URI) does not start with '/'"),
    ])
    func rawRefused(target: String, problem: String) {
        let head = Envp(["REQUEST_URI=\(target)"]).withParams { $0.head() }
        #expect(head.path == "")
        #expect(head.pathProblem == problem)
    }

    @Test("a decoded path is never decoded again; its slashes are merged; a dot segment left by the server is refused")
    func decodedPaths() {
        func derived(_ params: [String]) -> (String, String?) {
            let head = Envp(params).withParams { $0.head() }
            return (head.path, head.pathProblem)
        }
        // lighttpd keeps %2F as text by default: three bytes, not a separator, and not "..".
        #expect(derived(["SCRIPT_NAME=/api/v1/exec", "PATH_INFO=/..%2Fadmin/status"]) == ("/api/v1/exec/..%2Fadmin/status", nil))
        #expect(derived(["DOCUMENT_URI=/api/v1/exec/a%20b"]) == ("/api/v1/exec/a%20b", nil))
        #expect(derived(["SCRIPT_NAME=/api/v1/exec/", "PATH_INFO=//x//y/"]) == ("/api/v1/exec/x/y/", nil))
        #expect(derived(["DOCUMENT_URI=/api/v1/exec/a/...", "REQUEST_URI=/x"]) == ("/api/v1/exec/a/...", nil))
        let dot = "has a '.' or '..' segment the web server did not resolve; luaexecd routes only on the path the server routed on"
        #expect(derived(["SCRIPT_NAME=/api/v1/exec", "PATH_INFO=/../admin/status"])
            == ("", "the request path (SCRIPT_NAME + PATH_INFO) \(dot)"))
        #expect(derived(["SCRIPT_NAME=/api/v1/exec/."]) == ("", "the request path (SCRIPT_NAME) \(dot)"))
        #expect(derived(["DOCUMENT_URI=/api/v1/exec/..", "REQUEST_URI=/api/v1/exec/x"])
            == ("", "the request path (DOCUMENT_URI) \(dot)"))
        #expect(derived(["DOCUMENT_URI=/a\u{0}b"]) == ("", "the request path (DOCUMENT_URI) contains a NUL byte"))
        #expect(derived(["SCRIPT_NAME=", "PATH_INFO=x"]) == ("", "the request path (SCRIPT_NAME + PATH_INFO) does not start with '/'"))
    }

    @Test("PATH_INFO without SCRIPT_NAME, and a path over 4 KiB, are refused")
    func refusals() {
        let alone = Envp(["PATH_INFO=/api/v1/exec/interactive.lua", "REQUEST_URI=/api/v1/exec/interactive.lua"]).withParams { $0.head() }
        #expect(alone.pathProblem == "the web server sent PATH_INFO without SCRIPT_NAME: the request path is SCRIPT_NAME + PATH_INFO (RFC 3875)")
        let longest = "/" + String(repeating: "a", count: 4095)
        #expect(Envp(["DOCUMENT_URI=\(longest)"]).withParams { $0.head() }.path == longest)
        for param in ["DOCUMENT_URI", "REQUEST_URI"] {
            let head = Envp(["\(param)=\(longest)b"]).withParams { $0.head() }
            #expect(head.pathProblem == "the request path (\(param)) is longer than 4096 bytes")
        }
        let split = Envp(["SCRIPT_NAME=/api", "PATH_INFO=/\(String(repeating: "a", count: 4092))"]).withParams { $0.head() }
        #expect(split.pathProblem == "the request path (SCRIPT_NAME + PATH_INFO) is longer than 4096 bytes")
    }

    @Test("a value may contain '='")
    func equalsInValue() {
        #expect(Envp(["QUERY_STRING=a=b=c"]).withParams { $0.value("QUERY_STRING") } == "a=b=c")
    }
}
