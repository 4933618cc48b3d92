import AccessControl
import Foundation
import HTTPCore
import Logging
import LuaRuntime
import Synchronization
import SystemSupport
import Testing

@testable import ExecService

/// What a transport would write: the answer a service gave through its `ResponseWriter`.
final class CapturedAnswer: ResponseWriter, @unchecked Sendable {
    private let lock = ConditionLock()
    private var response: Response?

    func send(_ response: Response) {
        lock.withLock {
            self.response = response
            lock.signal()
        }
    }

    func startStream(_ head: Response) { send(head) }
    func write(_ bytes: [UInt8]) -> Bool { true }
    func finish() {}

    /// The answer, once given; nil if none came within `limit`.
    func wait(_ limit: Duration = .seconds(30)) -> Response? {
        let deadline = MonotonicInstant.now().advanced(by: limit)
        return lock.withLock {
            while response == nil, lock.wait(until: deadline) {}
            return response
        }
    }

    /// Given yet?
    var given: Response? { lock.withLock { response } }
}

/// ExecService with a real Lua state and a real SQLite token store, without a transport: the
/// route table, auth, rendering and limits, as the service answers them (SPEC §2–§4).
@Suite("ExecService routing, auth and rendering")
struct ExecServiceTests {
    let service: ExecService
    let executor: LuaExecutor
    let token: String
    /// admin, exec and metrics: every route of the table.
    let adminToken: String
    let metricsToken: String
    let path = "/tmp/luaexec-service-\(UUID().uuidString).db"

    init() throws {
        let store = try TokenStore(path: path)
        token = try store.create(name: "t", scopes: [.exec], expiresAt: nil).secret
        adminToken = try store.create(name: "root", scopes: [.admin, .exec, .metrics], expiresAt: nil).secret
        metricsToken = try store.create(name: "prom", scopes: [.metrics], expiresAt: nil).secret
        var quiet = Logger(label: "test")
        quiet.logLevel = .critical
        executor = try LuaExecutor(options: .init(timeLimit: .milliseconds(300)), logger: quiet) { try LuaVM() }
        service = ExecService(
            executor: executor, authenticator: try Authenticator(store: store), options: .init(maxBodySize: 64),
            logger: quiet)
    }

    func head(
        _ method: String = "POST", path: String = "/api/v1/exec/interactive.lua", query: String = "",
        headers: HeaderFields = [:]
    ) -> RequestHead {
        RequestHead(method: method, path: path, query: query, headers: headers)
    }

    /// Hands the request over as a transport does and runs what the service deferred on this
    /// thread, as the transport's thread does.
    func answer(_ head: RequestHead, _ body: BodyRead = .complete([])) -> Response {
        let writer = CapturedAnswer()
        service.respond(to: head, body: body, writer: writer)?()
        service.runDeferred()
        return writer.wait()!
    }

    func eval(_ chunk: String, token: String? = nil, accept: String? = nil) -> Response {
        var headers = ["authorization": "Bearer \(token ?? self.token)"]
        if let accept { headers["accept"] = accept }
        return answer(head(headers: HeaderFields(headers)), .complete(Array(chunk.utf8)))
    }

    func text(_ response: Response) -> String { String(decoding: response.body, as: UTF8.self) }

