/// A line of luaexecd's log, being written: the one way a line is made (the audit line of each
/// request, the lines of swift-log's loggers, what scripts log), so the one place its rule holds.
///
/// The rule: a line is text and nothing else. Every byte of a control character (C0, DEL, C1:
/// U+0080 to U+009F) and every byte that is not part of valid UTF-8 is written as `\xHH`, so no
/// text a client or a script controls can end a line early, forge the next one, move a
/// terminal's cursor or colour what an administrator reads (`journalctl`, `tail`), or make
/// journald store the line as binary. Printable text, non-ASCII included, is written as it is.
///
/// Text enters a line only through `text` and `value`, which apply the rule as they copy; the
/// rest is what luaexecd formats itself (literals, numbers, the time). A value (`value`) is
/// logfmt's: bare when it is plain, else in quotes with `"` and `\` escaped, so that a value
/// ends where it seems to and a backslash in quotes always starts an escape. Both look at each
/// byte once, through a table, and copy plain text (nearly all) in one piece: the audit line
/// of every request is written this way (bench/NOTES.md).
public struct LogLine: ~Copyable {
    @usableFromInline var out: ByteWriter

    private init(out: consuming ByteWriter) {
        self.out = out
    }

    /// Appends the line `body` writes, and its end (`\n`), to `array`.
    public static func append(to array: inout [UInt8], _ body: (inout LogLine) -> Void) {
        make(into: &array) { line in
            body(&line)
            line.out.byte(UInt8(ascii: "\n"))
        }
    }

    /// The line `body` writes, without its end.
    public static func bytes(_ body: (inout LogLine) -> Void) -> [UInt8] {
        var array: [UInt8] = []
        make(into: &array, body)
        return array
    }

