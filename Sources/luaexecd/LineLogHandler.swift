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
/// metadata sorted by key, values as logfmt writes them (`LogLine.value`).
struct LineLogHandler: LogHandler {
    let label: String
    /// The label as every line writes it.
    let labelText: LogLine.Text
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
        labelText = LogLine.Text(label)
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let message = event.message.description
        var fields: [(key: String, value: String)] = []
        if !metadata.isEmpty || event.metadata?.isEmpty == false {
            let all = metadata.merging(event.metadata ?? [:]) { _, new in new }
            fields = all.keys.sorted().map { ($0, all[$0]!.description) }
        }
        // The line may be made under the lock of the held lines: only formatting happens there.
        Self.write(level: event.level, label: labelText) { out in
            out.text(message)
            for field in fields {
                out.literal(" ")
                out.text(field.key)
                out.literal("=")
                out.value(field.value)
            }
        }
    }

    /// Writes one line. Every line of luaexecd's log is made here, through a `LogLine`, which
    /// lets nothing a client or a script sent forge another line. ExecService hands its audit
    /// lines (one per request) straight here, as a writer of their fields: no String, no log
    /// event, no array of their own (`ExecService.auditLines`).
    static func write(level: Logger.Level, label: LogLine.Text, message: (inout LogLine) -> Void) {
        func line(_ out: inout [UInt8]) {
            LogLine.append(to: &out) { out in
                out.timeNow()
                out.literal(" ")
                out.literal(name(of: level))
                out.literal(" ")
                out.text(label)
                out.literal(": ")
                message(&out)
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
}
