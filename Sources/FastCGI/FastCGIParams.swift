import HTTPCore

#if canImport(Glibc)
import Glibc
#endif

/// The CGI variables of one request (the PARAMS stream's name-value pairs), and the
/// `RequestHead` luaexecd builds from them.
public struct FastCGIParams: Sendable {
    /// The stream as it came; names and values are ranges of it.
    let bytes: [UInt8]
    let entries: [(name: Range<Int>, value: Range<Int>)]

    /// Parses a PARAMS stream. Lengths of 0 to 127 take one byte, longer ones four (the top bit
    /// set); every length is checked against what is left before it is used, so a length near
    /// 2^31 (libfcgi's CVE-2025-23016) is an error, not an overflow.
    public init(stream bytes: [UInt8]) throws(FastCGIProtocolError) {
        var entries: [(name: Range<Int>, value: Range<Int>)] = []
        // nginx sends about a dozen (the site's params and the request's headers). Below 1 KiB:
        // glibc consolidates its free lists before every allocation larger than that.
        entries.reserveCapacity(16)
        var offset = 0
        func length() throws(FastCGIProtocolError) -> Int {
            guard offset < bytes.count else { throw FastCGIProtocolError("a name-value pair is cut short") }
            let first = bytes[offset]
            if first < 0x80 {
                offset += 1
                return Int(first)
            }
            guard bytes.count - offset >= 4 else { throw FastCGIProtocolError("a name-value length is cut short") }
            let value = Int(first & 0x7F) << 24 | Int(bytes[offset + 1]) << 16 | Int(bytes[offset + 2]) << 8
                | Int(bytes[offset + 3])
            offset += 4
            return value
        }
        while offset < bytes.count {
            let nameLength = try length()
            let valueLength = try length()
            // Both at most 2^31 - 1 and Int is 64 bits: the sum cannot overflow.
            guard nameLength + valueLength <= bytes.count - offset else {
                throw FastCGIProtocolError("a name-value pair claims more bytes than the stream holds")
            }
            let name = offset..<(offset + nameLength)
            let value = name.upperBound..<(name.upperBound + valueLength)
            entries.append((name, value))
            offset = value.upperBound
        }
        self.bytes = bytes
        self.entries = entries
    }

    /// Pairs in stream order, for tests and GET_VALUES.
    var pairs: [(name: [UInt8], value: [UInt8])] {
        entries.map { (Array(bytes[$0.name]), Array(bytes[$0.value])) }
    }

    public func value(_ name: String) -> String? {
        var name = name
        return name.withUTF8 { wanted in
            for entry in entries where entry.name.count == wanted.count {
                if bytes[entry.name].elementsEqual(wanted) { return string(entry.value) }
            }
            return nil
        }
    }

    private func string(_ range: Range<Int>) -> String {
        String(decoding: bytes[range], as: UTF8.self)
    }

    /// The request line and the headers; nginx's `luaexec-fastcgi.conf` sends them, every request
    /// header as `HTTP_NAME` (an endpoint's handler sees them all, as `x-name`). The headers stay
    /// ranges of the stream (`HeaderFields`): most requests read two of them. The path comes from
    /// whichever variables the web server sends (`RequestPath`); a request without a usable one
    /// carries `pathProblem`. A server that sends no `REQUEST_ID` (lighttpd, Apache httpd) gets
    /// one made here, so that every audit line can be traced.
    public func head() -> RequestHead {
        var method: String?, query: String?
        var documentURI: Range<Int>?, scriptName: Range<Int>?, pathInfo: Range<Int>?, requestURI: Range<Int>?
        var clientAddress: String?, requestID: String?
        var headers: [HeaderFields.Field] = []
        headers.reserveCapacity(entries.count)
        bytes.withUnsafeBufferPointer { stream in
            // Names compared with memcmp against literals: every request has a dozen of them.
            for entry in entries {
                let name = entry.name
                // "HTTP_X_TEST" is the header x-test.
                if Self.name(name, in: stream, startsWith: "HTTP_") {
                    headers.append((name.dropFirst(5), entry.value))
                    continue
                }
                func named(_ literal: StaticString) -> Bool { Self.name(name, in: stream, is: literal) }
                switch name.count {
                case 11 where named("REMOTE_ADDR"): clientAddress = string(entry.value)
                case 10 where named("REQUEST_ID"): requestID = string(entry.value)
                case 12 where named("CONTENT_TYPE"): headers.append(entry)
                case 12 where named("QUERY_STRING"): query = string(entry.value)
                case 11 where named("SCRIPT_NAME"): scriptName = entry.value
                case 9 where named("PATH_INFO"): pathInfo = entry.value
                case 11 where named("REQUEST_URI"): requestURI = entry.value
                case 12 where named("DOCUMENT_URI"): documentURI = entry.value
                case 14 where named("REQUEST_METHOD"): method = string(entry.value)
                case 14 where named("CONTENT_LENGTH"): headers.append(entry)
                default: continue
                }
            }
        }
        let path: String, pathProblem: String?
        switch RequestPath.derive(
            documentURI: documentURI.map { bytes[$0] }, scriptName: scriptName.map { bytes[$0] },
            pathInfo: pathInfo.map { bytes[$0] }, requestURI: requestURI.map { bytes[$0] })
        {
        case .path(let derived): (path, pathProblem) = (derived, nil)
        case .refused(let problem): (path, pathProblem) = ("", problem)
        }
        return RequestHead(
            method: method ?? "GET", path: path, query: query ?? "",
            headers: HeaderFields(bytes: bytes, fields: headers), clientAddress: clientAddress ?? "",
            requestID: requestID ?? Self.madeRequestID(), pathProblem: pathProblem)
    }

    /// 32 random hex digits, the shape of nginx's `$request_id`.
    static func madeRequestID() -> String {
        var generator = SystemRandomNumberGenerator()
        let digits = Array("0123456789abcdef".utf8)
        var id = [UInt8](repeating: 0, count: 32)
        for half in 0..<2 {
            var value = generator.next()
            for index in 0..<16 {
                id[half * 16 + index] = digits[Int(value & 15)]
                value >>= 4
            }
        }
        return String(decoding: id, as: UTF8.self)
    }

    /// CONTENT_LENGTH, if it is a number.
    var contentLength: Int? {
        let found = bytes.withUnsafeBufferPointer { stream in
            entries.first { Self.name($0.name, in: stream, is: "CONTENT_LENGTH") }
        }
        guard let entry = found, !entry.value.isEmpty else { return nil }
        var value = 0
        for byte in bytes[entry.value] {
            guard byte >= 48, byte <= 57, value < Int.max / 10 - 10 else { return nil }
            value = value * 10 + Int(byte - 48)
        }
        return value
    }

    private static func name(_ range: Range<Int>, in stream: UnsafeBufferPointer<UInt8>, is literal: StaticString) -> Bool {
        range.count == literal.utf8CodeUnitCount && name(range, in: stream, startsWith: literal)
    }

    private static func name(_ range: Range<Int>, in stream: UnsafeBufferPointer<UInt8>, startsWith literal: StaticString) -> Bool {
        range.count >= literal.utf8CodeUnitCount
            && memcmp(stream.baseAddress! + range.lowerBound, literal.utf8Start, literal.utf8CodeUnitCount) == 0
    }
}
