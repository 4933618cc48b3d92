import Crypto
import Logging
import SystemSupport

/// One audit line per request (SPEC O2): who, what, how it ended. Never the token, never the
/// body: only the first 12 hex digits of the body's SHA-256, to match a request to a script.
///
/// The line is formatted here, in a fixed order (`logfmt`), and logged as the message: building
/// swift-log metadata for it cost a fifth of luaexecd's CPU under load.
struct AuditRecord {
    var requestID: String
    var client: String
    var method: String
    var path: String
    var tokenName: String?
    /// The scope the request needed (`exec`, `endpoint:doorbell`, ...), once known.
    var scope: String?
    var errorKind: String?
    var body: [UInt8]?
    var status = 0
    var bytesOut = 0
    var duration = Duration.zero

    init(head: RequestHead) {
        requestID = head.requestID ?? "-"
        client = head.clientAddress
        method = head.method
        path = head.path
    }

    mutating func finish(response: Response, duration: Duration) {
        status = response.status
        bytesOut = response.body.count
        self.duration = duration
    }

    /// At info level: through `write` when given, else as the logger's message.
    func log(to logger: Logger, asBytes write: ((_ line: [UInt8]) -> Void)? = nil) {
        guard logger.logLevel <= .info else { return }
        if let write {
            write(bytes)
        } else {
            logger.info(Logger.Message(stringLiteral: String(decoding: bytes, as: UTF8.self)))
        }
    }

    /// `request id=… client=… token=… scope=… endpoint="POST /path" status=… error=… in=… out=… ms=… body_sha256=…`
    var line: String { String(decoding: bytes, as: UTF8.self) }

    private var bytes: [UInt8] {
        // Appended as bytes into one buffer: every request writes one, and building it from
        // strings (one per field, each escaped into another) was a tenth of luaexecd's CPU.
        var out: [UInt8] = []
        out.reserveCapacity(224)
        ByteFormat.appendLiteral("request id=", to: &out)
        Self.appendEscaped(requestID, to: &out)
        ByteFormat.appendLiteral(" client=", to: &out)
        Self.appendEscaped(client, to: &out)
        ByteFormat.appendLiteral(" token=", to: &out)
        Self.appendEscaped(tokenName ?? "-", to: &out)
        ByteFormat.appendLiteral(" scope=", to: &out)
        Self.appendEscaped(scope ?? "-", to: &out)
        ByteFormat.appendLiteral(" endpoint=", to: &out)
        Self.appendEscaped(method, UInt8(ascii: " "), path, to: &out)
        ByteFormat.appendLiteral(" status=", to: &out)
        ByteFormat.appendDecimal(status, to: &out)
        ByteFormat.appendLiteral(" error=", to: &out)
        ByteFormat.appendUTF8(errorKind ?? "-", to: &out)
        ByteFormat.appendLiteral(" in=", to: &out)
        ByteFormat.appendDecimal(body?.count ?? 0, to: &out)
        ByteFormat.appendLiteral(" out=", to: &out)
        ByteFormat.appendDecimal(bytesOut, to: &out)
        ByteFormat.appendLiteral(" ms=", to: &out)
        ByteFormat.appendMilliseconds(duration, to: &out)
        ByteFormat.appendLiteral(" body_sha256=", to: &out)
        if let body {
            var hasher = SHA256()
            body.withUnsafeBytes { hasher.update(bufferPointer: $0) }
            hasher.finalize().withUnsafeBytes { digest in
                for byte in digest.prefix(6) { ByteFormat.appendHex(byte, to: &out) }
            }
        } else {
            out.append(UInt8(ascii: "-"))
        }
        return out
    }

    /// A logfmt value: bare when safe, else quoted with `"` and `\` escaped and control bytes as
    /// `\xHH`, so a crafted path cannot forge a second line or field. Two parts joined by
    /// `separator` make one value (the endpoint: method and path).
    static func appendEscaped(_ value: String, _ separator: UInt8? = nil, _ second: String = "", to out: inout [UInt8]) {
        var value = value
        var second = second
        value.withUTF8 { first in
            second.withUTF8 { second in
                appendEscaped(first, separator, second, to: &out)
            }
        }
    }

    private static func appendEscaped(
        _ value: UnsafeBufferPointer<UInt8>, _ separator: UInt8?, _ second: UnsafeBufferPointer<UInt8>,
        to out: inout [UInt8]
    ) {
        // Plain: written as is inside quotes (`escape` below handles the rest). Safe: needs no
        // quotes either (no space, no `=` to split the field).
        func isPlain(_ byte: UInt8) -> Bool {
            byte >= 0x20 && byte < 0x7F && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "\\")
        }
        func isSafe(_ byte: UInt8) -> Bool { isPlain(byte) && byte != 0x20 && byte != UInt8(ascii: "=") }
        if separator == nil, !value.isEmpty, value.allSatisfy(isSafe) {
            out.append(contentsOf: value)
            return
        }
        out.append(UInt8(ascii: "\""))
        // Usually nothing inside the quotes needs escaping (a path, the endpoint): one copy each.
        if value.allSatisfy(isPlain), second.allSatisfy(isPlain) {
            out.append(contentsOf: value)
            if let separator {
                out.append(separator)
                out.append(contentsOf: second)
            }
            out.append(UInt8(ascii: "\""))
            return
        }
        func escape(_ part: UnsafeBufferPointer<UInt8>) {
            for byte in part {
                switch byte {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"):
                    out.append(UInt8(ascii: "\\"))
                    out.append(byte)
                case 0..<0x20, 0x7F:
                    out.append(UInt8(ascii: "\\"))
                    out.append(UInt8(ascii: "x"))
                    ByteFormat.appendHex(byte, to: &out)
                default: out.append(byte)
                }
            }
        }
        escape(value)
        if let separator {
            out.append(separator)
            escape(second)
        }
        out.append(UInt8(ascii: "\""))
    }
}