    @Test("a Lua-Check is answered after the handover, one compile at a time, and a compile past limits.time is 504 timeout")
    func checkAfterHandover() throws {
        // Lua's parser is quadratic in a long `or` chain: this one compiles for tens of seconds.
        let slow = "return a" + String(repeating: " or a", count: 150_000)
        var quiet = Logger(label: "test")
        quiet.logLevel = .critical
        let service = ExecService(
            executor: executor, authenticator: try Authenticator(store: try TokenStore(path: path)),
            options: .init(maxBodySize: 1 << 20), logger: quiet)
        let headers = HeaderFields(["authorization": "Bearer \(token)", "lua-check": "syntax"])
        let writer = CapturedAnswer()
        let work = service.respond(to: head(headers: headers), body: .complete(Array(slow.utf8)), writer: writer)
        // Handed over without compiling: the requests behind it are not held up.
        nonisolated(unsafe) let compile = try #require(work)
        #expect(writer.given == nil)
        Thread.detachNewThread { compile() }
        let deadline = MonotonicInstant.now().advanced(by: .seconds(20))
        while service.compiling.load(ordering: .relaxed) == 0, MonotonicInstant.now() < deadline { sched_yield() }
        // One compile at a time: a second check meanwhile is refused at once, not a thread
        // of the transport held for limits.time.
        let second = CapturedAnswer()
        service.respond(to: head(headers: headers), body: .complete(Array("return 1".utf8)), writer: second)?()
        let busy = try #require(second.wait(.seconds(1)))
        #expect(busy.status == 503)
        #expect(text(busy) == "luaexecd is compiling another check; retry in a moment\n")
        #expect(busy.header("Retry-After") != nil)
        // An administrator's script check has a slot of its own: an exec token's check does
        // not hold it.
        var audit = AuditRecord(head: head(headers: headers))
        let scriptCheck = service.check(
            ExecService.syntaxCheck, chunk: Array("return 1".utf8), chunkName: "scripts/x.lua", json: true, script: true,
            audit: &audit)
        #expect(scriptCheck.status == 200)
        #expect(writer.given == nil)
        let response = try #require(writer.wait())
        #expect(response.status == 504)
        #expect(text(response).hasPrefix("the chunk took longer than the time limit"), "\(text(response))")
        let quick = CapturedAnswer()
        service.respond(to: head(headers: headers), body: .complete(Array("return 1".utf8)), writer: quick)?()
        #expect(quick.wait()?.status == 200)
    }

    @Test("a request without a token is 401 with a challenge, and its chunk does not run")
    func missingToken() {
        let response = answer(head(), .complete(Array("ran = true".utf8)))
        #expect(response.status == 401)
        #expect(response.header("WWW-Authenticate") == "Bearer realm=\"luaexec\"")
        #expect(text(eval("return ran == nil")) == "true")
    }

    @Test("a malformed Authorization header is 400 invalid_request, and nothing runs")
    func malformedHeader() {
        let response = answer(head(headers: ["authorization": "Bearer a b"]), .complete(Array("ran = true".utf8)))
        #expect(response.status == 400)
        #expect(response.header("WWW-Authenticate")?.contains("error=\"invalid_request\"") == true)
        #expect(text(eval("return ran == nil")) == "true")
    }

    /// Headers as a transport passes them, in order, a name possibly twice (CGI spelling).
    func fields(_ pairs: [(String, String)]) -> HeaderFields {
        HeaderFields(pairs: pairs.map { (name: $0.0, value: $0.1) })
    }

    @Test("a header that holds one value, given twice, is 400 naming it before any token is read, and nothing runs",
        arguments: [
            ("AUTHORIZATION", "Authorization"), ("LUA_INTERRUPT_KEY", "Lua-Interrupt-Key"),
            ("LUA_CHUNK_NAME", "Lua-Chunk-Name"), ("LUA_CHECK", "Lua-Check"), ("LUA_TRACEBACK", "Lua-Traceback"),
        ])
    func repeatedHeader(name: String, spelt: String) {
        // Both Authorization values are the same good token: a repeat is refused whatever it holds.
        var pairs = [("AUTHORIZATION", "Bearer \(token)"), ("CONTENT_TYPE", "text/plain")]
        let value = name == "AUTHORIZATION" ? "Bearer \(token)" : (name == "LUA_TRACEBACK" ? "locals" : "k1")
        pairs += [(name, value), ("ACCEPT", "*/*"), (name.lowercased().replacingOccurrences(of: "_", with: "-"), value)]
        if name == "AUTHORIZATION" { pairs.removeFirst() }
        let response = answer(head(headers: fields(pairs)), .complete(Array("ran = true".utf8)))
        #expect(response.status == 400)
        #expect(text(response) == "the \(spelt) header is given more than once; send it once\n")
        #expect(response.header("WWW-Authenticate") == nil)
        #expect(text(eval("return ran == nil")) == "true")
    }

