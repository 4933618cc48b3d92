import HTTPCore

/// One request's answer as Server-Sent Events (SPEC E13): `output` events as the chunk prints,
/// then one `result` or `error` event whose data is the answer's JSON (E5, E6).
///
/// ```
/// event: output
/// data: "step 1\n"
///
/// event: result
/// data: {"ok":true,"results":[42],"output":"","elapsed_ms":2003.1}
/// ```
///
/// An `output` event's data is the printed bytes as one JSON value, as E5 writes `output`: a
/// string, or `{"base64":"..."}` for bytes that are not UTF-8 (a UTF-8 sequence cut by a flush is
/// held back for the next event, so text stays text). The final event's `output` is empty: it
/// has all gone in `output` events.
///
/// The head leaves with the first `output` event, status 200 from then on. A chunk that prints
/// nothing before it ends gets one answer with its own status (E6's) and the final event as its
/// body. A client that goes stops only its own stream: the chunk goes on or stops by its limits,
/// and the audit line says `stream=dropped`.
///
/// `@unchecked Sendable`: used by one thread at a time, as the `Exchange` that holds it is (the
/// scheduler's lock orders its runs).
final class EventStream: @unchecked Sendable {
    static let mediaType = "text/event-stream"

    let writer: any ResponseWriter
    /// The head has gone: the status is 200 whatever the outcome.
    private(set) var started = false
    /// The client went away; nothing more is written.
    private(set) var dropped = false
    /// Bytes of the body written before the final event.
    private(set) var bytesSent = 0
    /// The start of a UTF-8 sequence the last part ended in, sent with the next one.
    private var carry: [UInt8] = []

    init(writer: any ResponseWriter) {
        self.writer = writer
    }

    /// Sends what the chunk printed as an `output` event.
    func output(_ bytes: UnsafeRawBufferPointer) {
        output(Array(bytes))
    }

    func output(_ bytes: [UInt8]) {
        guard !dropped, !bytes.isEmpty || !carry.isEmpty else { return }
        var text = carry + bytes
        let cut = Self.incompleteTail(text)
        carry = Array(text[cut...])
        text.removeSubrange(cut...)
        guard !text.isEmpty else { return }
        send(Self.outputEvent(text))
    }

    /// Ends the stream: what the chunk printed last (`output`, not sent yet), then `response`
    /// (whose body is E5's or E6's JSON) as the final event, `result` for a 200, else `error`.
    /// Returns the answer to finish and audit: the whole answer when nothing was streamed yet,
    /// else the rest of the body, written already.
    func end(_ response: Response, output: [UInt8], audit: inout AuditRecord) -> Response {
        var body: [UInt8] = []
        let text = carry + output
        carry = []
        if !text.isEmpty { body += Self.outputEvent(text) }
        body += Self.event(response.status == 200 ? "result" : "error", data: response.body)
        guard started else {
            var headers = response.headers.filter { $0.name.lowercased() != "content-type" }
            headers.insert(("Content-Type", Self.mediaType), at: 0)
            headers.append(("X-Accel-Buffering", "no"))
            return Response(status: response.status, headers: headers, body: body)
        }
        if !dropped && !writer.write(body) { dropped = true }
        audit.streamed = bytesSent
        audit.streamDropped = dropped
        // The audit trail keeps it too (the line says `stream=dropped`).
        if dropped { audit.detail = "stream dropped after \(bytesSent) bytes: the client went, or read too slowly" }
        return Response(status: 200, body: body)
    }

    private func send(_ event: [UInt8]) {
        if !started {
            started = true
            // `X-Accel-Buffering: no`: nginx passes each part on as it comes (the site leaves the
            // header to luaexecd: nginx/luaexec-fastcgi.conf). No Server-Timing: the time is
            // not known yet; the final event carries `elapsed_ms`.
            var head = Response(
                status: 200,
                headers: [
                    ("Content-Type", Self.mediaType), ("Cache-Control", "no-store"), ("X-Accel-Buffering", "no"),
                ])
            head.fixedLines = HeaderPolicy.securityLines
            writer.startStream(head)
        }
        if writer.write(event) {
            bytesSent += event.count
        } else {
            dropped = true
        }
    }

    static func outputEvent(_ bytes: [UInt8]) -> [UInt8] {
        var json = JSONWriter()
        json.luaString(bytes)
        return event("output", data: json.bytes)
    }

    /// `event: NAME`, one `data:` line (JSON has no raw line breaks), and the blank line.
    static func event(_ name: String, data: [UInt8]) -> [UInt8] {
        var out = Array("event: \(name)\ndata: ".utf8)
        out.reserveCapacity(out.count + data.count + 2)
        out.append(contentsOf: data)
        out.append(contentsOf: [0x0A, 0x0A])
        return out
    }

    /// Where an unfinished UTF-8 sequence starts at the end of `bytes` (its count when none).
    static func incompleteTail(_ bytes: [UInt8]) -> Int {
        var index = bytes.count
        var seen = 0
        while index > 0 && seen < 3 {
            let byte = bytes[index - 1]
            if byte & 0xC0 == 0x80 {
                index -= 1
                seen += 1
                continue
            }
            let length = byte >= 0xF0 ? 4 : byte >= 0xE0 ? 3 : byte >= 0xC0 ? 2 : 1
            return length > seen + 1 && byte >= 0xC0 && byte < 0xF8 ? index - 1 : bytes.count
        }
        return bytes.count
    }

    /// Whether a request's `Accept` names `text/event-stream`.
    static func wanted(_ head: RequestHead) -> Bool { ExecService.accepts(head, mediaType) }
}
