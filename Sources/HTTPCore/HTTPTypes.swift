import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// What the transport knows of a request before its body is read.
///
/// A class, immutable: every request's head passes from the transport's parser to its queue, the
/// service, the audit record and the metrics, and each copy of a struct of six strings and two
/// arrays retained and released them all (a thousand instructions a request, bench/NOTES.md).
public final class RequestHead: Sendable {
    public let method: String
    /// The normalised path (nginx's `$document_uri`), without the query; empty when the web
    /// server sent no usable one (`pathProblem` says why).
    public let path: String
    /// The raw query string, without `?`.
    public let query: String
    /// Request headers, looked up by lower-case name.
    public let headers: HeaderFields
    /// The client's address as nginx saw it.
    public let clientAddress: String
    /// nginx's `$request_id`, or one the transport made.
    public let requestID: String?
    /// Why the request has no path to route on (a message for a 400), when it has none.
    public let pathProblem: String?
    /// `path` as it may be shown (an answer, a log line, the audit trail): anything in it that
    /// looks like a token (SPEC T3's prefix `lxk_`, in any case, and what follows it in the
    /// token's alphabet) masked as `lxk_***`, since no answer echoes a token and no log holds
    /// one (T2, T5): a client that sent `?` as `%3F` put its token in the path. `path` itself
    /// when it holds none, as nearly every path does. Made once: the log line and the audit
    /// record both show it.
    public let shownPath: String

    public init(
        method: String, path: String, query: String = "", headers: HeaderFields = [:],
        clientAddress: String = "", requestID: String? = nil, pathProblem: String? = nil
    ) {
        self.method = method
        self.path = path
        self.query = query
        self.headers = headers
        self.clientAddress = clientAddress
        self.requestID = requestID
        self.pathProblem = pathProblem
        self.shownPath = Self.maskingTokens(path)
    }

    /// `text` with each `lxk_...` run masked as `lxk_***`; `text` itself when it has none.
    public static func maskingTokens(_ text: String) -> String {
        // On every request's log line and audit record: the `_`s looked for with memchr where
        // the bytes lie (a path has few or none), nothing made.
        let holds = withUTF8Bytes(of: text) { bytes -> Bool in
            guard let base = bytes.baseAddress else { return false }
            var from = 3
            while from < bytes.count, let found = memchr(base + from, Int32(UInt8(ascii: "_")), bytes.count - from) {
                let index = base.distance(to: found.assumingMemoryBound(to: UInt8.self))
                if Self.isPrefix(bytes, at: index - 3) { return true }
                from = index + 1
            }
            return false
        }
        guard holds else { return text }
        let masked = withUTF8Bytes(of: text) { bytes -> [UInt8] in
            var out: [UInt8] = []
            out.reserveCapacity(bytes.count)
            var index = 0
            while index < bytes.count {
                guard isPrefix(bytes, at: index) else {
                    out.append(bytes[index])
                    index += 1
                    continue
                }
                out += bytes[index..<index + 4]  // the prefix as it was spelt
                out += "***".utf8
                index += 4
                while index < bytes.count, isTokenByte(bytes[index]) { index += 1 }
            }
            return out
        }
        return String(decoding: masked, as: UTF8.self)
    }

    private static func isPrefix(_ bytes: UnsafeBufferPointer<UInt8>, at index: Int) -> Bool {
        index + 4 <= bytes.count && bytes[index] | 0x20 == UInt8(ascii: "l") && bytes[index + 1] | 0x20 == UInt8(ascii: "x")
            && bytes[index + 2] | 0x20 == UInt8(ascii: "k") && bytes[index + 3] == UInt8(ascii: "_")
    }

    private static func isTokenByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"),
            UInt8(ascii: "-"), UInt8(ascii: "_"):
            true
        default: false
        }
    }
}

/// How the transport delivers the body: at most `limit` bytes, `.tooLarge`, or `.incomplete`
/// when the stream ended before the declared length (a client or nginx gave up mid-body).
public enum BodyRead: Sendable, Equatable {
    case complete([UInt8])
    case tooLarge
    case incomplete
}