    @Test("headers that may repeat are not refused: Content-Type (nginx passes it twice itself), Accept")
    func repeatsAllowed() {
        let headers = fields([
            ("CONTENT_TYPE", "text/plain"), ("AUTHORIZATION", "Bearer \(token)"), ("CONTENT_TYPE", "text/plain"),
            ("ACCEPT", "text/plain"), ("ACCEPT", "*/*"),
        ])
        let response = answer(head(headers: headers), .complete(Array("return 6*7".utf8)))
        #expect(response.status == 200)
        #expect(text(response) == "42")
    }

    @Test("a token without the route's scope is 403 naming the scope, and nothing runs")
    func insufficientScope() {
        let response = eval("ran = true", token: metricsToken)
        #expect(response.status == 403)
        #expect(response.header("WWW-Authenticate") == "Bearer realm=\"luaexec\", error=\"insufficient_scope\", scope=\"exec\"")
        #expect(text(eval("return ran == nil")) == "true")
        // The admin API wants admin: an exec token is refused before the route's handler.
        let admin = answer(head("GET", path: "/api/v1/admin/status", headers: ["authorization": "Bearer \(token)"]))
        #expect(admin.status == 403)
    }

    @Test("a path outside the table is 404 before any token is read")
    func unknownPath() {
        let response = answer(head("GET", path: "/api/v2/exec/interactive.lua"))
        #expect(response.status == 404)
        #expect(text(response) == "no such endpoint: /api/v2/exec/interactive.lua\n")
        // Under the API prefix the token comes first: whether a name exists is a token holder's
        // business.
        #expect(answer(head("GET", path: "/api/v1/admin/nothing")).status == 401)
        let known = answer(head("GET", path: "/api/v1/admin/nothing", headers: ["authorization": "Bearer \(adminToken)"]))
        #expect(known.status == 404)
    }

    @Test("a request the transport found no path for is 400 with the transport's reason, before any token, and runs nothing")
    func noPath() {
        let problem = "the web server sent no request path: none of DOCUMENT_URI, SCRIPT_NAME, REQUEST_URI"
        let request = RequestHead(
            method: "POST", path: "", headers: ["authorization": "Bearer \(token)"], pathProblem: problem)
        let response = answer(request, .complete(Array("ran = true".utf8)))
        #expect(response.status == 400)
        #expect(text(response) == problem + "\n")
        #expect(response.header("WWW-Authenticate") == nil)
        #expect(text(eval("return ran == nil")) == "true")
    }

    @Test("a method no row of the path takes is 405 with the group's methods in Allow", arguments: [
        ("DELETE", "/api/v1/exec/interactive.lua", "GET, POST"),
        ("PATCH", "/api/v1/admin/config/a.b", "GET, PUT, DELETE"),
        ("POST", "/api/v1/admin/status", "GET"),
        ("GET", "/api/v1/admin/reset", "POST"),
        ("PUT", "/api/v1/admin/tokens", "GET, POST"),
        ("GET", "/api/v1/admin/tokens/x", "DELETE"),
    ])
    func methodNotAllowed(method: String, path: String, allow: String) {
        let response = answer(head(method, path: path, headers: ["authorization": "Bearer \(adminToken)"]))
        #expect(response.status == 405)
        #expect(response.header("Allow") == allow)
    }

    @Test("every row of the route table answers its own method, with the row's handler")
    func everyRowReachable() {
        for route in ExecService.routes {
            guard case .exact(let path) = route.path, let method = route.methods.first else { continue }
            let response = answer(head(method, path: path, headers: ["authorization": "Bearer \(adminToken)"]))
            // 400 and 404 are a handler's answers here (no body, no metrics in this service);
            // the table's own refusals are 401, 403 and 405.
            #expect(![401, 403, 405].contains(response.status), "\(method) \(path): \(response.status)")
        }
    }

