import Foundation
import Glibc

@testable import FastCGI

/// A raw FastCGI peer on luaexecd's socket, standing in for nginx: it writes records as given
/// and reads what comes back, record by record.
final class FastCGIClient {
    let fd: Int32
    private var buffer: [UInt8] = []

    init(_ socketPath: String) throws {
        fd = try UnixSocket.connect(socketPath)
    }

    deinit { close(fd) }

    /// One record as a web server writes it.
    static func record(_ type: UInt8, id: UInt16, _ content: [UInt8] = []) -> [UInt8] {
        var out: [UInt8] = []
        FastCGIEncoder.record(type, id: id, content, into: &out)
        return out
    }

    static func begin(id: UInt16, role: UInt16 = 1, keep: Bool = true) -> [UInt8] {
        record(1, id: id, [UInt8(role >> 8), UInt8(role & 0xFF), keep ? 1 : 0, 0, 0, 0, 0, 0])
    }

    /// The params nginx would send for `POST /api/v1/exec/interactive.lua` with `token`.
    static func params(
        token: String, method: String = "POST", path: String = "/api/v1/exec/interactive.lua", bodyLength: Int,
        requestID: String? = nil
    ) -> [UInt8] {
        var stream: [UInt8] = []
        var pairs = [
            ("REQUEST_METHOD", method), ("DOCUMENT_URI", path), ("QUERY_STRING", ""), ("REMOTE_ADDR", "127.0.0.1"),
            ("CONTENT_LENGTH", String(bodyLength)), ("HTTP_AUTHORIZATION", "Bearer " + token),
        ]
        if let requestID { pairs.append(("REQUEST_ID", requestID)) }
        for (name, value) in pairs {
            FastCGIEncoder.pair(Array(name.utf8), Array(value.utf8), into: &stream)
        }
        return stream
    }

    /// A whole request for `chunk`.
    static func request(
        id: UInt16 = 1, token: String, chunk: String, keep: Bool = true, method: String = "POST",
        path: String = "/api/v1/exec/interactive.lua", requestID: String? = nil
    ) -> [UInt8] {
        let body = Array(chunk.utf8)
        let params = params(token: token, method: method, path: path, bodyLength: body.count, requestID: requestID)
        return begin(id: id, keep: keep) + record(4, id: id, params)
            + record(4, id: id) + (body.isEmpty ? [] : record(5, id: id, body)) + record(5, id: id)
    }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { throw StackError("send failed: \(String(cString: strerror(errno)))") }
            offset += count
        }
    }

    /// Sends `bytes` one byte per write.
    func trickle(_ bytes: [UInt8]) throws {
        for byte in bytes { try send([byte]) }
    }

    /// The next record, or nil once luaexecd closed the connection. Fails after `timeout`.
    func readRecord(timeout: Duration = .seconds(20)) throws -> (type: UInt8, id: UInt16, content: [UInt8])? {
        while true {
            if buffer.count >= 8 {
                let length = Int(buffer[4]) << 8 | Int(buffer[5])
                let total = 8 + length + Int(buffer[6])
                if buffer.count >= total {
                    let record = (buffer[1], UInt16(buffer[2]) << 8 | UInt16(buffer[3]), Array(buffer[8..<(8 + length)]))
                    buffer.removeFirst(total)
                    return record
                }
            }
            guard let more = try readSome(timeout: timeout) else { return nil }
            buffer += more
        }
    }

    /// Bytes, or nil at the end of the stream.
    private func readSome(timeout: Duration) throws -> [UInt8]? {
        var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
        let milliseconds = Int32(timeout.components.seconds * 1000 + timeout.components.attoseconds / 1_000_000_000_000_000)
        guard poll(&poller, 1, milliseconds) == 1 else { throw StackError("no answer from luaexecd within \(timeout)") }
        var scratch = [UInt8](repeating: 0, count: 65536)
        let count = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
        if count < 0 && errno == ECONNRESET { return nil }
        guard count >= 0 else { throw StackError("recv failed: \(String(cString: strerror(errno)))") }
        return count == 0 ? nil : Array(scratch[..<count])
    }

    /// Whether luaexecd closed the connection (reading nothing else first) within `timeout`.
    func isClosed(within timeout: Duration) throws -> Bool {
        try readRecord(timeout: timeout) == nil
    }

    /// A response: the CGI head and body from the STDOUT records, and END_REQUEST's status.
    struct Answer {
        var id: UInt16
        var status: String
        var headers: [String: String]
        var body: String
        var protocolStatus: UInt8
    }

    /// Reads one request's STDOUT up to its END_REQUEST.
    func readAnswer(timeout: Duration = .seconds(20)) throws -> Answer {
        var stdout: [UInt8] = []
        while let record = try readRecord(timeout: timeout) {
            switch record.type {
            case 6: stdout += record.content
            case 3:
                let text = String(decoding: stdout, as: UTF8.self)
                let parts = text.components(separatedBy: "\r\n\r\n")
                var headers: [String: String] = [:]
                for line in parts[0].components(separatedBy: "\r\n") {
                    guard let colon = line.firstIndex(of: ":") else { continue }
                    headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
                }
                return Answer(
                    id: record.id, status: headers["status"] ?? "", headers: headers,
                    body: parts.dropFirst().joined(separator: "\r\n\r\n"), protocolStatus: record.content[4])
            default: throw StackError("unexpected record type \(record.type)")
            }
        }
        throw StackError("luaexecd closed the connection before END_REQUEST")
    }
}
