import HTTPCore
import Synchronization
import Testing

@testable import FastCGI

/// Records as a web server writes them, for feeding the parser.
enum Wire {
    static func record(_ type: UInt8, id: UInt16, _ content: [UInt8] = [], padding: Int = 0) -> [UInt8] {
        [1, type, UInt8(id >> 8), UInt8(id & 0xFF), UInt8(content.count >> 8), UInt8(content.count & 0xFF), UInt8(padding), 0]
            + content + [UInt8](repeating: 0xEE, count: padding)
    }

    static func begin(id: UInt16, role: UInt16 = 1, keep: Bool = true) -> [UInt8] {
        record(1, id: id, [UInt8(role >> 8), UInt8(role & 0xFF), keep ? 1 : 0, 0, 0, 0, 0, 0])
    }

    static func pairs(_ pairs: [(String, String)]) -> [UInt8] {
        var stream: [UInt8] = []
        for (name, value) in pairs { FastCGIEncoder.pair(Array(name.utf8), Array(value.utf8), into: &stream) }
        return stream
    }

    static let nginxParams: [(String, String)] = [
        ("REQUEST_METHOD", "POST"), ("DOCUMENT_URI", "/api/v1/exec/interactive.lua"), ("QUERY_STRING", ""),
        ("CONTENT_TYPE", "application/x-www-form-urlencoded"), ("REMOTE_ADDR", "192.0.2.7"),
        ("HTTP_AUTHORIZATION", "Bearer lxk_abc"), ("HTTP_X_LONG", String(repeating: "v", count: 300)),
        (String(repeating: "N", count: 130), "long name"),
    ]

    /// A whole request: BEGIN_REQUEST, the params in records of at most `split` bytes, the body
    /// in records of at most `split` bytes, with padding on every other record.
    static func request(
        id: UInt16, params: [(String, String)] = nginxParams, body: [UInt8], keep: Bool = true, split: Int = 65535,
        declareLength: Bool = true
    ) -> [UInt8] {
        var all = params
        if declareLength { all.append(("CONTENT_LENGTH", String(body.count))) }
        var bytes = begin(id: id, keep: keep)
        var index = 0
        for stream in [pairs(all), body] {
            var offset = 0
            while offset < stream.count {
                let end = min(offset + split, stream.count)
                bytes += record(index == 0 ? 4 : 5, id: id, Array(stream[offset..<end]), padding: offset % 2 == 0 ? 3 : 0)
                offset = end
            }
            bytes += record(index == 0 ? 4 : 5, id: id)
            index += 1
        }
        return bytes
    }
}

/// What a parser made of a byte stream, in order.
struct Parsed {
    var requests: [FastCGIParser.Request] = []
    var replies: [[UInt8]] = []
    var closeAfterReply = false
    var error: FastCGIProtocolError?

    /// Feeds `bytes` in the given pieces, draining events after each and finishing every request.
    init(_ bytes: [UInt8], pieces: [Int]? = nil, limits: FastCGIParser.Limits = .init()) {
        var parser = FastCGIParser(limits: limits)
        var offset = 0
        for size in (pieces ?? [bytes.count]) + [bytes.count] where offset < bytes.count {
            let end = min(bytes.count, offset + size)
            parser.append(Array(bytes[offset..<end]))
            offset = end
            do {
                while let event = try parser.next() {
                    switch event {
                    case .request(let request):
                        requests.append(request)
                        _ = parser.finish()
                    case .reply(let bytes, let close):
                        replies.append(bytes)
                        closeAfterReply = closeAfterReply || close
                    }
                }
            } catch {
                self.error = error
                return
            }
        }
    }

    var bodies: [BodyRead] { requests.map(\.body) }
}

@Suite("FastCGI records, parsed and written")
struct FastCGIParserTests {
    static let body = Array("local x = 40\nreturn x + 2\n".utf8)

    func expectOneRequest(_ parsed: Parsed, id: UInt16 = 1, body: [UInt8] = body) {
        #expect(parsed.error == nil)
        #expect(parsed.replies.isEmpty)
        #expect(parsed.requests.count == 1)
        guard let request = parsed.requests.first else { return }
        #expect(request.id == id)
        #expect(request.keepConnection)
        #expect(request.body == .complete(body))
        let head = request.params.head()
        #expect(head.method == "POST")
        #expect(head.path == "/api/v1/exec/interactive.lua")
        #expect(head.headers["authorization"] == "Bearer lxk_abc")
        #expect(head.headers["x-long"] == String(repeating: "v", count: 300))
        #expect(request.params.value(String(repeating: "N", count: 130)) == "long name")
        #expect(head.clientAddress == "192.0.2.7")
    }

