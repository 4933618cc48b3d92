import RemoteClient
import Testing

@Suite("Client: reading a streamed answer")
struct ServerSentEventsTests {
    @Test("events complete at their blank line, whatever the parts the body came in")
    func parts() {
        let body = Array("event: output\ndata: \"a\\n\"\n\nevent: result\ndata: {\"ok\":true}\n\n".utf8)
        for cut in 0...body.count {
            var reader = ServerSentEvents()
            let events = reader.feed(Array(body[..<cut])) + reader.feed(Array(body[cut...]))
            #expect(
                events == [
                    .init(name: "output", data: Array("\"a\\n\"".utf8)),
                    .init(name: "result", data: Array("{\"ok\":true}".utf8)),
                ], "cut at \(cut)")
        }
        // A byte at a time: each blank line is found where the two line breaks came apart, and
        // a long event is searched as it grows, not again from its start.
        let long = Array(("event: output\ndata: \"" + String(repeating: "x", count: 5000) + "\"\n\n").utf8)
        var reader = ServerSentEvents()
        var events: [ServerSentEvents.Event] = []
        for byte in body + long + body { events += reader.feed([byte]) }
        let output = ServerSentEvents.Event(name: "output", data: Array(("\"" + String(repeating: "x", count: 5000) + "\"").utf8))
        let pair: [ServerSentEvents.Event] = [
            .init(name: "output", data: Array("\"a\\n\"".utf8)), .init(name: "result", data: Array("{\"ok\":true}".utf8)),
        ]
        #expect(events == pair + [output] + pair)
        #expect(
            ServerSentEvents.events(in: Array("event: error\ndata: 1\ndata: 2".utf8)) == [
                .init(name: "error", data: Array("1\n2".utf8))
            ])
    }
}
