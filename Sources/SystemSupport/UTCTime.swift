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
        var out: [UInt8] = []
        appendDateTime(Int(secondsSince1970.rounded(.down)), to: &out)
        out.append(UInt8(ascii: "Z"))
        return String(decoding: out, as: UTF8.self)
    }

    /// `2026-12-01T12:00:00.123Z`: now, to the millisecond (log lines).
    public static func appendNowWithMilliseconds(to out: inout [UInt8]) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        // The date and time change once a second and every request logs a line: reuse them.
        let seconds = Int(now.tv_sec)
        let reused = lastSecond.withLock { last -> Bool in
            guard last.seconds == seconds else { return false }
            out.append(contentsOf: last.text)
            return true
        }
        if !reused {
            let start = out.count
            appendDateTime(seconds, to: &out)
            let text = Array(out[start...])
            lastSecond.withLock { $0 = (seconds, text) }
        }
        let millis = Int(now.tv_nsec) / 1_000_000
        out.append(UInt8(ascii: "."))
        appendDigits(millis, 3, to: &out)
        out.append(UInt8(ascii: "Z"))
    }

    private static let lastSecond = Mutex<(seconds: Int, text: [UInt8])>((-1, []))

    /// `2026-12-01T12:00:00`.
    private static func appendDateTime(_ seconds: Int, to out: inout [UInt8]) {
        var time = time_t(seconds)
        var parts = tm()
        gmtime_r(&time, &parts)
        appendDigits(Int(parts.tm_year) + 1900, 4, to: &out)
        out.append(UInt8(ascii: "-"))
        appendDigits(Int(parts.tm_mon) + 1, 2, to: &out)
        out.append(UInt8(ascii: "-"))
        appendDigits(Int(parts.tm_mday), 2, to: &out)
        out.append(UInt8(ascii: "T"))
        appendDigits(Int(parts.tm_hour), 2, to: &out)
        out.append(UInt8(ascii: ":"))
        appendDigits(Int(parts.tm_min), 2, to: &out)
        out.append(UInt8(ascii: ":"))
        appendDigits(Int(parts.tm_sec), 2, to: &out)
    }

    /// `value` in exactly `count` decimal digits (years 0–9999, the fields of a time).
    private static func appendDigits(_ value: Int, _ count: Int, to out: inout [UInt8]) {
        var divisor = 1
        for _ in 1..<count { divisor *= 10 }
        while divisor > 0 {
            out.append(UInt8(ascii: "0") + UInt8(value / divisor % 10))
            divisor /= 10
        }
    }
}
