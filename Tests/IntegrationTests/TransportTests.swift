import Foundation
import Glibc
import Synchronization
import Testing

/// luaexecd's FastCGI transport spoken to directly, as nginx would and as nginx never does.
@Suite("FastCGI transport: the responder protocol on the wire, bounds, the queue")
struct TransportTests {
    static let endRequestComplete: [UInt8] = [0, 0, 0, 0, 0, 0, 0, 0]

    @Test("a request written one byte at a time is answered: exact head, body and END_REQUEST")
    func byteAtATime() throws {
        let stack = Stack.shared
        let client = try FastCGIClient(stack.fastcgiSocket)
        try client.trickle(FastCGIClient.request(id: 300, token: stack.adminToken, chunk: "return 1+1"))
        var stdout: [UInt8] = []
        var ended: (id: UInt16, content: [UInt8])?
        while ended == nil, let record = try client.readRecord() {
            #expect(record.id == 300)
            if record.type == 6 { stdout += record.content } else { ended = (record.id, record.content) }
        }
        let text = String(decoding: stdout, as: UTF8.self)
        #expect(text.hasPrefix("Status: 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nCache-Control: no-store\r\nServer-Timing: lua;dur="))
        #expect(text.hasSuffix("\r\nContent-Length: 1\r\n\r\n2"))
        #expect(ended?.content == Self.endRequestComplete)
    }

    @Test("back-to-back requests in one write on a kept connection are answered in order")
    func backToBack() throws {
        let stack = Stack.shared
        let name = "b2b_\(UInt32.random(in: 0...UInt32.max))"
        let client = try FastCGIClient(stack.fastcgiSocket)
        var bytes: [UInt8] = []
        for id in 1...3 {
            bytes += FastCGIClient.request(id: UInt16(id), token: stack.adminToken, chunk: "\(name) = (\(name) or 0) + 1 return \(name)")
        }
        try client.send(bytes)
        for id in 1...3 {
            let answer = try client.readAnswer()
            #expect(answer.id == UInt16(id))
            #expect(answer.status == "200 OK")
            #expect(answer.body == String(id))
        }
        // Still open, and still serving.
        try client.send(FastCGIClient.request(id: 9, token: stack.adminToken, chunk: "return \(name)"))
        #expect(try client.readAnswer().body == "3")
    }

    @Test("answers written in one round each find their audit line already in the log (lines are written per round)")
    func auditLineBeforeAnswer() throws {
        let stack = Stack.shared
        let run = "held\(UInt32.random(in: 0...UInt32.max))"
        let clients = try (0..<4).map { _ in try FastCGIClient(stack.fastcgiSocket) }
        // Twelve requests in four writes: luaexecd reads them in few rounds, several per round.
        for (index, client) in clients.enumerated() {
            var bytes: [UInt8] = []
            for id in 1...3 {
                bytes += FastCGIClient.request(
                    id: UInt16(id), token: stack.adminToken, chunk: "return \(id)", requestID: "\(run)-\(index)-\(id)")
            }
            try client.send(bytes)
        }
        for (index, client) in clients.enumerated() {
            for id in 1...3 {
                let answer = try client.readAnswer()
                #expect(answer.body == String(id))
                // Read after the answer arrived: its line must be there already.
                #expect(stack.luaexecdLog().contains("request id=\(run)-\(index)-\(id) client=127.0.0.1 token=admin"))
            }
        }
    }

    @Test("without KEEP_CONN the connection closes after the answer")
    func closesWithoutKeepConn() throws {
        let client = try FastCGIClient(Stack.shared.fastcgiSocket)
        try client.send(FastCGIClient.request(token: Stack.shared.adminToken, chunk: "return 'once'", keep: false))
        #expect(try client.readAnswer().body == "once")
        #expect(try client.isClosed(within: .seconds(10)))
    }

    @Test("GET_VALUES: FCGI_MAX_CONNS, FCGI_MAX_REQS, FCGI_MPXS_CONNS=0; other management types: UNKNOWN_TYPE")
    func management() throws {
        let client = try FastCGIClient(Stack.shared.fastcgiSocket)
        let names: [UInt8] = ["FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS", "OTHER"].flatMap { (name: String) -> [UInt8] in
            [UInt8(name.utf8.count), 0] + Array(name.utf8)
        }
        try client.send(FastCGIClient.record(9, id: 0, names) + FastCGIClient.record(77, id: 0, [9]))
        let values = try #require(try client.readRecord())
        #expect(values.type == 10)
        #expect(values.id == 0)
        let expected: [UInt8] = [("FCGI_MAX_CONNS", "1024"), ("FCGI_MAX_REQS", "1024"), ("FCGI_MPXS_CONNS", "0")].flatMap {
            (pair: (String, String)) -> [UInt8] in
            [UInt8(pair.0.utf8.count), UInt8(pair.1.utf8.count)] + Array(pair.0.utf8) + Array(pair.1.utf8)
        }
        #expect(values.content == expected)
        let unknown = try #require(try client.readRecord())
        #expect(unknown.type == 11)
        #expect(unknown.content == [77, 0, 0, 0, 0, 0, 0, 0])
        // The connection serves requests afterwards.
        try client.send(FastCGIClient.request(token: Stack.shared.adminToken, chunk: "return 'after'"))
        #expect(try client.readAnswer().body == "after")
    }