    @Test("rows that may run Lua are the rows marked as taking the state")
    func stateRows() {
        let taking = ExecService.routes.filter(\.takesState).map(\.pattern)
        #expect(taking == [
            "/api/v1/exec/interactive.lua", "/api/v1/exec/command", "/api/v1/exec/<name>",
            // The console's reads run no Lua, but read the state: in arrival order with the chunks.
            "/api/v1/console/complete", "/api/v1/console/inspect", "/api/v1/console/globals", "/api/v1/admin/reset",
            "/api/v1/admin/config/<path>", "/api/v1/admin/config/<path>", "/api/v1/admin/scripts/<name>/rollback",
            "/api/v1/admin/scripts/<name>/enable", "/api/v1/admin/scripts/<name>/disable", "/api/v1/admin/scripts/<name>",
            "/api/v1/admin/scripts/<name>",
        ])
    }

    @Test("docs/api.md holds the route table as the service matches it")
    func documented() throws {
        let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent()
        let doc = try String(contentsOf: root.appendingPathComponent("docs/api.md"), encoding: .utf8)
        let begin = "<!-- routes: begin -->\n", end = "<!-- routes: end -->"
        let from = try #require(doc.range(of: begin)), to = try #require(doc.range(of: end))
        let table = String(doc[from.upperBound..<to.lowerBound])
        #expect(table == ExecService.routeTableMarkdown, "docs/api.md should hold:\n\(ExecService.routeTableMarkdown)")
    }

    @Test("the URLs the table serves under the exec prefix are the names no script may listen on, and no others")
    func reservedEndpointNames() {
        // http.c refuses these names (a script's endpoint would be shadowed by the row); this
        // ties its list to the table, so a row added under the prefix fails here until it is
        // reserved there too.
        let served = ExecService.routes.compactMap { route -> String? in
            guard case .exact(let path) = route.path, path.hasPrefix(ExecService.execPrefix) else { return nil }
            return String(path.dropFirst(ExecService.execPrefix.count))
        }
        #expect(served.sorted() == ["command", "interactive.lua"])
        for name in served + ["interactive.lu", "commands", "doorbell"] {
            let response = eval("http.listen('\(name)', function() return 1 end) return 'listening'")
            if served.contains(name) {
                #expect(response.status == 500, "\(name)")
                #expect(text(response).contains("bad endpoint name '\(name)': luaexec serves that URL itself"), "\(name)")
            } else {
                #expect(text(response) == "listening", "\(name)")
            }
        }
    }

    @Test("results render as text, and as JSON when asked")
    func rendering() {
        let plain = eval("print('hi') return 1 + 1, 'x'")
        #expect(plain.status == 200)
        #expect(text(plain) == "hi\n2\tx")
        #expect(plain.header("Content-Type") == "text/plain; charset=utf-8")
        let json = eval("return 1 + 1", accept: "application/json")
        #expect(json.status == 200)
        #expect(json.header("Content-Type") == "application/json")
        #expect(text(json).hasPrefix(#"{"ok":true,"results":[2],"output":"""#))
    }

    @Test("errors and limits answer as SPEC E6 says: syntax 400, runtime 500, timeout 504", arguments: [
        ("return +", 400, "syntax"), ("error('no')", 500, "runtime"), ("while true do end", 504, "timeout"),
    ])
    func failures(chunk: String, status: Int, kind: String) {
        let response = eval(chunk)
        #expect(response.status == status)
        #expect(response.header("X-Lua-Error") == kind)
        // The state goes on.
        #expect(text(eval("return 'after'")) == "after")
    }

    @Test("a request that finds the queue full is 503 busy with Retry-After, and runs nothing")
    func queueFull() {
        executor.options.queueCapacity = 1
        // Two requests handed over before the state runs either: the first runs next, the
        // second waits (the queue holds one), the third finds the queue full.
        let writers = (0..<3).map { _ in CapturedAnswer() }
        for (index, writer) in writers.enumerated() {
            _ = service.respond(
                to: head(headers: ["authorization": "Bearer \(token)"]), body: .complete(Array("ran\(index) = true".utf8)),
                writer: writer)
        }
        let refused = writers[2].given
        #expect(refused?.status == 503)
        #expect(refused?.header("Retry-After") == "1")
        #expect(refused?.header("X-Lua-Error") == "busy")
        service.runDeferred()
        #expect(writers[0].wait()?.status == 200)
        #expect(writers[1].wait()?.status == 200)
        #expect(text(eval("return ran0, ran1, ran2")) == "true\ttrue\tnil")
    }

    @Test("a body cut short is 400 and runs nothing")
    func incompleteBody() {
        let response = answer(head(query: "AuthToken=\(token)"), .incomplete)
        #expect(response.status == 400)
        #expect(response.body == Array("the request body ended before its declared length\n".utf8))
    }

    @Test("a body over the limit is 413")
    func tooLarge() {
        let response = answer(head(query: "AuthToken=\(token)"), .tooLarge)
        #expect(response.status == 413)
        #expect(text(response) == "the request body exceeds the limit of 64 bytes\n")
    }

    /// Issue 24, item 6: whatever an answer holds, no browser runs it as script in the
    /// console's origin (AnswerHeadersTests has each kind of answer through the transport).
    @Test("every answer, a busy one too, carries the sandbox policy, nosniff and no-referrer")
    func securityHeaders() {
        executor.options.queueCapacity = 1
        let busy = (0..<3).map { _ in CapturedAnswer() }
        for writer in busy {
            _ = service.respond(
                to: head(headers: ["authorization": "Bearer \(token)"]), body: .complete(Array("return 1".utf8)),
                writer: writer)
        }
        service.runDeferred()
        let answers = [eval("return '<script>'"), answer(head()), busy[2].wait()!]
        let expected = [
            "Content-Security-Policy: sandbox; default-src 'none'; base-uri 'none'; form-action 'none'; "
                + "frame-ancestors 'none'",
            "X-Content-Type-Options: nosniff", "Referrer-Policy: no-referrer",
        ]
        for answer in answers {
            #expect(answer.fixedHeaders.map { "\($0.name): \($0.value)" } == expected)
            #expect(answer.header("x-content-type-options") == "nosniff")
        }
        #expect(answers.map(\.status) == [200, 401, 503])
    }

    @Test("Accept: application/json selects JSON, also among other media ranges", arguments: [
        "application/json", "text/html, application/json;q=0.9", "APPLICATION/JSON",
    ])
    func acceptJSON(accept: String) {
        #expect(ExecService.wantsJSON(head(headers: ["accept": accept])))
    }

    @Test("other Accept values keep text", arguments: ["*/*", "text/plain", "application/jsonx"])
    func acceptText(accept: String) {
        #expect(!ExecService.wantsJSON(head(headers: ["accept": accept])))
    }

    @Test("query parameters are percent-decoded")
    func query() {
        #expect(QueryString.values(of: "AuthToken", in: "a=1&AuthToken=x%2By+z&b") == ["x+y z"])
        #expect(QueryString.values(of: "AuthToken", in: "AuthToken=1&AuthToken=2") == ["1", "2"])
        #expect(QueryString.values(of: "AuthToken", in: "authtoken=1") == [])
    }

    @Test("milliseconds with three decimals, rounded to the microsecond, short and long")
    func milliseconds() {
        #expect(EvaluationRenderer.milliseconds(.zero) == "0.000")
        #expect(EvaluationRenderer.milliseconds(.nanoseconds(499)) == "0.000")
        #expect(EvaluationRenderer.milliseconds(.nanoseconds(500)) == "0.001")
        #expect(EvaluationRenderer.milliseconds(.microseconds(2500)) == "2.500")
        #expect(EvaluationRenderer.serverTiming(nanoseconds: 42_000) == "lua;dur=0.042")
        // Past a small string's 15 bytes.
        #expect(EvaluationRenderer.serverTiming(nanoseconds: 3600 * 1_000_000_000) == "lua;dur=3600000.000")
        let bytes = ByteWriter.bytes { writer in
            writer.milliseconds(nanoseconds: 1_234_567_800)
            writer.decimal(-42)
        }
        #expect(String(decoding: bytes, as: UTF8.self) == "1234.568-42")
    }

    @Test("the audit line has every field, escapes what could forge a line, and never holds the token or body")
    func auditLine() {
        var record = AuditRecord(
            head: RequestHead(
                method: "POST", path: "/a b\"\n=", query: "AuthToken=\(token)", clientAddress: "10.0.0.1",
                requestID: "abc"))
        record.tokenName = "t"
        record.body = Array("return 1".utf8)
        record.finish(response: Response(status: 200, body: [0x31]), nanoseconds: 2_500_000)
        #expect(
            record.line
                == #"request id=abc client=10.0.0.1 token=t scope=- endpoint="POST /a b\"\x0a=" status=200 error=- in=8 out=1 ms=2.500 body_sha256=486d9affb60d"#)
        #expect(!record.line.contains(token))

        // Nothing to escape: the values as they are, the endpoint quoted for its space.
        var plain = AuditRecord(
            head: RequestHead(
                method: "POST", path: "/api/v1/exec/interactive.lua", clientAddress: "10.0.0.1",
                requestID: "0123456789abcdef"))
        plain.scope = "exec"
        plain.errorKind = "runtime"
        plain.finish(response: Response(status: 500, body: []), nanoseconds: 12_000_000)
        let expected = #"request id=0123456789abcdef client=10.0.0.1 token=- scope=exec endpoint="POST /api/v1/exec/interactive.lua" status=500 error=runtime in=0 out=0 ms=12.000 body_sha256=-"#
        #expect(plain.line == expected)
        // The line handed over as bytes is the same line.
        let handed = Mutex<[UInt8]>([])
        plain.log(to: Logger(label: "test"), through: { fields in handed.withLock { $0 = LogLine.bytes(fields) } })
        #expect(handed.withLock { $0 } == Array(expected.utf8))
        // A quote in the second part of a value escapes it although the first part is plain.
        let quoted = AuditRecord(head: RequestHead(method: "GET", path: "/x\"y", clientAddress: "c"))
        #expect(quoted.line.contains(#" endpoint="GET /x\"y" "#))
        // A path longer than the writer's scratch, escaped all along: nothing lost or reordered.
        let long = String(repeating: "/ab\n\"", count: 700)
        let escaped = String(repeating: #"/ab\x0a\""#, count: 700)
        let longRecord = AuditRecord(head: RequestHead(method: "GET", path: long, clientAddress: "c"))
        #expect(longRecord.line.contains(" endpoint=\"GET \(escaped)\" status=0 "))
        // A token in the path (a client that sent `?` as `%3F`) is masked in the line.
        let inPath = AuditRecord(head: RequestHead(method: "GET", path: "/api/v1/exec/x?AuthToken=\(token)", clientAddress: "c"))
        #expect(inPath.line.contains(#" endpoint="GET /api/v1/exec/x?AuthToken=lxk_***" "#), "\(inPath.line)")
        #expect(!inPath.line.contains(token))
    }

    @Test("what looks like a token is masked where a path is shown; a path without one is the same string",
        arguments: [
            ("/api/v1/exec/interactive.lua", "/api/v1/exec/interactive.lua"),
            ("/a/lxk_abcDEF012-_x/b", "/a/lxk_***/b"),
            ("/LXK_abc.lua?Lxk_d&lxk_", "/LXK_***.lua?Lxk_***&lxk_***"),
            ("/lxk/_lx_k_lxk", "/lxk/_lx_k_lxk"),
            ("/é/lxk_é", "/é/lxk_***é"),
        ])
    func maskingTokens(path: String, shown: String) {
        #expect(RequestHead(method: "GET", path: path).shownPath == shown)
    }

    @Test("a 404 never echoes a token that came in the path")
    func notFoundMasksToken() {
        let response = answer(head("GET", path: "/api/v1/exec/interactive.lua?AuthToken=\(token)", headers: ["authorization": "Bearer \(token)"]))
        #expect(response.status == 404)
        #expect(text(response) == "no such endpoint: /api/v1/exec/interactive.lua?AuthToken=lxk_***\n")
        let outside = answer(head("GET", path: "/api/v2/\(token)"))
        #expect(outside.status == 404)
        #expect(!text(outside).contains(token))
    }
}

