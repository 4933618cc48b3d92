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
        #expect(
            ServerSentEvents.events(in: Array("event: error\ndata: 1\ndata: 2".utf8)) == [
                .init(name: "error", data: Array("1\n2".utf8))
            ])
    }
}