    @Test("a request split at every byte boundary parses the same")
    func everyBoundary() {
        let bytes = Wire.request(id: 1, body: Self.body, split: 100)
        for cut in 0...bytes.count {
            expectOneRequest(Parsed(bytes, pieces: [cut]))
        }
    }

    @Test("a request fed one byte at a time parses the same")
    func byteAtATime() {
        let bytes = Wire.request(id: 7, body: Self.body, split: 9)
        expectOneRequest(Parsed(bytes, pieces: Array(repeating: 1, count: bytes.count)), id: 7)
    }

    @Test("back-to-back requests with random record and read boundaries come out whole and in order")
    func randomBoundaries() {
        var random = SplitMix(seed: 0x5EED)
        for _ in 0..<200 {
            var bytes: [UInt8] = []
            var bodies: [[UInt8]] = []
            for index in 0..<Int(random.next() % 5 + 1) {
                let body = (0..<Int(random.next() % 3000)).map { _ in UInt8(truncatingIfNeeded: random.next()) }
                bodies.append(body)
                bytes += Wire.request(id: UInt16(index + 1), body: body, split: Int(random.next() % 700 + 1))
            }
            var pieces: [Int] = []
            var covered = 0
            while covered < bytes.count {
                let piece = Int(random.next() % 900 + 1)
                pieces.append(piece)
                covered += piece
            }
            let parsed = Parsed(bytes, pieces: pieces)
            #expect(parsed.error == nil)
            #expect(parsed.bodies == bodies.map { .complete($0) })
            #expect(parsed.requests.map(\.id) == (1...bodies.count).map(UInt16.init))
        }
    }

    @Test("name-value lengths of 0, 127 and 128 bytes use the 1- and 4-byte forms")
    func pairLengths() throws {
        let params = [("A", ""), ("B", String(repeating: "x", count: 127)), ("C", String(repeating: "y", count: 128))]
        let stream = Wire.pairs(params)
        #expect(stream[0...1] == [1, 0])
        #expect(stream[3...4] == [1, 127])
        #expect(Array(stream[133...137]) == [1, 0x80, 0, 0, 128])
        let parsed = try FastCGIParams(stream: stream)
        #expect(parsed.pairs.map { String(decoding: $0.value, as: UTF8.self) } == params.map(\.1))
    }

    @Test("a role other than RESPONDER gets UNKNOWN_ROLE; its records are ignored; the next request is served")
    func unknownRole() {
        var bytes = Wire.begin(id: 3, role: 2)
        bytes += Wire.record(4, id: 3, Wire.pairs([("A", "b")])) + Wire.record(4, id: 3) + Wire.record(5, id: 3)
        bytes += Wire.request(id: 4, body: Self.body)
        let parsed = Parsed(bytes)
        #expect(parsed.replies == [Wire.record(3, id: 3, [0, 0, 0, 0, 3, 0, 0, 0])])
        #expect(!parsed.closeAfterReply)
        #expect(parsed.requests.map(\.id) == [4])
        // Without KEEP_CONN the connection closes after the refusal.
        #expect(Parsed(Wire.begin(id: 3, role: 3, keep: false)).closeAfterReply)
    }

    @Test("a second request id on one connection is refused with CANT_MPX_CONN; the first goes on")
    func multiplexed() {
        let first = Wire.request(id: 1, body: Self.body, split: 50)
        let cut = Self.recordEnds(first)[2]  // BEGIN_REQUEST and two PARAMS records
        let bytes = Array(first[..<cut]) + Wire.begin(id: 2) + Array(first[cut...])
        let parsed = Parsed(bytes)
        #expect(parsed.replies == [Wire.record(3, id: 2, [0, 0, 0, 0, 1, 0, 0, 0])])
        expectOneRequest(Parsed(first))
        #expect(parsed.requests.map(\.id) == [1])
    }

    @Test("ABORT_REQUEST drops the request being read and is answered with END_REQUEST")
    func abort() {
        let request = Wire.request(id: 5, body: Self.body, split: 50)
        let aborted = Array(request[..<Self.recordEnds(request)[1]]) + Wire.record(2, id: 5)
        let parsed = Parsed(aborted + Wire.request(id: 6, body: Self.body))
        #expect(parsed.replies == [Wire.record(3, id: 5, [0, 0, 0, 0, 0, 0, 0, 0])])
        #expect(parsed.requests.map(\.id) == [6])
    }

