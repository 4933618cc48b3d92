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
        let literal: HeaderFields = ["x-a": "1"]
        #expect(literal["x-a"] == "1" && literal["x-b"] == nil)
    }

    @Test("missing params fall back to a GET of / with no headers")
    func defaults() {
        let head = Envp([]).withParams { $0.head() }
        #expect(head.method == "GET")
        #expect(head.path == "/")
        #expect(head.query == "")
        #expect(head.headers.dictionary == [:])
        #expect(head.requestID == nil)
    }

    @Test("a value may contain '='")
    func equalsInValue() {
        #expect(Envp(["QUERY_STRING=a=b=c"]).withParams { $0.value("QUERY_STRING") } == "a=b=c")
    }
}
