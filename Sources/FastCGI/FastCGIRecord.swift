import CFastCGI
import HTTPCore
import SystemSupport

/// The protocol's numbers, as libfcgi-dev's `fastcgi.h` defines them.
enum FCGI {
    static let version = UInt8(FCGI_VERSION_1)
    static let headerLength = Int(FCGI_HEADER_LEN)
    static let maxContentLength = Int(FCGI_MAX_LENGTH)

    static let beginRequest = UInt8(FCGI_BEGIN_REQUEST)
    static let abortRequest = UInt8(FCGI_ABORT_REQUEST)
    static let endRequest = UInt8(FCGI_END_REQUEST)
    static let params = UInt8(FCGI_PARAMS)
    static let stdin = UInt8(FCGI_STDIN)
    static let stdout = UInt8(FCGI_STDOUT)
    static let data = UInt8(FCGI_DATA)
    static let getValues = UInt8(FCGI_GET_VALUES)
    static let getValuesResult = UInt8(FCGI_GET_VALUES_RESULT)
    static let unknownType = UInt8(FCGI_UNKNOWN_TYPE)

    static let keepConnection = UInt8(FCGI_KEEP_CONN)
    static let responder = UInt16(FCGI_RESPONDER)

    static let requestComplete = UInt8(FCGI_REQUEST_COMPLETE)
    static let cantMultiplex = UInt8(FCGI_CANT_MPX_CONN)
    static let unknownRole = UInt8(FCGI_UNKNOWN_ROLE)

    static let maxConnsName = Array(FCGI_MAX_CONNS.utf8)
    static let maxReqsName = Array(FCGI_MAX_REQS.utf8)
    static let mpxsConnsName = Array(FCGI_MPXS_CONNS.utf8)
}

/// Writes FastCGI records: what luaexecd sends to nginx.
enum FastCGIEncoder {
    /// A record of `type` for request `id` with `content` (at most 65535 bytes), unpadded: the
    /// protocol only recommends padding, and every peer reads unpadded records.
    static func record(_ type: UInt8, id: UInt16, _ content: some Collection<UInt8>, into out: inout [UInt8]) {
        appendHeader(type, id: id, length: content.count, into: &out)
        out.append(contentsOf: content)
    }

    static func appendHeader(_ type: UInt8, id: UInt16, length: Int, into out: inout [UInt8]) {
        // A tuple, not an array literal: every response writes three headers, and a literal
        // can cost an allocation each.
        let header = (FCGI.version, type, UInt8(id >> 8), UInt8(id & 0xFF), UInt8(length >> 8), UInt8(length & 0xFF), UInt8(0), UInt8(0))
        withUnsafeBytes(of: header) { out.append(contentsOf: $0) }
    }

    /// END_REQUEST with an application status of 0 and `status`.
    static func endRequest(id: UInt16, status: UInt8, into out: inout [UInt8]) {
        appendHeader(FCGI.endRequest, id: id, length: 8, into: &out)
        let body = (UInt8(0), UInt8(0), UInt8(0), UInt8(0), status, UInt8(0), UInt8(0), UInt8(0))
        withUnsafeBytes(of: body) { out.append(contentsOf: $0) }
    }

    /// The CGI response (`Status:`, the headers, a blank line, the body) as STDOUT records, the
    /// empty STDOUT that ends the stream, and END_REQUEST.
    static func response(_ response: Response, id: UInt16, into out: inout [UInt8]) {
        out.reserveCapacity(out.count + 256 + response.fixedLines.utf8CodeUnitCount + response.body.count + 48)
        let hasContent = Response.mayHaveContent(response.status)
        head(response, contentLength: hasContent ? response.body.count : nil, id: id, into: &out)
        if hasContent { split(response.body[...], id: id, into: &out) }
        endStream(id: id, into: &out)
    }

    /// The head of a streamed answer: no `Content-Length`, the body follows in `stdout` records.
    static func streamHead(_ response: Response, id: UInt16, into out: inout [UInt8]) {
        head(response, contentLength: nil, id: id, into: &out)
    }

    /// Part of a streamed body. Nothing for no bytes: an empty STDOUT record would end the
    /// stream.
    static func stdout(_ bytes: [UInt8], id: UInt16, into out: inout [UInt8]) {
        split(bytes[...], id: id, into: &out)
    }

    /// The empty STDOUT that ends the stream, and END_REQUEST.
    static func endStream(id: UInt16, into out: inout [UInt8]) {
        appendHeader(FCGI.stdout, id: id, length: 0, into: &out)
        endRequest(id: id, status: FCGI.requestComplete, into: &out)
    }

    /// `Status:`, the headers and the blank line, as STDOUT records.
    private static func head(_ response: Response, contentLength: Int?, id: UInt16, into out: inout [UInt8]) {
        // The head is written as bytes straight into `out`, after a header whose length is
        // filled in once known: no intermediate string.
        let headerAt = out.count
        appendHeader(FCGI.stdout, id: id, length: 0, into: &out)
        let headStart = out.count
        ByteWriter.append(to: &out) { out in
            out.literal("Status: ")
            out.decimal(response.status)
            out.byte(UInt8(ascii: " "))
            out.utf8(Response.reason(response.status))
            out.literal("\r\n")
            for (name, value) in response.headers {
                out.utf8(name)
                out.literal(": ")
                out.utf8(value)
                out.literal("\r\n")
            }
            out.literal(response.fixedLines)
            if let contentLength {
                out.literal("Content-Length: ")
                out.decimal(contentLength)
                out.literal("\r\n")
            }
            out.literal("\r\n")
        }
        let headLength = out.count - headStart
        if headLength <= FCGI.maxContentLength {
            out[headerAt + 4] = UInt8(headLength >> 8)
            out[headerAt + 5] = UInt8(headLength & 0xFF)
        } else {
            // Enormous headers from a handler: split the head over several records.
            let head = Array(out[headStart...])
            out.removeSubrange(headerAt...)
            split(head[...], id: id, into: &out)
        }
    }

    /// `bytes` as STDOUT records of at most 65535 bytes each.
    private static func split(_ bytes: ArraySlice<UInt8>, id: UInt16, into out: inout [UInt8]) {
        var offset = bytes.startIndex
        while offset < bytes.endIndex {
            let end = min(offset + FCGI.maxContentLength, bytes.endIndex)
            record(FCGI.stdout, id: id, bytes[offset..<end], into: &out)
            offset = end
        }
    }

    /// A name-value pair with the protocol's 1- or 4-byte lengths.
    static func pair(_ name: [UInt8], _ value: [UInt8], into out: inout [UInt8]) {
        for length in [name.count, value.count] {
            if length < 128 {
                out.append(UInt8(length))
            } else {
                out.append(contentsOf: [UInt8(0x80 | (length >> 24)), UInt8((length >> 16) & 0xFF), UInt8((length >> 8) & 0xFF), UInt8(length & 0xFF)])
            }
        }
        out.append(contentsOf: name)
        out.append(contentsOf: value)
    }
}

/// A stream that breaks the protocol: its connection is closed, and nothing else is affected.
public struct FastCGIProtocolError: Error, CustomStringConvertible, Sendable, Equatable {
    public var description: String
    init(_ description: String) { self.description = description }
}