    @Test("ABORT_REQUEST before the body ends: END_REQUEST, nothing ran, the connection goes on")
    func abort() throws {
        let stack = Stack.shared
        let name = "aborted_\(UInt32.random(in: 0...UInt32.max))"
        let client = try FastCGIClient(stack.fastcgiSocket)
        let body = Array("\(name) = true".utf8)
        try client.send(
            FastCGIClient.begin(id: 4) + FastCGIClient.record(4, id: 4, FastCGIClient.params(token: stack.adminToken, bodyLength: body.count))
                + FastCGIClient.record(4, id: 4) + FastCGIClient.record(5, id: 4, body) + FastCGIClient.record(2, id: 4))
        let ended = try #require(try client.readRecord())
        #expect(ended.type == 3)
        #expect(ended.id == 4)
        #expect(ended.content == Self.endRequestComplete)
        try client.send(FastCGIClient.request(id: 5, token: stack.adminToken, chunk: "return \(name) == nil"))
        #expect(try client.readAnswer().body == "true")
    }

    @Test("a second request id on one connection gets CANT_MPX_CONN; an unknown role UNKNOWN_ROLE; the first is answered")
    func multiplexedAndRoles() throws {
        let stack = Stack.shared
        let client = try FastCGIClient(stack.fastcgiSocket)
        let request = FastCGIClient.request(id: 1, token: stack.adminToken, chunk: "return 'first'")
        let begin = FastCGIClient.begin(id: 1).count
        try client.send(Array(request[..<begin]) + FastCGIClient.begin(id: 2) + Array(request[begin...]))
        let refused = try #require(try client.readRecord())
        #expect(refused.type == 3)
        #expect(refused.id == 2)
        #expect(refused.content == [0, 0, 0, 0, 1, 0, 0, 0])
        let answer = try client.readAnswer()
        #expect(answer.id == 1)
        #expect(answer.body == "first")
        try client.send(FastCGIClient.begin(id: 3, role: 2))
        let role = try #require(try client.readRecord())
        #expect(role.type == 3)
        #expect(role.content == [0, 0, 0, 0, 3, 0, 0, 0])
    }

    @Test("garbage closes only its own connection: a peer mid-request on another one is answered")
    func garbageClosesItsOwn() throws {
        let stack = Stack.shared
        let patient = try FastCGIClient(stack.fastcgiSocket)
        let request = FastCGIClient.request(token: stack.adminToken, chunk: "return 'patient'")
        try patient.send(Array(request[..<20]))
        let corrupt: [[UInt8]] = [
            Array("GET / HTTP/1.1\r\n\r\n".utf8),
            // PARAMS whose pair claims 2^31 - 1 bytes (libfcgi's CVE-2025-23016).
            FastCGIClient.begin(id: 1) + FastCGIClient.record(4, id: 1, [0xFF, 0xFF, 0xFF, 0xFF, 0x01, 0x41]) + FastCGIClient.record(4, id: 1),
            FastCGIClient.begin(id: 1) + FastCGIClient.record(1, id: 1, [0, 1]),
            FastCGIClient.begin(id: 1) + FastCGIClient.record(6, id: 1, [1]),
        ]
        for bytes in corrupt {
            let peer = try FastCGIClient(stack.fastcgiSocket)
            try peer.send(bytes)
            #expect(try peer.isClosed(within: .seconds(10)))
        }
        try patient.send(Array(request[20...]))
        #expect(try patient.readAnswer().body == "patient")
    }

    @Test("a peer stalled mid-record delays no one, and is closed after listen.read_timeout")
    func stalledPeer() throws {
        let stack = try Stack(settings: ["listen.read_timeout=1"])
        let stalled = try FastCGIClient(stack.fastcgiSocket)
        let request = FastCGIClient.request(token: stack.adminToken, chunk: "return 'never'")
        try stalled.send(Array(request[..<(request.count - 5)]))
        let other = try FastCGIClient(stack.fastcgiSocket)
        let started = ContinuousClock.now
        try other.send(FastCGIClient.request(token: stack.adminToken, chunk: "return 'served'"))
        #expect(try other.readAnswer().body == "served")
        #expect(ContinuousClock.now - started < .milliseconds(100))
        #expect(try stalled.isClosed(within: .seconds(10)))
        #expect(stack.luaexecdLog().contains("closing a FastCGI connection stalled mid-request"))
    }

