#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import Synchronization

/// Instants in UTC as ISO 8601 (`2026-12-01T12:00:00Z`), written with the C library: for the log
/// lines (one per request) and the JSON the daemon serves, without Foundation's calendar and
/// time-zone code (docs/packaging.md).
public enum UTCTime {
    /// `2026-12-01T12:00:00Z`: the instant `secondsSince1970` rounded down to the second, as
    /// Foundation's `Date.ISO8601FormatStyle()` writes it.
    public static func iso8601(secondsSince1970: Double) -> String {
        // Within years 0000 to 9999, the format's: a date read from a foreign database must
        // not trap converting to Int, nor print five-digit years.
        let seconds = secondsSince1970.isNaN ? 0 : min(max(secondsSince1970, -62_167_219_200), 253_402_300_799)
        let bytes = ByteWriter.bytes { out in
            writeDateTime(Int(seconds.rounded(.down)), to: &out)
            out.byte(UInt8(ascii: "Z"))
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// `2026-12-01T12:00:00.123Z`: now, to the millisecond (log lines).
    public static func writeNowWithMilliseconds(to out: inout ByteWriter) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        // The date and time change once a second and every request logs a line: reuse them.
        let seconds = Int(now.tv_sec)
        let cached = lastSecond.withLock { last in last.seconds == seconds ? last.text : nil }
        if let cached {
            out.bytes(cached)
        } else {
            let text = ByteWriter.bytes { writeDateTime(seconds, to: &$0) }
            lastSecond.withLock { $0 = (seconds, text) }
            out.bytes(text)
        }
        out.byte(UInt8(ascii: "."))
        out.digits(Int(now.tv_nsec) / 1_000_000, count: 3)
        out.byte(UInt8(ascii: "Z"))
    }

    private static let lastSecond = Mutex<(seconds: Int, text: [UInt8])>((-1, []))

    /// `2026-12-01T12:00:00`.
    private static func writeDateTime(_ seconds: Int, to out: inout ByteWriter) {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        out.digits(Int(parts.tm_year) + 1900, count: 4)
        out.byte(UInt8(ascii: "-"))
        out.digits(Int(parts.tm_mon) + 1, count: 2)
        out.byte(UInt8(ascii: "-"))
        out.digits(Int(parts.tm_mday), count: 2)
        out.byte(UInt8(ascii: "T"))
        out.digits(Int(parts.tm_hour), count: 2)
        out.byte(UInt8(ascii: ":"))
        out.digits(Int(parts.tm_min), count: 2)
        out.byte(UInt8(ascii: ":"))
        out.digits(Int(parts.tm_sec), count: 2)
    }
}
