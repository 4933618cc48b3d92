/// Reads a streamed answer (SPEC E13) as it arrives: blocks of `event: NAME` and `data: ...`
/// lines, each ended by a blank line, as luaexecd writes them.
public struct ServerSentEvents: Sendable {
    public struct Event: Sendable, Equatable {
        public var name: String
        /// The `data:` lines, joined by line feeds (luaexecd writes one: a JSON value).
        public var data: [UInt8]

        public init(name: String, data: [UInt8]) {
            self.name = name
            self.data = data
        }
    }

    private var pending: [UInt8] = []
    /// How much of `pending` was searched for the blank line that ends an event.
    private var searched = 0

    public init() {}

    /// Takes the next part of the body; returns the events it completed, in order.
    public mutating func feed(_ bytes: [UInt8]) -> [Event] {
        pending += bytes
        var events: [Event] = []
        var start = 0
        // From where the last read's search ended (its last byte may be the first of the two
        // line breaks): an event of megabytes that comes in many reads is searched once, not
        // again from its start at each read (which made 8 MB of output take 7 s).
        var index = max(0, searched - 1)
        while index + 1 < pending.count {
            if pending[index] == 0x0A && pending[index + 1] == 0x0A {
                if let event = Self.parse(pending[start..<index]) { events.append(event) }
                start = index + 2
                index = start
            } else {
                index += 1
            }
        }
        pending.removeFirst(start)
        searched = pending.count
        return events
    }

    /// Every event of a whole body.
    public static func events(in body: [UInt8]) -> [Event] {
        var reader = ServerSentEvents()
        return reader.feed(body + [0x0A, 0x0A])
    }

    static func parse(_ block: ArraySlice<UInt8>) -> Event? {
        var name = "message"
        var data: [UInt8]?
        for line in block.split(separator: 0x0A, omittingEmptySubsequences: false) {
            if line.starts(with: Array("event: ".utf8)) {
                name = String(decoding: line.dropFirst(7), as: UTF8.self)
            } else if line.starts(with: Array("data: ".utf8)) {
                if data != nil { data!.append(0x0A) } else { data = [] }
                data!.append(contentsOf: line.dropFirst(6))
            }
        }
        guard let data else { return nil }
        return Event(name: name, data: data)
    }
}
