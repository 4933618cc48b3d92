import CFastCGI
import ExecService

/// One accepted FastCGI request: its params, its stdin stream and its stdout stream.
struct FastCGIRequest {
    let request: UnsafeMutablePointer<FCGX_Request>
    private(set) var bodyFinished = false

    init(_ request: UnsafeMutablePointer<FCGX_Request>) { self.request = request }

    func param(_ name: String) -> String? {
        guard let value = FCGX_GetParam(name, request.pointee.envp) else { return nil }
        return String(cString: value)
    }

    /// The request line and headers, from the CGI variables nginx sends (`fastcgi_params`).
    func head() -> RequestHead {
        var headers: [String: String] = [:]
        if var entry = request.pointee.envp {
            while let pointer = entry.pointee {
                let raw = String(cString: pointer)
                if raw.hasPrefix("HTTP_"), let equals = raw.firstIndex(of: "=") {
                    let name = raw[raw.index(raw.startIndex, offsetBy: 5)..<equals].lowercased()
                    headers[String(name.map { $0 == "_" ? "-" : $0 })] = String(raw[raw.index(after: equals)...])
                }
                entry += 1
            }
        }
        if let type = param("CONTENT_TYPE") { headers["content-type"] = type }
        if let length = param("CONTENT_LENGTH") { headers["content-length"] = length }
        return RequestHead(
            method: param("REQUEST_METHOD") ?? "GET",
            path: param("DOCUMENT_URI") ?? param("SCRIPT_NAME") ?? "/",
            query: param("QUERY_STRING") ?? "",
            headers: headers,
            clientAddress: param("REMOTE_ADDR") ?? "",
            requestID: param("REQUEST_ID"))
    }

    /// Reads the whole body if it is at most `limit` bytes.
    func readBody(limit: Int) -> BodyRead {
        if let declared = param("CONTENT_LENGTH").flatMap(Int.init), declared > limit { return .tooLarge }
        var body: [UInt8] = []
        var chunk = [CChar](repeating: 0, count: 16 << 10)
        while true {
            let count = chunk.withUnsafeMutableBufferPointer { buffer in
                FCGX_GetStr(buffer.baseAddress, Int32(buffer.count), request.pointee.in)
            }
            guard count > 0 else { break }
            if body.count + Int(count) > limit { return .tooLarge }
            chunk.withUnsafeBufferPointer { buffer in
                buffer.withMemoryRebound(to: UInt8.self) { body.append(contentsOf: $0.prefix(Int(count))) }
            }
        }
        return .complete(body)
    }

    /// Reads and drops what is left of the body so the kept-alive connection stays in step;
    /// past `limit` it gives up on the connection instead.
    func discardUnreadBody(upTo limit: Int) {
        var chunk = [CChar](repeating: 0, count: 16 << 10)
        var discarded = 0
        while discarded <= limit {
            let count = chunk.withUnsafeMutableBufferPointer { buffer in
                FCGX_GetStr(buffer.baseAddress, Int32(buffer.count), request.pointee.in)
            }
            guard count > 0 else { return }
            discarded += Int(count)
        }
        request.pointee.keepConnection = 0
    }

    /// Writes the CGI response: `Status:`, the headers, a blank line, the body.
    func write(_ response: Response) {
        var head = "Status: \(response.status) \(Response.reason(response.status))\r\n"
        for (name, value) in response.headers { head += "\(name): \(value)\r\n" }
        head += "Content-Length: \(response.body.count)\r\n\r\n"
        var bytes = Array(head.utf8)
        bytes.append(contentsOf: response.body)
        bytes.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { chars in
                // A client that went away makes this fail; nothing else is affected.
                _ = FCGX_PutStr(chars.baseAddress, Int32(chars.count), request.pointee.out)
            }
        }
    }
}
