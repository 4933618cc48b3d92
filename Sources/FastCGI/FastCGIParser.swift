import HTTPCore

/// One connection's side of the responder protocol, without I/O: bytes go in (`append`),
/// complete requests and the records to answer with come out (`next`).
///
/// It does not multiplex (FCGI_MPXS_CONNS is 0): a BEGIN_REQUEST with another id while a request
/// is being read is answered CANT_MPX_CONN. Once a request is complete the parser pauses until
/// `finish()` says its response was written, so that back-to-back requests on a kept connection
/// are served in order; what arrives meanwhile stays buffered. Records of requests that are not
/// the active one are ignored, as the protocol says. Anything malformed throws: the caller
/// closes that connection, and only it.
public struct FastCGIParser {
    public struct Limits: Sendable {
        /// Most bytes of one request's PARAMS stream.
        public var paramsBytes: Int
        /// Most body bytes kept; past it the body is `.tooLarge` (and the rest is read and dropped).
        public var bodyBytes: Int
        /// Reported for FCGI_MAX_CONNS and FCGI_MAX_REQS.
        public var connections: Int

        public init(paramsBytes: Int = 64 << 10, bodyBytes: Int = 1 << 20, connections: Int = 1024) {
            self.paramsBytes = paramsBytes
            self.bodyBytes = bodyBytes
            self.connections = connections
        }
    }

    /// A request whose params and body (its STDIN up to the empty record) have all arrived.
    public struct Request: Sendable {
        public var id: UInt16
        public var keepConnection: Bool
        public var params: FastCGIParams
        public var body: BodyRead
    }

    public enum Event {
        case request(Request)
        /// Records to write: a management answer or a refusal. `close`: close once written.
        case reply([UInt8], close: Bool)
    }

    private enum Phase {
        case idle
        case params
        case stdin
        /// A complete request is being served; parsing resumes at `finish()`.
        case serving
    }

    public var limits: Limits
    private var buffer: [UInt8] = []
    private var start = 0
    private var phase = Phase.idle
    private var id: UInt16 = 0
    private var keep = false
    private var params: [UInt8] = []
    private var parsedParams: FastCGIParams?
    /// CONTENT_LENGTH of the request being read, read once from its params.
    private var declaredLength: Int?
    private var body: [UInt8] = []
    private var bodyLength = 0

    public init(limits: Limits = Limits()) {
        self.limits = limits
    }

    /// Whether the peer is in the middle of something: a record cut short, or a request begun
    /// and not complete. A connection that stays so too long is closed (a stalled peer).
    public var isMidRequest: Bool {
        phase == .params || phase == .stdin || (phase == .idle && start < buffer.count)
    }

    /// Whether a request is being served (complete, its response not yet written).
    public var isServing: Bool { phase == .serving }

    /// Bytes received and not yet parsed.
    public var bufferedBytes: Int { buffer.count - start }

    public mutating func append(_ bytes: UnsafeRawBufferPointer) {
        if start > 0 && start == buffer.count {
            buffer.removeAll(keepingCapacity: buffer.capacity <= 1 << 17)
            start = 0
        } else if start >= 1 << 16 {
            buffer.removeFirst(start)
            start = 0
        }
        buffer.append(contentsOf: bytes)
    }

    public mutating func append(_ bytes: [UInt8]) {
        bytes.withUnsafeBytes { append($0) }
    }

    /// The response of the request being served was written: parsing goes on. Returns whether
    /// the connection stays open (the request's KEEP_CONN).
    public mutating func finish() -> Bool {
        precondition(phase == .serving, "finish() without a request being served")
        phase = .idle
        return keep
    }

    /// The next event the buffered bytes make, or nil when more bytes are needed (or a request
    /// is being served).
    public mutating func next() throws(FastCGIProtocolError) -> Event? {
        while phase != .serving {
            guard buffer.count - start >= FCGI.headerLength else { return nil }
            let header = start
            guard buffer[header] == FCGI.version else {
                throw FastCGIProtocolError("not a FastCGI version 1 record (first byte \(buffer[header]))")
            }
            let type = buffer[header + 1]
            let recordID = UInt16(buffer[header + 2]) << 8 | UInt16(buffer[header + 3])
            let contentLength = Int(buffer[header + 4]) << 8 | Int(buffer[header + 5])
            let padding = Int(buffer[header + 6])
            guard buffer.count - start >= FCGI.headerLength + contentLength + padding else { return nil }
            let content = (header + FCGI.headerLength)..<(header + FCGI.headerLength + contentLength)
            start = content.upperBound + padding
            if let event = try handle(type: type, id: recordID, content: content) { return event }
        }
        return nil
    }

