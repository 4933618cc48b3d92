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

    func log(to logger: Logger) {
        guard logger.logLevel <= .info else { return }
        logger.info("\(line)")
    }

    /// `request id=… client=… token=… scope=… endpoint="POST /path" status=… error=… in=… out=… ms=… body_sha256=…`
    var line: String {
        var line = "request id=" + Self.escaped(requestID)
        line += " client=" + Self.escaped(client)
        line += " token=" + Self.escaped(tokenName ?? "-")
        line += " scope=" + Self.escaped(scope ?? "-")
        line += " endpoint=" + Self.escaped(method + " " + path)
        line += " status=\(status) error=" + (errorKind ?? "-")
        line += " in=\(body?.count ?? 0) out=\(bytesOut) ms=" + EvaluationRenderer.milliseconds(duration)
        line += " body_sha256=" + (body.map(Self.digestPrefix) ?? "-")
        return line
    }

    static func digestPrefix(_ body: [UInt8]) -> String {
        let hex = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(12)
        for byte in SHA256.hash(data: body).prefix(6) {
            out.append(hex[Int(byte >> 4)])
            out.append(hex[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }

    /// A logfmt value: bare when safe, else quoted with `"` and `\` escaped and control bytes as
    /// `\xHH`, so a crafted path cannot forge a second line or field.
    static func escaped(_ value: String) -> String {
        let safe = !value.isEmpty && value.utf8.allSatisfy { byte in
            byte > 0x20 && byte < 0x7F && byte != UInt8(ascii: "\"") && byte != UInt8(ascii: "=")
                && byte != UInt8(ascii: "\\")
        }
        if safe { return value }
        let hex = Array("0123456789abcdef".utf8)
        var out: [UInt8] = [UInt8(ascii: "\"")]
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"): out += [UInt8(ascii: "\\"), byte]
            case 0..<0x20, 0x7F: out += [UInt8(ascii: "\\"), UInt8(ascii: "x"), hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
        return String(decoding: out, as: UTF8.self)
    }
}