    @Test("a peer that sends its request slowly but never stops for listen.read_timeout is answered")
    func slowPeer() throws {
        let stack = try Stack(settings: ["listen.read_timeout=2"])
        let slow = try FastCGIClient(stack.fastcgiSocket)
        let request = FastCGIClient.request(token: stack.adminToken, chunk: "return 'slow but steady'")
        // Twelve parts, a third of a second apart: four seconds in all, twice the timeout, with
        // no pause near it (as Apache passes on an upload that arrives at a steady pace).
        let size = (request.count + 11) / 12
        for start in stride(from: 0, to: request.count, by: size) {
            try slow.send(Array(request[start..<min(start + size, request.count)]))
            if start + size < request.count { Thread.sleep(forTimeInterval: 1.0 / 3) }
        }
        #expect(try slow.readAnswer().body == "slow but steady")
        #expect(!stack.luaexecdLog().contains("closing a FastCGI connection stalled mid-request"))
    }

    @Test("past listen.max_connections the oldest idle kept connection is closed for the new one")
    func connectionCap() throws {
        let stack = try Stack(settings: ["listen.max_connections=3"])
        var clients: [FastCGIClient] = []
        for index in 0..<3 {
            let client = try FastCGIClient(stack.fastcgiSocket)
            try client.send(FastCGIClient.request(token: stack.adminToken, chunk: "return \(index)"))
            #expect(try client.readAnswer().body == String(index))
            clients.append(client)
        }
        // nginx's own connections are open too: the oldest idle one goes, whichever it is, and
        // never the new one.
        let newcomer = try FastCGIClient(stack.fastcgiSocket)
        try newcomer.send(FastCGIClient.request(token: stack.adminToken, chunk: "return 'new'"))
        #expect(try newcomer.readAnswer().body == "new")
        #expect(try clients[0].isClosed(within: .seconds(10)))
        try clients[2].send(FastCGIClient.request(token: stack.adminToken, chunk: "return 'kept'"))
        #expect(try clients[2].readAnswer().body == "kept")
    }

    @Test("while a chunk spins with 200 requests queued, status and interrupt answer at once; then all 200 run in order")
    func queueBehindSpinner() throws {
        let stack = try Stack(settings: ["limits.time=60", "limits.queue_timeout=60"])
        _ = try stack.eval("order = {}")
        let spinner = try FastCGIClient(stack.fastcgiSocket)
        try spinner.send(FastCGIClient.request(token: stack.adminToken, chunk: "while true do end"))
        try Stack.waitUntil(timeout: .seconds(10), "the chunk to run") {
            (try? stack.request("/api/v1/admin/status", token: stack.adminToken))?.text.contains("\"running\":{") == true
        }
        var queued: [FastCGIClient] = []
        for index in 1...200 {
            let client = try FastCGIClient(stack.fastcgiSocket)
            try client.send(FastCGIClient.request(token: stack.adminToken, chunk: "order[#order + 1] = \(index) return \(index)"))
            queued.append(client)
            // Arrival order is what luaexecd saw complete: wait for each to be queued.
            if index % 50 == 0 {
                try Stack.waitUntil(timeout: .seconds(10), "\(index) requests to queue") {
                    (try? stack.request("/api/v1/admin/status", token: stack.adminToken))?.text.contains("\"queue_length\":\(index),") == true
                }
            }
        }
        let status = try FastCGIClient(stack.fastcgiSocket)
        try status.send(
            FastCGIClient.request(token: stack.adminToken, chunk: "", method: "GET", path: "/api/v1/admin/status"))
        let statusAnswer = try status.readAnswer(timeout: .seconds(2))
        #expect(statusAnswer.status == "200 OK")
        #expect(statusAnswer.body.contains("\"queue_length\":200,"))
        let interrupt = try FastCGIClient(stack.fastcgiSocket)
        try interrupt.send(FastCGIClient.request(token: stack.adminToken, chunk: "", path: "/api/v1/admin/interrupt"))
        #expect(try interrupt.readAnswer(timeout: .seconds(2)).body == "{\"interrupted\":true}")
        let spun = try spinner.readAnswer()
        #expect(spun.status == "500 Internal Server Error")
        #expect(spun.headers["x-lua-error"] == "interrupted")
        for (index, client) in queued.enumerated() {
            let answer = try client.readAnswer()
            #expect(answer.status == "200 OK")
            #expect(answer.body == String(index + 1))
        }
        #expect(try stack.eval("return table.concat(order, ',')").text == (1...200).map(String.init).joined(separator: ","))
    }