    @Test("GET_VALUES is answered with MAX_CONNS, MAX_REQS and MPXS_CONNS=0; unknown names are left out")
    func getValues() throws {
        let asked = Wire.pairs([("FCGI_MAX_CONNS", ""), ("FCGI_MPXS_CONNS", ""), ("X_OTHER", ""), ("FCGI_MAX_REQS", "")])
        let parsed = Parsed(Wire.record(9, id: 0, asked), limits: .init(connections: 300))
        let expected = Wire.pairs([("FCGI_MAX_CONNS", "300"), ("FCGI_MPXS_CONNS", "0"), ("FCGI_MAX_REQS", "300")])
        #expect(parsed.replies == [Wire.record(10, id: 0, expected)])
    }

    @Test("an unknown management record gets UNKNOWN_TYPE naming its type")
    func unknownType() {
        #expect(Parsed(Wire.record(42, id: 0, [1, 2, 3])).replies == [Wire.record(11, id: 0, [42, 0, 0, 0, 0, 0, 0, 0])])
    }

    @Test("bodies: over the limit is tooLarge, shorter than CONTENT_LENGTH is incomplete, none is empty")
    func bodies() {
        let limits = FastCGIParser.Limits(bodyBytes: 100)
        #expect(Parsed(Wire.request(id: 1, body: Array(repeating: 65, count: 101), split: 30), limits: limits).bodies == [.tooLarge])
        #expect(Parsed(Wire.request(id: 1, body: Array(repeating: 65, count: 100)), limits: limits).bodies == [.complete(Array(repeating: 65, count: 100))])
        var params = Wire.nginxParams
        params.append(("CONTENT_LENGTH", "50"))
        #expect(Parsed(Wire.request(id: 1, params: params, body: [1, 2], declareLength: false)).bodies == [.incomplete])
        params[params.count - 1] = ("CONTENT_LENGTH", "5000")
        #expect(Parsed(Wire.request(id: 1, params: params, body: [1, 2], declareLength: false), limits: limits).bodies == [.tooLarge])
        #expect(Parsed(Wire.request(id: 1, body: [])).bodies == [.complete([])])
    }

