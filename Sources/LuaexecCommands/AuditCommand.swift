import AccessControl
import ArgumentParser

#if canImport(Glibc)
    import Glibc
#endif

/// `luaexec audit`: the audit trail in the database (SPEC M7), on the box. docs/audit.md.
struct AuditCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "audit",
        abstract: "List the audit trail, and verify its chain.",
        discussion: """
            Every request luaexecd answers, and every change made with this command (tokens, \
            config, restore), is a record in the database, chained to the one before by an \
            HMAC-SHA-256 whose key is kept outside the database.
            """,
        subcommands: [List.self, Verify.self], defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Records, newest first, filtered.",
            discussion: """
                --since and --until take 2026-12-01, 2026-12-01T12:00:00Z (UTC) or a time ago: \
                90s, 30m, 12h, 7d. --outcome takes ok, error (an error kind or a status of 400 \
                and above) or one error kind (syntax, runtime, memory, timeout, interrupted, busy, \
                auth, scope, throttled, ...).
                """)
        @OptionGroup var store: StoreOptions
        @Option(help: "Only this token's requests.") var token: String?
        @Option(help: "exec, endpoint, action, admin, metrics, console, whoami, other, cli, refused, gap or notice.") var kind: String?
        @Option(help: "From this time on.") var since: String?
        @Option(help: "Before this time.") var until: String?
        @Option(help: "Only this HTTP status.") var status: Int64?
        @Option(help: "ok, error, or an error kind.") var outcome: String?
        @Option(help: "Only records before this SEQ (the next page).") var before: Int64?
        @Option(help: "At most this many records.") var limit = 50
        @Flag(help: "One JSON object, as GET /api/v1/admin/audit answers.") var json = false

        func run() throws {
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            let millis = Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
            var filter = AuditTrail.Filter()
            func instant(_ text: String?, _ name: String) throws -> Int64? {
                guard let text else { return nil }
                guard let instant = AuditTrail.Filter.instant(text, now: millis) else {
                    throw ValidationError(
                        "--\(name): expected 2026-12-01, 2026-12-01T12:00:00Z or 30m, 7d; got '\(text)'")
                }
                return instant
            }
            filter.since = try instant(since, "since")
            filter.until = try instant(until, "until")
            filter.token = token
            filter.kind = kind
            filter.status = status
            filter.outcome = outcome
            filter.before = before
            guard limit >= 1 else { throw ValidationError("--limit: at least 1") }
            filter.limit = limit
            let (entries, more) = try AuditTrail(sharing: store.open()).records(filter)
            if json {
                print("{\"records\":[" + entries.map(\.json).joined(separator: ",") + "],\"more\":\(more)}")
                return
            }
            guard !entries.isEmpty else {
                print("no records")
                return
            }
            var rows = [["SEQ", "TIME", "KIND", "TOKEN", "CLIENT", "REQUEST", "STATUS", "OUTCOME", "MS", "DETAIL"]]
            for entry in entries {
                rows.append([
                    String(entry.seq), AuditEntry.iso8601(milliseconds: entry.at), entry.kind, entry.token ?? "-",
                    entry.client ?? "-", [entry.method, entry.path].compactMap { $0 }.joined(separator: " "),
                    entry.status.map(String.init) ?? "-",
                    entry.kind == "cli" || entry.kind == "notice" ? "-" : entry.outcome,
                    entry.durationMicros.map(AuditEntry.milliseconds) ?? "-", entry.detail ?? "",
                ])
            }
            print(TextTable.render(rows), terminator: "")
            if more, let last = entries.last {
                print("(older records match too: --before \(last.seq))")
            }
        }
    }

    struct Verify: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Check every record's HMAC and place; say where the chain breaks.",
            discussion: """
                Exit status 0: intact. 1: broken (the lines say where: a record changed or \
                inserted, records missing in the middle, at the start or at the end). 2: not \
                checked (no key, a key that cannot be read, or not the key the trail was sealed \
                with). The key: --audit-key, else audit.key beside the database, else \
                \(StoreOptions.systemAuditKey).
                """)
        @OptionGroup var store: StoreOptions
        @Option(name: .customLong("audit-key"), help: "The key file (default: see below).") var keyFile: String?
        @Flag(help: "One JSON object, as GET /api/v1/admin/audit/verify answers.") var json = false

        func run() throws {
            let trail = AuditTrail(sharing: try store.open())
            let key: AuditKey
            do {
                key = try AuditKey.load(path: store.auditKeyPath(keyFile))
            } catch {
                StandardErrorStream.write("luaexec: audit trail not checked: \(error)\n")
                throw ExitCode(2)
            }
            let result = try trail.verify(key: key)
            print(json ? result.json : result.text, terminator: json ? "\n" : "")
            switch result.outcome {
            case .intact: return
            case .broken: throw ExitCode(1)
            case .uncheckable: throw ExitCode(2)
            }
        }
    }
}
