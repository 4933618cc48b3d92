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
        var message = Array(event.message.description.utf8)
        if !metadata.isEmpty || event.metadata?.isEmpty == false {
            var all = metadata
            if let extra = event.metadata { all.merge(extra) { _, new in new } }
            for key in all.keys.sorted() {
                message.append(UInt8(ascii: " "))
                message += key.utf8
                message.append(UInt8(ascii: "="))
                message += Self.quoted(all[key]!.description).utf8
            }
        }
        Self.write(level: event.level, label: label) { $0.bytes(message) }
    }

    /// Writes one line. ExecService hands its audit lines (one per request) straight here, as
    /// a writer of their fields: no String, no log event, no array of their own
    /// (`ExecService.auditLines`).
    static func write(level: Logger.Level, label: String, message: (inout ByteWriter) -> Void) {
        func line(_ out: inout [UInt8]) {
            ByteWriter.append(to: &out) { out in
                UTCTime.writeNowWithMilliseconds(to: &out)
                out.byte(UInt8(ascii: " "))
                out.literal(name(of: level))
                out.byte(UInt8(ascii: " "))
                out.utf8(label)
                out.literal(": ")
                message(&out)
                out.byte(UInt8(ascii: "\n"))
            }
        }
        // Audit lines (info) wait for the batch of requests they belong to, when the transport
        // holds them (`HeldLines`); anything more important goes out at once, after what was
        // held, so that the log keeps its order.
        if level <= .info, HeldLines.appendIfHolding(writing: line) { return }
        HeldLines.current?.flush()
        var bytes: [UInt8] = []
        line(&bytes)
        StandardError.write(bytes: bytes)
    }

    static func name(of level: Logger.Level) -> StaticString {
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
}