    @Test("the response is Status, the headers, Content-Length, the body in STDOUT records, then END_REQUEST")
    func response() {
        var out: [UInt8] = []
        FastCGIEncoder.response(Response(status: 200, headers: [("Content-Type", "text/plain")], body: Array("2".utf8)), id: 9, into: &out)
        let head = Array("Status: 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 1\r\n\r\n".utf8)
        #expect(out == Wire.record(6, id: 9, head) + Wire.record(6, id: 9, Array("2".utf8)) + Wire.record(6, id: 9)
            + Wire.record(3, id: 9, [0, 0, 0, 0, 0, 0, 0, 0]))
        var big: [UInt8] = []
        FastCGIEncoder.response(Response(status: 200, body: Array(repeating: 7, count: 70_000)), id: 1, into: &big)
        let contents = Self.records(big)
        #expect(contents.map(\.type) == [6, 6, 6, 6, 3])
        #expect(contents[1].content.count == 65535)
        #expect(contents[2].content.count == 70_000 - 65535)
    }

    @Test("204 and 304 go without Content-Length and without a body, whatever body they were given")
    func responseWithoutContent() {
        for (status, reason) in [(204, "No Content"), (304, "Not Modified")] {
            var out: [UInt8] = []
            FastCGIEncoder.response(Response(status: status, headers: [("ETag", "\"1\"")], body: Array("x".utf8)), id: 2, into: &out)
            let head = Array("Status: \(status) \(reason)\r\nETag: \"1\"\r\n\r\n".utf8)
            #expect(out == Wire.record(6, id: 2, head) + Wire.record(6, id: 2) + Wire.record(3, id: 2, [0, 0, 0, 0, 0, 0, 0, 0]))
        }
    }

    @Test("the status line carries the registered reason phrase of any status a handler answers", arguments: [
        (412, "Precondition Failed"), (418, "Status 418"), (423, "Locked"), (451, "Unavailable For Legal Reasons"),
        (599, "Status 599"),
    ])
    func reasonPhrase(status: Int, reason: String) {
        var out: [UInt8] = []
        FastCGIEncoder.response(Response(status: status, body: []), id: 1, into: &out)
        let head = Self.records(out)[0].content
        #expect(String(decoding: head, as: UTF8.self).hasPrefix("Status: \(status) \(reason)\r\n"))
    }

    /// Where each record of `bytes` ends.
    static func recordEnds(_ bytes: [UInt8]) -> [Int] {
        var ends: [Int] = []
        var offset = 0
        while offset + 8 <= bytes.count {
            offset += 8 + (Int(bytes[offset + 4]) << 8 | Int(bytes[offset + 5])) + Int(bytes[offset + 6])
            ends.append(offset)
        }
        return ends
    }

    static func records(_ bytes: [UInt8]) -> [(type: UInt8, content: [UInt8])] {
        var result: [(type: UInt8, content: [UInt8])] = []
        var offset = 0
        while offset + 8 <= bytes.count {
            let length = Int(bytes[offset + 4]) << 8 | Int(bytes[offset + 5])
            result.append((bytes[offset + 1], Array(bytes[(offset + 8)..<(offset + 8 + length)])))
            offset += 8 + length + Int(bytes[offset + 6])
        }
        return result
    }

    @Test("malformed streams are errors, each saying what was wrong", arguments: [
        ([2, 1, 0, 1, 0, 0, 0, 0], "not a FastCGI version 1 record (first byte 2)"),
        (Wire.record(1, id: 1, [0, 1, 1]), "BEGIN_REQUEST with 3 content bytes, not 8"),
        (Wire.begin(id: 1) + Wire.begin(id: 1), "BEGIN_REQUEST for request 1, already begun"),
        (Wire.begin(id: 1) + Wire.record(6, id: 1, [1]), "record type 6 is not one a web server sends for a request"),
        (Wire.begin(id: 1) + Wire.record(5, id: 1, [1]), "STDIN before the end of PARAMS"),
        // Lengths near 2^31 and past the stream: CVE-2025-23016's overflow, here an error.
        (Wire.begin(id: 1) + Wire.record(4, id: 1, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 65]) + Wire.record(4, id: 1),
         "a name-value pair claims more bytes than the stream holds"),
        (Wire.begin(id: 1) + Wire.record(4, id: 1, [0x80, 0, 0, 0, 0x7F, 0xFF, 0xFF, 0xF0]) + Wire.record(4, id: 1),
         "a name-value pair claims more bytes than the stream holds"),
        (Wire.begin(id: 1) + Wire.record(4, id: 1, [5, 0x80, 0]) + Wire.record(4, id: 1), "a name-value length is cut short"),
        (Wire.begin(id: 1) + Wire.record(4, id: 1, [128]) + Wire.record(4, id: 1), "a name-value length is cut short"),
    ] as [([UInt8], String)])
    func malformed(bytes: [UInt8], message: String) {
        #expect(Parsed(bytes).error == FastCGIProtocolError(message))
    }

    @Test("params past their limit are an error")
    func paramsLimit() {
        let bytes = Wire.request(id: 1, params: [("X", String(repeating: "p", count: 2000))], body: [], split: 500)
        #expect(Parsed(bytes, limits: .init(paramsBytes: 1000)).error == FastCGIProtocolError("the params exceed 1000 bytes"))
    }

    @Test("seeded fuzz: valid and corrupted streams in random pieces never crash; corrupt ones end in an error or wait")
    func fuzz() {
        var random = SplitMix(seed: 23016)
        let lengths: [[UInt8]] = [[0], [127], [0x80, 0, 0, 128], [0xFF, 0xFF, 0xFF, 0xFF], [0x80, 0, 0, 0], [0x7F]]
        var errors = 0, requests = 0
        for round in 0..<3000 {
            var bytes = Wire.request(id: UInt16(random.next() % 3 + 1), body: Self.body, split: Int(random.next() % 64 + 1))
            switch round % 4 {
            case 0: break  // valid
            case 1:  // flip bytes
                for _ in 0..<Int(random.next() % 4 + 1) {
                    bytes[Int(random.next() % UInt64(bytes.count))] = UInt8(truncatingIfNeeded: random.next())
                }
            case 2:  // a params record whose pair lengths are extreme
                let pair = lengths[Int(random.next() % UInt64(lengths.count))] + lengths[Int(random.next() % UInt64(lengths.count))]
                bytes = Wire.begin(id: 1) + Wire.record(4, id: 1, pair + [65, 66]) + Wire.record(4, id: 1) + bytes
            default:  // truncated, or a record header claiming more than follows
                bytes = Array(bytes[..<Int(random.next() % UInt64(bytes.count))]) + Wire.record(5, id: 1, Array(repeating: 1, count: 200))
            }
            var pieces: [Int] = []
            var covered = 0
            while covered < bytes.count {
                pieces.append(Int(random.next() % 100 + 1))
                covered += pieces.last!
            }
            let parsed = Parsed(bytes, pieces: pieces)
            if parsed.error != nil { errors += 1 }
            requests += parsed.requests.count
            if round % 4 == 0 {
                #expect(parsed.error == nil)
                #expect(parsed.bodies == [.complete(Self.body)])
            }
        }
        // The corrupt rounds did reach the error paths.
        #expect(errors > 500)
        #expect(requests >= 750)
    }
}

/// A small seeded generator (SplitMix64), so that every run feeds the same bytes.
struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
