import AccessControl
import Crypto
import HTTPCore
import Logging
import SystemSupport

/// One audit line per request (SPEC O2): who, what, how it ended. Never the token, never the
/// body: only the first 12 hex digits of the body's SHA-256, to match a request to a script.
///
/// The line is formatted here, in a fixed order (`logfmt`), and logged as the message: building
/// swift-log metadata for it cost a fifth of luaexecd's CPU under load.
struct AuditRecord {
    /// The request id, client, method and path come from here.
    let head: RequestHead
    var tokenName: String?
    /// What the route table says the request is: `exec`, `action`, `endpoint`, `admin`,
    /// `metrics`, `whoami`, or `other` (no route).
    var kind = "other"
    /// The scope the request needed (`exec`, `endpoint:doorbell`, ...), once known.
    var scope: String?
    var errorKind: String?
    /// The request body, until `finish`: the record outlives the request in the audit trail's
    /// batch (`AuditWriter`), which keeps only its size and digest.
    var body: [UInt8]?
    var bytesIn = 0
    var status = 0
    var bytesOut = 0
    /// A streamed answer (SPEC E13): the bytes written before its last part, and whether the
    /// client went away before the end. Nil: the answer went whole.
    var streamed: Int?
    var streamDropped = false
    /// Refused before any handler ran (no such path, a token or scope refused, luaexecd
    /// stopping): with no token name, the trail folds a flood of them (`AuditWriter`).
    var refused = false
    /// How long the request took to answer.
    var elapsedNanoseconds: Int64 = 0
    /// What a change changed, for the audit trail (`token create ops scopes=exec`).
    var detail: String?
    /// The body's SHA-256, once `finish` computed it: not while the line is written, which may
    /// happen under the lock of the log's held lines.
    private var bodyDigest: SHA256.Digest?

    init(head: RequestHead) {
        self.head = head
    }

    mutating func finish(response: Response, nanoseconds: Int64) {
        status = response.status
        bytesOut = (streamed ?? 0) + response.body.count
        elapsedNanoseconds = nanoseconds
        if let body {
            bytesIn = body.count
            bodyDigest = digest(of: body)
            self.body = nil
        }
    }

    /// The body's SHA-256, once `finish` computed it.
    var digest: SHA256.Digest? { bodyDigest }

    private func digest(of body: [UInt8]) -> SHA256.Digest {
        body.withUnsafeBytes { Self.bodies.digest(of: $0, owner: tokenName ?? "") }
    }

    /// The digests of bodies sent again and again (the same chunk from a monitor, an endpoint's
    /// call), of up to 1 KiB: the chunks the Lua state keeps compiled (eval.c's cache). By
    /// token: one token's request never finds another's body remembered.
    private static let bodies = DigestMemo(slots: 64, maxLength: 1024)

    /// At info level: through `write` when given (the line's fields written into the log
    /// line it makes), else as the logger's message.
    func log(to logger: Logger, through write: ((_ fields: (inout LogLine) -> Void) -> Void)? = nil) {
        guard logger.logLevel <= .info else { return }
        if let write {
            write { self.write(to: &$0) }
        } else {
            logger.info(Logger.Message(stringLiteral: line))
        }
    }

    /// `request id=… client=… token=… scope=… endpoint="POST /path" status=… error=… in=… out=… ms=… body_sha256=…`,
    /// as the log holds it; a streamed answer adds `stream=sent` or `stream=dropped` (the client
    /// went away before the end).
    var line: String { String(decoding: LogLine.bytes { write(to: &$0) }, as: UTF8.self) }

    /// The fields, written as bytes where the log line is made: every request writes them, and
    /// building them from strings (one per field, each escaped into another) was a tenth of
    /// luaexecd's CPU. What a client sent (the path, the request id) goes in as a value, which
    /// `LogLine` escapes: a crafted path cannot forge a line or a field.
    func write(to out: inout LogLine) {
        out.literal("request id=")
        out.value(head.requestID ?? "-")
        out.literal(" client=")
        out.value(head.clientAddress)
        out.literal(" token=")
        out.value(tokenName ?? "-")
        out.literal(" scope=")
        out.value(scope ?? "-")
        out.literal(" endpoint=")
        out.value(head.method, joinedBy: UInt8(ascii: " "), head.shownPath)
        out.literal(" status=")
        out.decimal(status)
        out.literal(" error=")
        if let errorKind { out.text(errorKind) } else { out.literal("-") }
        out.literal(" in=")
        out.decimal(body?.count ?? bytesIn)
        out.literal(" out=")
        out.decimal(bytesOut)
        out.literal(" ms=")
        out.milliseconds(nanoseconds: elapsedNanoseconds)
        out.literal(" body_sha256=")
        if let digest = bodyDigest ?? body.map(digest(of:)) {
            digest.withUnsafeBytes { digest in
                for byte in digest.prefix(6) { out.hex(byte) }
            }
        } else {
            out.literal("-")
        }
        if streamed != nil {
            out.literal(" stream=")
            if streamDropped { out.literal("dropped") } else { out.literal("sent") }
        }
    }
}