/// A response for the transport to write.
public struct Response: Sendable, Equatable {
    public var status: Int
    public var headers: [(name: String, value: String)]
    public var body: [UInt8]
    /// Header lines written after `headers`, as they go on the wire (`Name: value\r\n` each):
    /// what every answer carries (`HeaderPolicy.securityLines`, set by ExecService), copied in
    /// one piece. Appended to `headers`, three header pairs cost a request 2,700 instructions of
    /// array growth and generic tuple copies (callgrind).
    public var fixedLines: StaticString = ""

    public init(status: Int, headers: [(name: String, value: String)] = [], body: [UInt8] = []) {
        self.status = status
        self.headers = headers
        self.body = body
    }

    /// The value of the header `name`, among `headers` and `fixedLines`.
    public func header(_ name: String) -> String? {
        if let given = headers.first(where: { $0.name.lowercased() == name.lowercased() }) { return given.value }
        return fixedHeaders.first { $0.name.lowercased() == name.lowercased() }?.value
    }

    /// `fixedLines` as names and values.
    public var fixedHeaders: [(name: String, value: String)] {
        fixedLines.description.split(separator: "\r\n").map { line in
            let colon = line.firstIndex(of: ":")!
            return (String(line[..<colon]), String(line[line.index(after: colon)...].dropFirst()))
        }
    }

    public static func == (a: Response, b: Response) -> Bool {
        a.status == b.status && a.body == b.body && a.headers.elementsEqual(b.headers) { $0 == $1 }
            && a.fixedLines.description == b.fixedLines.description
    }

    /// Whether a response with `status` may carry content: not a 204 or a 304 (RFC 9110), which
    /// are sent without a body and without `Content-Length`.
    public static func mayHaveContent(_ status: Int) -> Bool { status != 204 && status != 304 }

    /// The reason phrase for the status line: the IANA registry's (RFC 9110 and its extensions),
    /// for any status a handler answers (200 to 599); an unregistered one is `Status N`.
    public static func reason(_ status: Int) -> String {
        switch status {
        case 200: "OK"
        case 201: "Created"
        case 202: "Accepted"
        case 203: "Non-Authoritative Information"
        case 204: "No Content"
        case 205: "Reset Content"
        case 206: "Partial Content"
        case 207: "Multi-Status"
        case 208: "Already Reported"
        case 226: "IM Used"
        case 300: "Multiple Choices"
        case 301: "Moved Permanently"
        case 302: "Found"
        case 303: "See Other"
        case 304: "Not Modified"
        case 305: "Use Proxy"
        case 307: "Temporary Redirect"
        case 308: "Permanent Redirect"
        case 400: "Bad Request"
        case 401: "Unauthorized"
        case 402: "Payment Required"
        case 403: "Forbidden"
        case 404: "Not Found"
        case 405: "Method Not Allowed"
        case 406: "Not Acceptable"
        case 407: "Proxy Authentication Required"
        case 408: "Request Timeout"
        case 409: "Conflict"
        case 410: "Gone"
        case 411: "Length Required"
        case 412: "Precondition Failed"
        case 413: "Content Too Large"
        case 414: "URI Too Long"
        case 415: "Unsupported Media Type"
        case 416: "Range Not Satisfiable"
        case 417: "Expectation Failed"
        case 421: "Misdirected Request"
        case 422: "Unprocessable Content"
        case 423: "Locked"
        case 424: "Failed Dependency"
        case 425: "Too Early"
        case 426: "Upgrade Required"
        case 428: "Precondition Required"
        case 429: "Too Many Requests"
        case 431: "Request Header Fields Too Large"
        case 451: "Unavailable For Legal Reasons"
        case 500: "Internal Server Error"
        case 501: "Not Implemented"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        case 505: "HTTP Version Not Supported"
        case 506: "Variant Also Negotiates"
        case 507: "Insufficient Storage"
        case 508: "Loop Detected"
        case 511: "Network Authentication Required"
        default: "Status \(status)"
        }
    }
}