/// SPEC E13: the events as `EventStream` writes them.
@Suite("Streamed answers: events")
struct EventStreamTests {
    /// Records the head and the parts of a streamed answer.
    final class StreamWriter: ResponseWriter, @unchecked Sendable {
        var head: Response?
        var parts: [[UInt8]] = []
        var sent: Response?
        var finished = false
        func send(_ response: Response) { sent = response }
        func startStream(_ head: Response) { self.head = head }
        func write(_ bytes: [UInt8]) -> Bool {
            parts.append(bytes)
            return true
        }
        func finish() { finished = true }
    }

    @Test("a UTF-8 sequence cut at the end is held back, and nothing else")
    func incompleteTail() {
        #expect(EventStream.incompleteTail(Array("ab".utf8)) == 2)
        #expect(EventStream.incompleteTail(Array("a€".utf8)) == 4)
        #expect(EventStream.incompleteTail([0x61, 0xE2, 0x82]) == 1)
        #expect(EventStream.incompleteTail([0x61, 0xE2]) == 1)
        #expect(EventStream.incompleteTail([0xF0, 0x9F, 0x98]) == 0)
        #expect(EventStream.incompleteTail([0xFF, 0xFE]) == 2)
        #expect(EventStream.incompleteTail([0x82, 0x82, 0x82, 0x82]) == 4)
    }

