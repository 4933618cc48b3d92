import CFastCGI
import ExecService

/// One accepted FastCGI request: its params, its stdin stream and its stdout stream.
struct FastCGIRequest {
    let request: UnsafeMutablePointer<FCGX_Request>

    init(_ request: UnsafeMutablePointer<FCGX_Request>) { self.request = request }

    func param(_ name: String) -> String? { FastCGIParams(request.pointee.envp).value(name) }

    /// The request line and the headers luaexecd reads, from the CGI variables nginx sends.
    func head() -> RequestHead { FastCGIParams(request.pointee.envp).head() }

    /// Reads the whole body if it is at most `limit` bytes.
    func readBody(limit: Int) -> BodyRead {
        let declared = param("CONTENT_LENGTH").flatMap(Int.init) ?? 0
        if declared > limit { return .tooLarge }
        // nginx sends CONTENT_LENGTH; read that much in place, then check nothing follows.
        var body = [UInt8](repeating: 0, count: declared)
        var count = 0
        while count < declared {
            let read = body.withUnsafeMutableBytes { buffer in
                FCGX_GetStr(
                    buffer.baseAddress!.assumingMemoryBound(to: CChar.self) + count, Int32(declared - count),
                    request.pointee.in)
            }
            guard read > 0 else { break }
            count += Int(read)
        }
        if count < declared { return .incomplete }
        // A body longer than declared (or sent without a length) is read on, up to the limit.
        while readMore({ body.append(contentsOf: $0) }) > 0 {
            if body.count > limit { return .tooLarge }
        }
        return .complete(body)
    }

    /// Reads and drops what is left of the body so the kept-alive connection stays in step;
    /// past `limit` it gives up on the connection instead.
    func discardUnreadBody(upTo limit: Int) {
        var discarded = 0
        while discarded <= limit {
            let count = readMore { _ in }
            guard count > 0 else { return }
            discarded += count
        }
        request.pointee.keepConnection = 0
    }

    /// Reads up to 8 KiB more of the body into a stack buffer and hands it to `use`. Returns how
    /// much was read: 0 at the end of the body.
    private func readMore(_ use: (UnsafeRawBufferPointer) -> Void) -> Int {
        withUnsafeTemporaryAllocation(of: CChar.self, capacity: 8192) { scratch in
            let count = Int(FCGX_GetStr(scratch.baseAddress, Int32(scratch.count), request.pointee.in))
            if count > 0 { use(UnsafeRawBufferPointer(start: scratch.baseAddress, count: count)) }
            return count
        }
    }

    /// Writes the CGI response: `Status:`, the headers, a blank line, the body.
    func write(_ response: Response) {
        var head = "Status: \(response.status) \(Response.reason(response.status))\r\n"
        for (name, value) in response.headers { head += "\(name): \(value)\r\n" }
        head += "Content-Length: \(response.body.count)\r\n\r\n"
        // A client that went away makes these fail; nothing else is affected.
        head.utf8CString.withUnsafeBufferPointer {
            _ = FCGX_PutStr($0.baseAddress, Int32($0.count - 1), request.pointee.out)
        }
        response.body.withUnsafeBytes { buffer in
            guard let base = buffer.baseAddress, buffer.count > 0 else { return }
            _ = FCGX_PutStr(base.assumingMemoryBound(to: CChar.self), Int32(buffer.count), request.pointee.out)
        }
    }
}
