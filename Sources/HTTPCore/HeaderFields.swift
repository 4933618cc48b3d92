import SystemSupport

/// A request's headers, looked up by lower-case name. Kept as the bytes the transport received
/// and the ranges of each name and value, so that a request whose handler reads two headers
/// does not build a string, let alone a dictionary, for every header it carried.
///
/// Names are stored as CGI spells them (`HTTP_LUA_CHUNK_NAME` without the prefix,
/// `CONTENT_TYPE`) and compared as HTTP spells them (`lua-chunk-name`): upper-case letters
/// match lower-case ones and `_` matches `-`. A name given twice: the last value wins, and
/// `repeated(among:bits:)` says so to a reader that must refuse it.
public struct HeaderFields: Sendable, ExpressibleByDictionaryLiteral {
    public typealias Field = (name: Range<Int>, value: Range<Int>)

    private let bytes: [UInt8]
    private let fields: [Field]
    /// A bit for each name's length and first letter (`bit(count:first:)`): a request reads
    /// about seven headers, most of which it does not carry, and a clear bit answers those
    /// without comparing a name.
    private let present: UInt64
    /// The bits of `present` that two fields set: clear on nearly every request, so that the
    /// check for a header given twice costs nothing there.
    private let twice: UInt64

    /// Fields as ranges of `bytes`; see the type's comment for how names are spelt.
    public init(bytes: [UInt8], fields: [Field]) {
        self.bytes = bytes
        self.fields = fields
        var present: UInt64 = 0
        var twice: UInt64 = 0
        for field in fields where !field.name.isEmpty {
            let bit = Self.bit(count: field.name.count, first: Self.httpSpelling(bytes[field.name.lowerBound]))
            twice |= present & bit
            present |= bit
        }
        self.present = present
        self.twice = twice
    }

    public init(_ headers: [String: String]) {
        self.init(pairs: headers.map { ($0.key, $0.value) })
    }

    /// Headers in the order given, a name possibly twice, as a transport passes them.
    public init(pairs: [(name: String, value: String)]) {
        var bytes: [UInt8] = []
        var fields: [Field] = []
        for (name, value) in pairs {
            let nameStart = bytes.count
            bytes += name.utf8
            let valueStart = bytes.count
            bytes += value.utf8
            fields.append((nameStart..<valueStart, valueStart..<bytes.count))
        }
        self.init(bytes: bytes, fields: fields)
    }

    public init(dictionaryLiteral elements: (String, String)...) {
        self.init(Dictionary(elements, uniquingKeysWith: { _, last in last }))
    }

    /// The value of the header `name` (lower-case, with dashes), if the request has it.
    public subscript(name: String) -> String? {
        withValue(of: name) { value in value.map { String(decoding: $0, as: UTF8.self) } }
    }

    /// `body` with the bytes of the header `name`'s value where they lie, nil when the request
    /// has no such header: for the `Authorization` header of every request, read without a
    /// string of its own.
    public func withValue<R>(of name: String, _ body: (UnsafeBufferPointer<UInt8>?) -> R) -> R {
        let found = withUTF8Bytes(of: name) { wanted -> Range<Int>? in
            guard let first = wanted.first, present & Self.bit(count: wanted.count, first: first) != 0 else {
                return nil
            }
            for field in fields.reversed() where field.name.count == wanted.count {
                if Self.matches(bytes[field.name], wanted) { return field.value }
            }
            return nil
        }
        guard let found else { return body(nil) }
        return bytes.withUnsafeBufferPointer { body(UnsafeBufferPointer(rebasing: $0[found])) }
    }

    /// The first of `names` (lower-case, with dashes) that the request carries more than once:
    /// for headers that hold one value, where "the last one wins" would hide which one a
    /// client or a proxy meant. `bits`: `HeaderFields.bits(of: names)`, made once; behind nginx
    /// every request carries a name twice (`CONTENT_TYPE`, `HTTP_CONTENT_TYPE`), and the bits
    /// answer for it at once.
    public func repeated(among names: [String], bits: UInt64) -> String? {
        guard twice & bits != 0 else { return nil }
        for name in names {
            let count = withUTF8Bytes(of: name) { wanted -> Int in
                guard let first = wanted.first, twice & Self.bit(count: wanted.count, first: first) != 0 else { return 0 }
                return fields.reduce(0) { count, field in
                    count + (field.name.count == wanted.count && Self.matches(bytes[field.name], wanted) ? 1 : 0)
                }
            }
            if count > 1 { return name }
        }
        return nil
    }

    /// Whether the request may carry a header of `bits` (`bits(of:)`): false answers "none of
    /// them" with one AND, for a header most requests lack that every request looks for.
    public func mayHave(_ bits: UInt64) -> Bool { present & bits != 0 }

    /// The bits of `present` that `names` (lower-case, with dashes) would set.
    public static func bits(of names: [String]) -> UInt64 {
        names.reduce(0) { bits, name in
            withUTF8Bytes(of: name) { wanted in wanted.first.map { bits | bit(count: wanted.count, first: $0) } ?? bits }
        }
    }

    /// Every header, names lower-case with dashes.
    public var dictionary: [String: String] {
        var result: [String: String] = [:]
        for field in fields {
            let name = String(decoding: bytes[field.name].map(Self.httpSpelling), as: UTF8.self)
            result[name] = String(decoding: bytes[field.value], as: UTF8.self)
        }
        return result
    }

    private static func matches(_ stored: ArraySlice<UInt8>, _ wanted: UnsafeBufferPointer<UInt8>) -> Bool {
        var index = 0
        for byte in stored {
            guard httpSpelling(byte) == wanted[index] else { return false }
            index += 1
        }
        return true
    }

    private static func bit(count: Int, first: UInt8) -> UInt64 {
        1 << UInt64((count &* 7 &+ Int(first)) & 63)
    }

    private static func httpSpelling(_ byte: UInt8) -> UInt8 {
        switch byte {
        case UInt8(ascii: "_"): UInt8(ascii: "-")
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): byte + 32
        default: byte
        }
    }
}