    private mutating func handle(type: UInt8, id recordID: UInt16, content: Range<Int>) throws(FastCGIProtocolError)
        -> Event?
    {
        if recordID == 0 { return management(type: type, content: content) }
        switch type {
        case FCGI.beginRequest:
            guard content.count == 8 else { throw FastCGIProtocolError("BEGIN_REQUEST with \(content.count) content bytes, not 8") }
            let role = UInt16(buffer[content.lowerBound]) << 8 | UInt16(buffer[content.lowerBound + 1])
            let keepConnection = buffer[content.lowerBound + 2] & FCGI.keepConnection != 0
            if phase != .idle {
                guard recordID != id else { throw FastCGIProtocolError("BEGIN_REQUEST for request \(id), already begun") }
                var out: [UInt8] = []
                FastCGIEncoder.endRequest(id: recordID, status: FCGI.cantMultiplex, into: &out)
                return .reply(out, close: false)
            }
            guard role == FCGI.responder else {
                var out: [UInt8] = []
                FastCGIEncoder.endRequest(id: recordID, status: FCGI.unknownRole, into: &out)
                return .reply(out, close: !keepConnection)
            }
            id = recordID
            keep = keepConnection
            phase = .params
            params.removeAll(keepingCapacity: true)
            parsedParams = nil
            declaredLength = nil
            body = []
            bodyLength = 0
            return nil
        case FCGI.params:
            guard phase == .params, recordID == id else { return try ignore(recordID, type: type) }
            if content.isEmpty {
                let parsed = try FastCGIParams(stream: params)
                parsedParams = parsed
                declaredLength = parsed.contentLength
                phase = .stdin
                return nil
            }
            guard params.count + content.count <= limits.paramsBytes else {
                throw FastCGIProtocolError("the params exceed \(limits.paramsBytes) bytes")
            }
            params.append(contentsOf: buffer[content])
            return nil
        case FCGI.stdin:
            guard phase == .stdin, recordID == id else { return try ignore(recordID, type: type) }
            if content.isEmpty { return .request(completeRequest()) }
            bodyLength += content.count
            if bodyLength <= limits.bodyBytes {
                if body.isEmpty, let declared = declaredLength, declared <= limits.bodyBytes {
                    body.reserveCapacity(declared)
                }
                body.append(contentsOf: buffer[content])
            } else {
                body = []
            }
            return nil
        case FCGI.abortRequest:
            guard phase != .idle, recordID == id else { return nil }
            // Dropped before it ran: nothing was evaluated.
            phase = .idle
            var out: [UInt8] = []
            FastCGIEncoder.endRequest(id: id, status: FCGI.requestComplete, into: &out)
            return .reply(out, close: !keep)
        case FCGI.data:
            return nil  // for the FILTER role only
        default:
            throw FastCGIProtocolError("record type \(type) is not one a web server sends for a request")
        }
    }

    /// A record for a request that is not the active one: PARAMS or STDIN of a request that
    /// was refused (CANT_MPX_CONN, UNKNOWN_ROLE) or aborted. Out of order for the active one
    /// is an error.
    private mutating func ignore(_ recordID: UInt16, type: UInt8) throws(FastCGIProtocolError) -> Event? {
        if recordID == id && phase == .params && type == FCGI.stdin {
            throw FastCGIProtocolError("STDIN before the end of PARAMS")
        }
        if recordID == id && phase == .stdin && type == FCGI.params {
            throw FastCGIProtocolError("PARAMS after their end")
        }
        return nil
    }

    private mutating func completeRequest() -> Request {
        phase = .serving
        let params = parsedParams!
        let read: BodyRead
        if bodyLength > limits.bodyBytes || (declaredLength ?? 0) > limits.bodyBytes {
            read = .tooLarge
        } else if let declared = declaredLength, declared > bodyLength {
            read = .incomplete
        } else {
            read = .complete(body)
        }
        body = []
        parsedParams = nil
        return Request(id: id, keepConnection: keep, params: params, body: read)
    }

    /// GET_VALUES is answered with what luaexecd knows (FCGI_MAX_CONNS, FCGI_MAX_REQS,
    /// FCGI_MPXS_CONNS); any other management record with UNKNOWN_TYPE.
    private func management(type: UInt8, content: Range<Int>) -> Event? {
        var out: [UInt8] = []
        guard type == FCGI.getValues else {
            FastCGIEncoder.record(FCGI.unknownType, id: 0, [type, 0, 0, 0, 0, 0, 0, 0], into: &out)
            return .reply(out, close: false)
        }
        var answer: [UInt8] = []
        if let asked = try? FastCGIParams(stream: Array(buffer[content])) {
            for (name, _) in asked.pairs {
                let value: String
                switch name {
                case FCGI.maxConnsName, FCGI.maxReqsName: value = String(limits.connections)
                case FCGI.mpxsConnsName: value = "0"
                default: continue  // the protocol: unknown names are left out
                }
                FastCGIEncoder.pair(name, Array(value.utf8), into: &answer)
            }
        }
        FastCGIEncoder.record(FCGI.getValuesResult, id: 0, answer.prefix(FCGI.maxContentLength), into: &out)
        return .reply(out, close: false)
    }
}
