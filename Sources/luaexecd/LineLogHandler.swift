import Logging
import Synchronization
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// Writes each log record as one line to standard error with a single `write(2)`: no lock, no
/// time-zone lookup (UTC). Lines from concurrent threads do not interleave: each is one write.
/// On the transport's threads, info lines (the audit line of every request, SPEC O2) are held
/// and written together once per batch of requests, before their answers (`HeldLines`).
///
/// Format: `2026-11-27T07:10:00.123Z info luaexecd: request client=127.0.0.1 id=... status=200`,
/// metadata sorted by key; values with spaces or quotes are quoted.
struct LineLogHandler: LogHandler {
    let label: String
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    /// One level for every logger of the process, so that a config reload changes them all.
    private static let level = Atomic(Logger.Level.allCases.firstIndex(of: .info)!)

    static func setLevel(_ level: Logger.Level) {
        Self.level.store(Logger.Level.allCases.firstIndex(of: level)!, ordering: .relaxed)
    }

    var logLevel: Logger.Level {
        get { Logger.Level.allCases[Self.level.load(ordering: .relaxed)] }
        set { Self.setLevel(newValue) }
    }

    init(label: String) {
        self.label = label
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        // Built as bytes, without interpolation: the audit line of every request passes here.
        var line: [UInt8] = []
        line.reserveCapacity(256)
        Self.appendTimestamp(to: &line)
        line.append(UInt8(ascii: " "))
        line += Self.name(of: event.level).utf8
        line.append(UInt8(ascii: " "))
        line += label.utf8
        line += ": ".utf8
        line += event.message.description.utf8
        if !metadata.isEmpty || event.metadata?.isEmpty == false {
            var all = metadata
            if let extra = event.metadata { all.merge(extra) { _, new in new } }
            for key in all.keys.sorted() {
                line.append(UInt8(ascii: " "))
                line += key.utf8
                line.append(UInt8(ascii: "="))
                line += Self.quoted(all[key]!.description).utf8
            }
        }
        line.append(UInt8(ascii: "\n"))
        // Audit lines (info) wait for the batch of requests they belong to, when the transport
        // holds them (`HeldLines`); anything more important goes out at once, after what was
        // held, so that the log keeps its order.
        if event.level <= .info, HeldLines.appendIfHolding(line) { return }
        HeldLines.current?.flush()
        StandardError.write(bytes: line)
    }

    static func name(of level: Logger.Level) -> String {
        switch level {
        case .trace: "trace"
        case .debug: "debug"
        case .info: "info"
        case .notice: "notice"
        case .warning: "warning"
        case .error: "error"
        case .critical: "critical"
        }
    }

    static func quoted(_ value: String) -> String {
        let plain = !value.isEmpty && !value.utf8.contains { byte in
            byte == UInt8(ascii: " ") || byte == UInt8(ascii: "\"") || byte == UInt8(ascii: "=") || byte < 0x20
        }
        guard !plain else { return value }
        var escaped = "\""
        for character in value {
            switch character {
            case "\"": escaped += "\\\""
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            case "\t": escaped += "\\t"
            default: escaped.append(character)
            }
        }
        return escaped + "\""
    }

    /// `2026-11-27T07:10:00.123Z`, in UTC.
    static func appendTimestamp(to out: inout [UInt8]) {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        var seconds = now.tv_sec
        var parts = tm()
        gmtime_r(&seconds, &parts)
        func digits(_ value: Int, _ count: Int) {
            var divisor = 1
            for _ in 1..<count { divisor *= 10 }
            while divisor > 0 {
                out.append(UInt8(ascii: "0") + UInt8(value / divisor % 10))
                divisor /= 10
            }
        }
        digits(Int(parts.tm_year) + 1900, 4)
        out.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mon) + 1, 2)
        out.append(UInt8(ascii: "-"))
        digits(Int(parts.tm_mday), 2)
        out.append(UInt8(ascii: "T"))
        digits(Int(parts.tm_hour), 2)
        out.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_min), 2)
        out.append(UInt8(ascii: ":"))
        digits(Int(parts.tm_sec), 2)
        out.append(UInt8(ascii: "."))
        digits(now.tv_nsec / 1_000_000, 3)
        out.append(UInt8(ascii: "Z"))
    }
}
