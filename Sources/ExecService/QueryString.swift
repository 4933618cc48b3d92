/// `application/x-www-form-urlencoded` query strings, as browsers and curl send them.
enum QueryString {
    /// Every value of parameter `name`, percent-decoded (`+` as a space).
    static func values(of name: String, in query: String) -> [String] {
        guard !query.isEmpty else { return [] }
        var values: [String] = []
        for pair in query.utf8.split(separator: UInt8(ascii: "&"), omittingEmptySubsequences: true) {
            let key = pair.prefix { $0 != UInt8(ascii: "=") }
            guard decode(key) == Array(name.utf8) else { continue }
            let value = pair.dropFirst(key.count + 1)
            values.append(String(decoding: decode(value), as: UTF8.self))
        }
        return values
    }

    /// Every parameter in order, name and value percent-decoded; a name without `=` has an
    /// empty value (`action=toast&help`). `raw` is the pair as sent.
    static func pairs(in query: String) -> [(name: String, value: [UInt8], raw: Substring)] {
        guard !query.isEmpty else { return [] }
        return query.split(separator: "&", omittingEmptySubsequences: true).map { pair in
            let key = pair.utf8.prefix { $0 != UInt8(ascii: "=") }
            let value = pair.utf8.dropFirst(key.count + 1)
            return (String(decoding: decode(key), as: UTF8.self), decode(value), pair)
        }
    }

    static func decode(_ bytes: some Collection<UInt8>) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count)
        var iterator = bytes.makeIterator()
        while let byte = iterator.next() {
            switch byte {
            case UInt8(ascii: "+"):
                out.append(UInt8(ascii: " "))
            case UInt8(ascii: "%"):
                let high = iterator.next()
                let low = iterator.next()
                if let high, let low, let h = hex(high), let l = hex(low) {
                    out.append(h << 4 | l)
                } else {
                    out.append(byte)
                    if let high { out.append(high) }
                    if let low { out.append(low) }
                }
            default:
                out.append(byte)
            }
        }
        return out
    }

    private static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