    private static func make(into array: inout [UInt8], _ body: (inout LogLine) -> Void) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: ByteWriter.scratchSize) { scratch in
            // As ByteWriter.append: the array moves through the writer, never copied.
            var taken: [UInt8] = []
            swap(&taken, &array)
            var line = LogLine(out: ByteWriter(out: consume taken, scratch: scratch))
            body(&line)
            array = line.finish()
        }
    }

    private consuming func finish() -> [UInt8] { out.finish() }

    // MARK: What luaexecd formats itself

    /// luaexecd's own words. They hold no control character (checked in debug builds).
    @inlinable @inline(__always)
    public mutating func literal(_ literal: StaticString) {
        assert(
            literal.withUTF8Buffer { !$0.contains { $0 < 0x20 || $0 == 0x7F } }, "a control character in a log literal")
        out.literal(literal)
    }

    @inlinable
    public mutating func decimal(_ value: Int) { out.decimal(value) }

    /// Two lower-case hex digits.
    @inlinable
    public mutating func hex(_ value: UInt8) { out.hex(value) }

    /// Milliseconds with microsecond precision: `2.500`.
    @inlinable
    public mutating func milliseconds(nanoseconds: Int64) { out.milliseconds(nanoseconds: nanoseconds) }

    /// The time now, UTC, to the millisecond: `2026-11-27T07:10:00.123Z`.
    public mutating func timeNow() { UTCTime.writeNowWithMilliseconds(to: &out) }

    // MARK: Text from outside

    /// Text as it is, but for what the rule escapes: a message, a name.
    @inlinable @inline(__always)
    public mutating func text(_ text: String) {
        withUTF8Bytes(of: text) { self.text($0) }
    }

    @usableFromInline
    mutating func text(_ bytes: UnsafeBufferPointer<UInt8>) {
        if Self.classes(of: bytes) & ByteClass.escape == 0 {
            out.bytes(bytes)
        } else {
            escape(bytes, quoted: false)
        }
    }

    /// Text the rule was applied to once, for text written into many lines (a logger's label).
    public struct Text: Sendable {
        @usableFromInline let bytes: [UInt8]

        public init(_ text: String) {
            bytes = LogLine.bytes { $0.text(text) }
        }
    }

    /// Text the rule was applied to already.
    @inlinable
    public mutating func text(_ text: Text) { out.bytes(text.bytes) }

    /// A logfmt value: bare when it is plain, else in quotes with `"` and `\` escaped, and
    /// escaped by the rule.
    // Inlinable: every request writes five values, and the call through the strings' bytes
    // costs more than the value itself when it cannot be inlined into the caller's module.
    @inlinable @inline(__always)
    public mutating func value(_ value: String) {
        withUTF8Bytes(of: value) { self.value($0, nil, UnsafeBufferPointer(start: nil, count: 0)) }
    }

    /// Two parts joined by `separator` as one value (the audit line's endpoint: method and path).
    @inlinable @inline(__always)
    public mutating func value(_ first: String, joinedBy separator: UInt8, _ second: String) {
        withUTF8Bytes(of: first) { first in
            withUTF8Bytes(of: second) { second in self.value(first, separator, second) }
        }
    }

    /// What a byte asks of the text it is in: `unsafe`, quotes around a value (a space or `=`
    /// would split the field, and what is escaped is kept together); `unplain`, a backslash
    /// before it in quotes; `escape`, a look at the character it starts (control characters,
    /// non-ASCII).
    @usableFromInline
    enum ByteClass {
        @usableFromInline static let unsafe: UInt8 = 1
        @usableFromInline static let unplain: UInt8 = 2
        @usableFromInline static let escape: UInt8 = 4
    }

    private static let byteClasses: [UInt8] = (0...255).map { byte in
        switch byte {
        case 0x22, 0x5C: ByteClass.unsafe | ByteClass.unplain
        case 0x20, 0x3D: ByteClass.unsafe
        case 0..<0x20, 0x7F...: ByteClass.unsafe | ByteClass.escape
        default: 0
        }
    }

    /// The union of the classes of `bytes`: one pass, through the table.
    @usableFromInline
    static func classes(of bytes: UnsafeBufferPointer<UInt8>) -> UInt8 {
        byteClasses.withUnsafeBufferPointer { table in
            var union: UInt8 = 0
            for byte in bytes { union |= table[Int(byte)] }
            return union
        }
    }

    @usableFromInline
    mutating func value(
        _ value: UnsafeBufferPointer<UInt8>, _ separator: UInt8?, _ second: UnsafeBufferPointer<UInt8>
    ) {
        let classes = Self.classes(of: value) | Self.classes(of: second)
        if separator == nil, !value.isEmpty, classes & ByteClass.unsafe == 0 {
            out.bytes(value)
            return
        }
        out.byte(UInt8(ascii: "\""))
        // Usually nothing inside the quotes needs escaping (a path, the endpoint): one copy each.
        if classes & (ByteClass.unplain | ByteClass.escape) == 0 {
            out.bytes(value)
            if let separator {
                out.byte(separator)
                out.bytes(second)
            }
        } else {
            escape(value, quoted: true)
            if let separator {
                out.byte(separator)
                escape(second, quoted: true)
            }
        }
        out.byte(UInt8(ascii: "\""))
    }

    /// Writes `bytes` by the rule, and in quotes with `"` and `\` escaped.
    mutating func escape(_ bytes: UnsafeBufferPointer<UInt8>, quoted: Bool) {
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            let length = Self.characterLength(bytes, at: index)
            if length == 0 {
                out.byte(UInt8(ascii: "\\"))
                out.byte(UInt8(ascii: "x"))
                out.hex(byte)
                index += 1
                continue
            }
            if quoted, byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "\\") { out.byte(UInt8(ascii: "\\")) }
            out.bytes(UnsafeBufferPointer(rebasing: bytes[index..<(index + length)]))
            index += length
        }
    }

    /// The length of the printable character that starts at `index`, or 0 when that byte must
    /// be escaped: a control character, or not the start of a valid UTF-8 sequence (RFC 3629:
    /// no overlong forms, no surrogates, nothing past U+10FFFF).
    static func characterLength(_ bytes: UnsafeBufferPointer<UInt8>, at index: Int) -> Int {
        let lead = bytes[index]
        if lead < 0x20 || lead == 0x7F { return 0 }
        if lead < 0x80 { return 1 }
        func continuation(_ offset: Int, _ range: ClosedRange<UInt8> = 0x80...0xBF) -> Bool {
            index + offset < bytes.count && range.contains(bytes[index + offset])
        }
        switch lead {
        case 0xC2:  // U+0080 to U+00BF, of which U+0080 to U+009F are C1 controls
            return continuation(1, 0xA0...0xBF) ? 2 : 0
        case 0xC3...0xDF:
            return continuation(1) ? 2 : 0
        case 0xE0:
            return continuation(1, 0xA0...0xBF) && continuation(2) ? 3 : 0
        case 0xED:  // not the surrogates U+D800 to U+DFFF
            return continuation(1, 0x80...0x9F) && continuation(2) ? 3 : 0
        case 0xE1...0xEF:
            return continuation(1) && continuation(2) ? 3 : 0
        case 0xF0:
            return continuation(1, 0x90...0xBF) && continuation(2) && continuation(3) ? 4 : 0
        case 0xF1...0xF3:
            return continuation(1) && continuation(2) && continuation(3) ? 4 : 0
        case 0xF4:  // up to U+10FFFF
            return continuation(1, 0x80...0x8F) && continuation(2) && continuation(3) ? 4 : 0
        default:  // a continuation byte alone, C0, C1, F5 to FF: never a lead
            return 0
        }
    }
}