    @Test("output events, then the final event; the head goes with the first event")
    func events() {
        let writer = StreamWriter()
        let stream = EventStream(writer: writer)
        stream.output([0x61, 0xE2, 0x82])
        #expect(writer.head?.status == 200)
        #expect(writer.head?.header("X-Accel-Buffering") == "no")
        #expect(writer.parts == [Array("event: output\ndata: \"a\"\n\n".utf8)])
        var audit = AuditRecord(head: RequestHead(method: "POST", path: "/api/v1/exec/interactive.lua"))
        let last = stream.end(Response(status: 504, body: Array("{\"ok\":false}".utf8)), output: [0xAC], audit: &audit)
        #expect(last.status == 200)
        #expect(writer.parts.last == Array("event: output\ndata: \"€\"\n\nevent: error\ndata: {\"ok\":false}\n\n".utf8))
        #expect(audit.streamed == writer.parts[0].count)
        #expect(audit.streamDropped == false)
    }

    @Test("nothing streamed before the end: one answer with the outcome's status and headers")
    func wholeAnswer() {
        let writer = StreamWriter()
        let stream = EventStream(writer: writer)
        var audit = AuditRecord(head: RequestHead(method: "POST", path: "/api/v1/exec/interactive.lua"))
        let answer = stream.end(
            Response(
                status: 400, headers: [("Content-Type", "application/json"), ("X-Lua-Error", "syntax")],
                body: Array("{}".utf8)),
            output: [], audit: &audit)
        #expect(writer.head == nil)
        #expect(answer.status == 400)
        #expect(answer.header("Content-Type") == "text/event-stream")
        #expect(answer.header("X-Lua-Error") == "syntax")
        #expect(answer.body == Array("event: error\ndata: {}\n\n".utf8))
        #expect(audit.streamed == nil)
    }
}