    @Test("requests that wait past the queue timeout get 503 busy, each in turn on a kept connection; nothing of them runs")
    func expiryOnAKeptConnection() throws {
        let stack = try Stack(settings: ["limits.time=60", "limits.queue_timeout=0.2"])
        let spinner = try FastCGIClient(stack.fastcgiSocket)
        try spinner.send(FastCGIClient.request(token: stack.adminToken, chunk: "while true do end"))
        try Stack.waitUntil(timeout: .seconds(10), "the chunk to run") {
            (try? stack.request("/api/v1/admin/status", token: stack.adminToken))?.text.contains("\"running\":{") == true
        }
        let client = try FastCGIClient(stack.fastcgiSocket)
        try client.send(
            FastCGIClient.request(id: 1, token: stack.adminToken, chunk: "first = true")
                + FastCGIClient.request(id: 2, token: stack.adminToken, chunk: "second = true"))
        for id in [UInt16(1), 2] {
            let answer = try client.readAnswer()
            #expect(answer.id == id)
            #expect(answer.status == "503 Service Unavailable")
            #expect(answer.headers["x-lua-error"] == "busy")
        }
        #expect(try stack.request("/api/v1/admin/interrupt", method: "POST", token: stack.adminToken).status == 200)
        #expect(try spinner.readAnswer().headers["x-lua-error"] == "interrupted")
        #expect(try stack.eval("return first == nil and second == nil").text == "true")
    }

    @Test("a status request read in the same batch as a long chunk is answered while the chunk runs")
    func statusBesideALongChunk() throws {
        let stack = Stack.shared
        for _ in 0..<10 {
            // Both connections are accepted first, then both requests written back to back, so
            // that the poller often reads them in one batch.
            let spinner = try FastCGIClient(stack.fastcgiSocket)
            let status = try FastCGIClient(stack.fastcgiSocket)
            try spinner.send(FastCGIClient.request(token: stack.adminToken, chunk: "return 'warm'"))
            try status.send(FastCGIClient.request(token: stack.adminToken, chunk: "", method: "GET", path: "/api/v1/admin/status"))
            _ = try spinner.readAnswer()
            _ = try status.readAnswer()
            try spinner.send(
                FastCGIClient.request(token: stack.adminToken, chunk: "local t = os.clock() while os.clock() - t < 0.5 do end return 'done'"))
            try status.send(FastCGIClient.request(token: stack.adminToken, chunk: "", method: "GET", path: "/api/v1/admin/status"))
            let answer = try status.readAnswer(timeout: .milliseconds(400))
            #expect(answer.status == "200 OK")
            #expect(try spinner.readAnswer().body == "done")
        }
    }

    @Test("an answer held for its round's audit lines does not wait for the long chunk after it")
    func answerBeforeALongChunk() throws {
        let stack = Stack.shared
        let client = try FastCGIClient(stack.fastcgiSocket)
        // One write: both requests are read in one round, the quick one answered first and
        // held for the round's log write while the second one spins.
        try client.send(
            FastCGIClient.request(id: 1, token: stack.adminToken, chunk: "return 'quick'")
                + FastCGIClient.request(
                    id: 2, token: stack.adminToken, chunk: "local t = os.clock() while os.clock() - t < 1.5 do end return 'slow'"))
        let quick = try client.readAnswer(timeout: .milliseconds(700))
        #expect(quick.id == 1 && quick.body == "quick")
        let slow = try client.readAnswer()
        #expect(slow.id == 2 && slow.body == "slow")
    }

    @Test("luaexecd runs at most 8 threads")
    func threads() throws {
        let stack = Stack.shared
        _ = try stack.eval("return 1")
        let count = try stack.luaexecdStatus("Threads")
        #expect(count <= 8, "\(count) threads")
    }

    @Test("luaexecd maps none of the client's libraries (libcurl, libcrypto, libedit), which the client opens itself")
    func noClientLibraries() throws {
        let stack = Stack.shared
        _ = try stack.eval("return 1")
        let maps = try stack.luaexecdProcFile("maps")
        #expect(maps.contains("liblua5.4"))
        for library in ["libcurl", "libcrypto.so", "libssl.so", "libedit", "libgnutls"] {
            #expect(!maps.contains(library), "luaexecd maps \(library)")
        }
    }
}
