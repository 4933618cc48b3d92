import Crypto
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
    /// The scope the request needed (`exec`, `endpoint:doorbell`, ...), once known.
    var scope: String?
    var errorKind: String?
    /// The request body, until `finish`: the record outlives the request in the audit trail's
    /// batch (`AuditWriter`), which keeps only its size and digest.
    var body: [UInt8]?
    var bytesIn = 0
    var status = 0
    var bytesOut = 0
    /// How long the request took to answer.
    var elapsedNanoseconds: Int64 = 0
    /// When the answer was ready, on the monotonic clock: the audit writer turns it into a time
    /// of day once per batch, so the request pays for no second clock read.
    var finished = MonotonicInstant(nanoseconds: 0)
    /// What a change changed, for the audit trail (`token create ops scopes=exec`).
    var detail: String?
    /// The body's SHA-256, once `finish` computed it: not while the line is written, which may
    /// happen under the lock of the log's held lines.
    private var bodyDigest: SHA256.Digest?

    init(head: RequestHead) {
        self.head = head
    }

    mutating func finish(response: Response, at now: MonotonicInstant, nanoseconds: Int64) {
        status = response.status
        bytesOut = response.body.count
        elapsedNanoseconds = nanoseconds
        finished = now
        if let body {
            bytesIn = body.count
            bodyDigest = Self.digest(body)
            self.body = nil
        }
    }

    /// The body's SHA-256, once `finish` computed it.
    var digest: SHA256.Digest? { bodyDigest }

    private static func digest(_ body: [UInt8]) -> SHA256.Digest {
        var hasher = SHA256()
        body.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        return hasher.finalize()
    }

    /// At info level: through `write` when given (the line's fields written into the log
    /// line it makes), else as the logger's message.
    func log(to logger: Logger, through write: ((_ fields: (inout ByteWriter) -> Void) -> Void)? = nil) {
        guard logger.logLevel <= .info else { return }
        if let write {
            write { self.write(to: &$0) }
        } else {
            logger.info(Logger.Message(stringLiteral: line))
        }
    }

    /// `request id=… client=… token=… scope=… endpoint="POST /path" status=… error=… in=… out=… ms=… body_sha256=…`
    var line: String { String(decoding: ByteWriter.bytes { write(to: &$0) }, as: UTF8.self) }

    /// The fields, written as bytes where the log line is made: every request writes them, and
    /// building them from strings (one per field, each escaped into another) was a tenth of
    /// luaexecd's CPU.
    func write(to out: inout ByteWriter) {
        out.literal("request id=")
        Self.writeEscaped(head.requestID ?? "-", to: &out)
        out.literal(" client=")
        Self.writeEscaped(head.clientAddress, to: &out)
        out.literal(" token=")
        Self.writeEscaped(tokenName ?? "-", to: &out)
        out.literal(" scope=")
        Self.writeEscaped(scope ?? "-", to: &out)
        out.literal(" endpoint=")
        Self.writeEscaped(head.method, UInt8(ascii: " "), head.path, to: &out)
        out.literal(" status=")
        out.decimal(status)
        out.literal(" error=")
        out.utf8(errorKind ?? "-")
        out.literal(" in=")
        out.decimal(body?.count ?? bytesIn)
        out.literal(" out=")
        out.decimal(bytesOut)
        out.literal(" ms=")
        out.milliseconds(nanoseconds: elapsedNanoseconds)
        out.literal(" body_sha256=")
        if let digest = bodyDigest ?? body.map(Self.digest) {
            digest.withUnsafeBytes { digest in
                for byte in digest.prefix(6) { out.hex(byte) }
            }
        } else {
            out.byte(UInt8(ascii: "-"))
        }
    }

    /// A logfmt value: bare when safe, else quoted with `"` and `\` escaped and control bytes as
    /// `\xHH`, so a crafted path cannot forge a second line or field. Two parts joined by
    /// `separator` make one value (the endpoint: method and path).
    static func writeEscaped(_ value: String, _ separator: UInt8? = nil, _ second: String = "", to out: inout ByteWriter) {
        withUTF8Bytes(of: value) { first in
            withUTF8Bytes(of: second) { second in
                writeEscaped(first, separator, second, to: &out)
            }
        }
    }

    /// What a byte asks of a logfmt value: `unsafe`, quotes (a space or `=` would split the
    /// field); `unplain`, escaping inside them too (`"`, `\`, control and non-ASCII bytes).
    enum ByteClass {
        static let unsafe: UInt8 = 1
        static let unplain: UInt8 = 2
    }

    private static let byteClasses: [UInt8] = (0...255).map { byte in
        switch byte {
        case 0x20, 0x3D: ByteClass.unsafe
        case 0x22, 0x5C, 0..<0x20, 0x7F...: ByteClass.unsafe | ByteClass.unplain
        default: 0
        }
    }

    /// The union of the classes of `bytes`.
    private static func classes(of bytes: UnsafeBufferPointer<UInt8>, _ table: UnsafeBufferPointer<UInt8>) -> UInt8 {
        var union: UInt8 = 0
        for byte in bytes { union |= table[Int(byte)] }
        return union
    }

    private static func writeEscaped(
        _ value: UnsafeBufferPointer<UInt8>, _ separator: UInt8?, _ second: UnsafeBufferPointer<UInt8>,
        to out: inout ByteWriter
    ) {
        // One pass over the bytes with a table says which: every request writes five values.
        let (first, rest) = byteClasses.withUnsafeBufferPointer { table in
            (Self.classes(of: value, table), Self.classes(of: second, table))
        }
        if separator == nil, !value.isEmpty, first & ByteClass.unsafe == 0 {
            out.bytes(value)
            return
        }
        out.byte(UInt8(ascii: "\""))
        // Usually nothing inside the quotes needs escaping (a path, the endpoint): one copy each.
        if (first | rest) & ByteClass.unplain == 0 {
            out.bytes(value)
            if let separator {
                out.byte(separator)
                out.bytes(second)
            }
            out.byte(UInt8(ascii: "\""))
            return
        }
        func escape(_ part: UnsafeBufferPointer<UInt8>) {
            for byte in part {
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                    out.byte(UInt8(ascii: "\\"))
                    out.byte(byte)
                case 0..<0x20, 0x7F:
                    out.byte(UInt8(ascii: "\\"))
                    out.byte(UInt8(ascii: "x"))
                    out.hex(byte)
                default: out.byte(byte)
                }
            }
        }
        escape(value)
        if let separator {
            out.byte(separator)
            escape(second)
        }
        out.byte(UInt8(ascii: "\""))
    }
}
