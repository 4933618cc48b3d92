import ExecService
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
        #expect(head.headers == [
            "authorization": "Bearer lxk_abc", "accept": "application/json",
            "content-type": "application/x-www-form-urlencoded", "content-length": "10",
            "host": "box", "user-agent": "curl/7.88.1",
        ])
        let custom = Envp(["HTTP_X_DOOR_ID=7=8", "HTTP_=empty", "HTTPS=on"]).withParams { $0.head() }
        #expect(custom.headers == ["x-door-id": "7=8", "": "empty"])
    }

    @Test("missing params fall back to a GET of / with no headers")
    func defaults() {
        let head = Envp([]).withParams { $0.head() }
        #expect(head.method == "GET")
        #expect(head.path == "/")
        #expect(head.query == "")
        #expect(head.headers == [:])
        #expect(head.requestID == nil)
    }

    @Test("a value may contain '='")
    func equalsInValue() {
        #expect(Envp(["QUERY_STRING=a=b=c"]).withParams { $0.value("QUERY_STRING") } == "a=b=c")
    }
}
