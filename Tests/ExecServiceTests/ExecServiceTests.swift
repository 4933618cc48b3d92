import AccessControl
import Foundation
import Logging
import LuaRuntime
import Synchronization
import SystemSupport
import Testing

@testable import ExecService

/// ExecService with a real Lua state and a real SQLite token store, without a transport.
@Suite("ExecService routing, auth and rendering")
struct ExecServiceTests {
    let service: ExecService
    let token: String
    let path = "/tmp/luaexec-service-\(UUID().uuidString).db"

    init() throws {
        let store = try TokenStore(path: path)
        token = try store.create(name: "t", scopes: [.exec], expiresAt: nil).secret
        var quiet = Logger(label: "test")
        quiet.logLevel = .critical
        let executor = try LuaExecutor(logger: quiet) { try LuaVM() }
        service = ExecService(
            executor: executor, authenticator: try Authenticator(store: store), options: .init(maxBodySize: 16),
            logger: quiet)
    }

    func head(_ method: String = "POST", query: String = "", headers: HeaderFields = [:]) -> RequestHead {
        RequestHead(method: method, path: "/api/v1/exec/interactive.lua", query: query, headers: headers)
    }

    @Test("a rejected request never has its body read")
    func bodyNotReadWhenRejected() {
        var reads = 0
        let response = service.respond(to: head()) { _ in
            reads += 1
            return .complete(Array("x = 1".utf8))
        }
        #expect(response.status == 401)
        #expect(reads == 0)
    }

    @Test("the body is read once with the configured limit, and evaluated")
    func bodyRead() {
        var limits: [Int] = []
        let response = service.respond(to: head(headers: ["authorization": "Bearer \(token)"])) { limit in
            limits.append(limit)
            return .complete(Array("return 1 + 1".utf8))
        }
        #expect(limits == [16])
        #expect(response.status == 200)
        #expect(response.body == Array("2".utf8))
        #expect(response.header("Content-Type") == "text/plain; charset=utf-8")
    }

    @Test("a body cut short is 400 and runs nothing")
    func incompleteBody() {
        let response = service.respond(to: head(query: "AuthToken=\(token)")) { _ in .incomplete }
        #expect(response.status == 400)
        #expect(response.body == Array("the request body ended before its declared length\n".utf8))
    }

    @Test("a body over the limit is 413")
    func tooLarge() {
        let response = service.respond(to: head(query: "AuthToken=\(token)")) { _ in .tooLarge }
        #expect(response.status == 413)
    }

    /// Issue 24, item 6: whatever an answer holds, no browser runs it as script in the
    /// console's origin (AnswerHeadersTests has each kind of answer through the transport).
    @Test("every answer, a busy one too, carries the sandbox policy, nosniff and no-referrer")
    func securityHeaders() {
        let chunk = Array("return '<script>'".utf8)
        let answers = [
            service.respond(to: head(headers: ["authorization": "Bearer \(token)"])) { _ in .complete(chunk) },
            service.respond(to: head()) { _ in .complete([]) },
            service.respondBusy(to: head()),
        ]
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
        record.finish(response: Response(status: 200, body: [0x31]), at: MonotonicInstant.now(), nanoseconds: 2_500_000)
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
        plain.finish(response: Response(status: 500, body: []), at: MonotonicInstant.now(), nanoseconds: 12_000_000)
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
    }
}
