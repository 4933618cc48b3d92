import Foundation
import Glibc
import HTTPCore
import Logging
import SystemSupport
import Testing

@testable import FastCGI

/// The transport on its own: a real `FastCGIServer` on a unix socket, spoken to as nginx speaks
/// to it, with a responder of the test's making behind it. No Lua, SQLite or tokens: the
/// transport knows none of them.
@Suite("FastCGIServer with any responder")
struct FastCGIServerTests {
    /// Answers what the test tells it to: at once (echoing the request), or by handing the
    /// writer to the test, which answers from its own thread.
    final class TestResponder: Responder, @unchecked Sendable {
        enum Mode { case echo, handOver }
        let mode: Mode
        private let lock = ConditionLock()
        private var writers: [any ResponseWriter] = []
        private var events: [String] = []
        var recorded: [String] { lock.withLock { events } }

        init(_ mode: Mode) { self.mode = mode }

        var maxBodySize: Int { 1 << 20 }

        func respond(to head: RequestHead, body: BodyRead, writer: any ResponseWriter) -> Responder.Work? {
            lock.withLock { events.append("respond \(head.path)") }
            switch mode {
            case .echo:
                guard case .complete(let bytes) = body else {
                    writer.send(Response(status: 400))
                    return nil
                }
                // Answered by the work handed back, as a slow handler would be.
                return { [self] in
                    lock.withLock { events.append("work \(head.path)") }
                    writer.send(Response(
                        status: 200, headers: [("Content-Type", "text/plain")],
                        body: Array("\(head.method) \(head.path) ".utf8) + bytes))
                }
            case .handOver:
                lock.withLock {
                    writers.append(writer)
                    lock.signal()
                }
                return nil
            }
        }

        func runDeferred() { lock.withLock { events.append("runDeferred") } }

        /// The writer of the next request handed over.
        func nextWriter() -> (any ResponseWriter)? {
            let deadline = MonotonicInstant.now().advanced(by: .seconds(20))
            return lock.withLock {
                while writers.isEmpty, lock.wait(until: deadline) {}
                return writers.isEmpty ? nil : writers.removeFirst()
            }
        }
    }

    static func serve(_ responder: TestResponder) throws -> String {
        let path = "/tmp/luaexec-fcgi-\(UUID().uuidString.prefix(8)).sock"
        let fd = try FastCGIServer.listen(path: path)
        let server = try FastCGIServer(listenFD: fd, responder: responder, logger: Logger(label: "test"))
        try server.start()
        return path
    }

    static func connect(_ path: String) throws -> Peer { try Peer(path) }

    @Test("a request is answered byte for byte as the responder answered it")
    func echo() throws {
        let peer = try Self.connect(try Self.serve(TestResponder(.echo)))
        try peer.send(Wire.request(id: 7, params: [("REQUEST_METHOD", "PUT"), ("DOCUMENT_URI", "/x")], body: Array("hi".utf8)))
        var stdout: [UInt8] = []
        var ended: [UInt8]?
        while ended == nil, let record = try peer.readRecord() {
            #expect(record.id == 7)
            if record.type == 6 { stdout += record.content } else if record.type == 3 { ended = record.content }
        }
        #expect(String(decoding: stdout, as: UTF8.self) == "Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nPUT /x hi")
        #expect(ended == [0, 0, 0, 0, 0, 0, 0, 0])
    }

    @Test("an answer sent later from another thread reaches its client, and the kept connection goes on")
    func answerFromAnotherThread() throws {
        let responder = TestResponder(.handOver)
        let peer = try Self.connect(try Self.serve(responder))
        // Two requests on one connection, the second behind the first: it is read only once the
        // first is answered, by the thread that answered it.
        try peer.send(
            Wire.request(id: 1, params: [("DOCUMENT_URI", "/one")], body: [])
                + Wire.request(id: 2, params: [("DOCUMENT_URI", "/two")], body: []))
        let first = try #require(responder.nextWriter())
        Thread.detachNewThread { first.send(Response(status: 200, body: Array("late".utf8))) }
        #expect(try peer.readAnswer() == (1, "late"))
        let second = try #require(responder.nextWriter())
        Thread.detachNewThread { second.send(Response(status: 200, body: Array("later".utf8))) }
        #expect(try peer.readAnswer() == (2, "later"))
    }

    @Test("a streamed answer leaves part by part as it is written, then ends")
    func streaming() throws {
        let responder = TestResponder(.handOver)
        let peer = try Self.connect(try Self.serve(responder))
        try peer.send(Wire.request(id: 3, params: [("DOCUMENT_URI", "/events")], body: []))
        let writer = try #require(responder.nextWriter())
        writer.startStream(Response(status: 200, headers: [("Content-Type", "text/event-stream")]))
        let head = try #require(try peer.readRecord())
        #expect(head.type == 6)
        // No Content-Length: the length is not known until the end.
        #expect(String(decoding: head.content, as: UTF8.self) == "Status: 200 OK\r\nContent-Type: text/event-stream\r\n\r\n")
        for part in ["data: one\n\n", "data: two\n\n"] {
            #expect(writer.write(Array(part.utf8)))
            // Read before the next part is written: it left when it was written.
            let record = try #require(try peer.readRecord())
            #expect(record.type == 6)
            #expect(String(decoding: record.content, as: UTF8.self) == part)
        }
        writer.finish()
        let end = try #require(try peer.readRecord())
        #expect(end.type == 6 && end.content.isEmpty)
        #expect(try peer.readRecord()?.type == 3)
    }

    @Test("a request reaches the responder, then the work it handed back runs, then its deferred work")
    func deferredAfterTheRound() throws {
        let responder = TestResponder(.echo)
        let peer = try Self.connect(try Self.serve(responder))
        try peer.send(Wire.request(id: 1, params: [("DOCUMENT_URI", "/a")], body: []))
        _ = try peer.readAnswer()
        #expect(responder.recorded == ["respond /a", "work /a", "runDeferred"])
    }
}

/// A FastCGI peer, as nginx: writes records, reads records.
final class Peer {
    let fd: Int32
    private var buffer: [UInt8] = []

    init(_ path: String) throws {
        fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: Array(path.utf8) + [0])
        }
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard connected == 0 else { throw PeerError("cannot connect to \(path): \(systemErrorText())") }
    }

    deinit { close(fd) }

    func send(_ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, $0.count - offset, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { throw PeerError("send failed: \(systemErrorText())") }
            offset += count
        }
    }

    /// The next record; nil once the server closed the connection; throws after 20 s.
    func readRecord() throws -> (type: UInt8, id: UInt16, content: [UInt8])? {
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
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            guard poll(&poller, 1, 20_000) == 1 else { throw PeerError("no answer within 20 s") }
            var scratch = [UInt8](repeating: 0, count: 65536)
            let count = scratch.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            guard count > 0 else { return nil }
            buffer += scratch[..<count]
        }
    }

    /// One request's id and body (what follows the CGI head), up to its END_REQUEST.
    func readAnswer() throws -> (UInt16, String) {
        var stdout: [UInt8] = []
        while let record = try readRecord() {
            if record.type == 6 { stdout += record.content }
            if record.type == 3 {
                let text = String(decoding: stdout, as: UTF8.self)
                return (record.id, text.components(separatedBy: "\r\n\r\n").dropFirst().joined(separator: "\r\n\r\n"))
            }
        }
        throw PeerError("the connection closed before END_REQUEST")
    }
}

struct PeerError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
