/// Numbers and strings written straight into a byte buffer, for what every request formats (the
/// audit line, `Server-Timing`, the transport's response head): no intermediate strings.
public enum ByteFormat {
    public static func appendDecimal(_ value: Int, to out: inout [UInt8]) {
        if value < 0 {
            out.append(UInt8(ascii: "-"))
            // -(Int.min) overflows; no caller formats it, but it must not trap.
            appendDecimal(UInt(value.magnitude), to: &out)
        } else {
            appendDecimal(UInt(value), to: &out)
        }
    }

    public static func appendDecimal(_ value: UInt, to out: inout [UInt8]) {
        writeDecimal(value) { out.append($0) }
    }

    /// A string's bytes where they lie (appending its `utf8` view goes element by element).
    public static func appendUTF8(_ string: String, to out: inout [UInt8]) {
        var string = string
        string.withUTF8 { out.append(contentsOf: $0) }
    }

    /// A literal's bytes in one copy (appending `"…".utf8` goes element by element).
    public static func appendLiteral(_ literal: StaticString, to out: inout [UInt8]) {
        literal.withUTF8Buffer { out.append(contentsOf: $0) }
    }

    static func appendHex(_ byte: UInt8, to out: inout [UInt8]) {
        out.append(hexDigit(byte >> 4))
        out.append(hexDigit(byte & 0xF))
    }

    private static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }

    /// Milliseconds with microsecond precision, rounded to the nearest microsecond: `2.500`.
    static func appendMilliseconds(_ duration: Duration, to out: inout [UInt8]) {
        writeMilliseconds(duration) { out.append($0) }
    }

    /// `prefix` and the milliseconds as a string: a small one, stored inline without allocating,
    /// for `Server-Timing: lua;dur=0.042` on every response.
    static func milliseconds(_ duration: Duration, after prefix: StaticString) -> String {
        var length = prefix.utf8CodeUnitCount
        writeMilliseconds(duration) { _ in length += 1 }
        return String(unsafeUninitializedCapacity: length) { buffer in
            var count = 0
            prefix.withUTF8Buffer { for byte in $0 { buffer[count] = byte; count += 1 } }
            writeMilliseconds(duration) { buffer[count] = $0; count += 1 }
            return count
        }
    }

    private static func writeMilliseconds(_ duration: Duration, _ put: (UInt8) -> Void) {
        let (seconds, attoseconds) = duration.components
        // Durations here are elapsed times, at most hours: never negative, no overflow.
        let micros = max(0, seconds * 1_000_000 + (attoseconds + 500_000_000_000) / 1_000_000_000_000)
        writeDecimal(UInt(micros / 1000), put)
        put(UInt8(ascii: "."))
        let fraction = Int(micros % 1000)
        put(UInt8(ascii: "0") + UInt8(fraction / 100))
        put(UInt8(ascii: "0") + UInt8(fraction / 10 % 10))
        put(UInt8(ascii: "0") + UInt8(fraction % 10))
    }

    private static func writeDecimal(_ value: UInt, _ put: (UInt8) -> Void) {
        if value >= 10 { writeDecimal(value / 10, put) }
        put(UInt8(ascii: "0") + UInt8(value % 10))
    }
}
