import Crypto
import Logging
import SystemSupport

/// One audit line per request (SPEC O2): who, what, how it ended. Never the token, never the
/// body: only the first 12 hex digits of the body's SHA-256, to match a request to a script.
struct AuditRecord {
    var requestID: String
    var client: String
    var method: String
    var path: String
    var tokenName: String?
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
        var bodyHash = "-"
        if let body {
            bodyHash = String(SHA256.hash(data: body).prefix(6).map { byte in
                let hex = String(byte, radix: 16)
                return byte < 16 ? "0" + hex : hex
            }.joined())
        }
        logger.info(
            "request",
            metadata: [
                "id": "\(requestID)",
                "client": "\(client)",
                "token": "\(tokenName ?? "-")",
                "endpoint": "\(method) \(path)",
                "status": "\(status)",
                "error": "\(errorKind ?? "-")",
                "in": "\(body?.count ?? 0)",
                "out": "\(bytesOut)",
                "ms": "\(EvaluationRenderer.milliseconds(duration))",
                "body_sha256": "\(bodyHash)",
            ])
    }
}
