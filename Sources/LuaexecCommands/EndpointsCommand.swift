import AccessControl
import ArgumentParser

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// `luaexec endpoints`: the endpoints and actions the running luaexecd's scripts registered
/// (SPEC V4), as `GET /api/v1/admin/endpoints` shows them. The registry lives in the daemon's
/// memory; luaexecd publishes it in its database, which this command reads.
struct EndpointsCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "endpoints",
        abstract: "List the endpoints and Action URLs that luaexecd's scripts registered.",
        discussion: """
            luaexecd publishes its registry in its database within a quarter of a second of a \
            change; call counts are refreshed every 10 seconds. A timer's next run is counted \
            from now, to the second.
            """)

    @OptionGroup var store: StoreOptions

    @Flag(help: "The JSON document that GET /api/v1/admin/endpoints answers, instead of a table.")
    var json = false

    struct Listing: Decodable {
        struct Origin: Decodable {
            var script: String?
            var line: Int?
            /// A stored script's version (docs/scripts.md); nil for an init script.
            var version: Int?
            var token: String?
        }
        struct Endpoint: Decodable {
            var name: String
            var kind: String
            var registered_by: Origin
            var since: String
            var calls: Int
            var errors: Int
            /// Timers (SPEC V9): the interval (nil: once), when the next run is due, the last error.
            var interval_seconds: Double?
            var due_in_ms: Double?
            var last_error: Failure?
        }
        struct Failure: Decodable {
            var kind: String
            var message: String
        }
        var interactive: Bool
        var actions: Bool
        var endpoints: [Endpoint]
    }

    func run() throws {
        let database = try store.open()
        guard let value = try PublishedInfo(sharing: database).value("endpoints") else {
            throw ValidationError(
                "luaexecd has published no endpoints in \(database.path): it is not running, or has not finished starting"
            )
        }
        // kill(pid, 0): ESRCH when no such process; EPERM still means it exists.
        if kill(value.pid, 0) != 0 && errno == ESRCH {
            StandardErrorStream.write(
                "luaexec: luaexecd (pid \(value.pid)) is not running: this is what it had registered at \(TokenListing.date(value.updatedAt))\n"
            )
        }
        if json {
            print(value.text)
            return
        }
        let listing = try JSONDecoder().decode(Listing.self, from: Data(value.text.utf8))
        print(Self.table(listing, age: max(0, Date().timeIntervalSince(value.updatedAt))), terminator: "")
    }

    /// The name, and for a timer when it runs and how its last failure went: `timer 3 (every
    /// 10 s, next in 4.2 s; last error: runtime: boom)`. `age`: how long ago luaexecd published
    /// the listing (its runs' counts are published every 10 s at most, Maintenance).
    static func name(_ entry: Listing.Endpoint, age: Double = 0) -> String {
        guard entry.kind == "timer" else { return entry.name }
        var when = entry.interval_seconds.map { "every \(seconds($0)) s" } ?? "once"
        if let due = entry.due_in_ms {
            when += ", next in \(seconds(nextRun(dueIn: due / 1000, every: entry.interval_seconds, age: age))) s"
        }
        if let failure = entry.last_error { when += "; last error: \(failure.kind): \(failure.message)" }
        return "\(entry.name) (\(when))"
    }

    /// Seconds until a timer's next run, now: what the listing said (`dueIn`, when it was
    /// published `age` seconds ago) less its age, a repeating timer's later runs counted on by
    /// its interval. Whole seconds once the listing is older than one (its time is stored in
    /// whole seconds); never below 0 (a `timer.after` past its time is about to run).
    static func nextRun(dueIn: Double, every interval: Double?, age: Double) -> Double {
        guard age >= 1 else { return dueIn }
        var next = dueIn - age
        if let interval, interval > 0, next < 0 { next += (-next / interval).rounded(.up) * interval }
        return max(0, next.rounded())
    }

    private static func seconds(_ value: Double) -> String {
        value == value.rounded() ? String(Int(value)) : String((value * 10).rounded() / 10)
    }

    static func table(_ listing: Listing, age: Double = 0) -> String {
        let header = ["KIND", "NAME", "REGISTERED BY", "SINCE", "CALLS", "ERRORS"]
        let rows = listing.endpoints.map { entry in
            let origin: String
            if let script = entry.registered_by.script, let version = entry.registered_by.version {
                origin = "script " + script + " v" + String(version) + ":" + String(entry.registered_by.line ?? 0)
            } else if let script = entry.registered_by.script {
                origin = script + ":" + String(entry.registered_by.line ?? 0)
            } else {
                origin = "token " + (entry.registered_by.token ?? "-")
            }
            return [entry.kind, name(entry, age: age), origin, entry.since, String(entry.calls), String(entry.errors)]
        }
        var text = TextTable.render([header] + rows)
        text +=
            "interactive.lua: \(listing.interactive ? "on" : "off"); Action URLs: \(listing.actions ? "on" : "off (exec.actions)")\n"
        return text
    }
}

/// Messages that are not the command's output.
enum StandardErrorStream {
    static func write(_ text: String) {
        var bytes = Array(text.utf8)
        _ = bytes.withUnsafeMutableBytes { Glibc.write(2, $0.baseAddress, $0.count) }
    }
}
