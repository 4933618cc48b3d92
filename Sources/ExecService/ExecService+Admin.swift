#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import AccessControl
import HTTPCore
import LuaRuntime
import SystemSupport

/// The admin API (SPEC M1–M4, V4, V5), for tokens with the `admin` scope. Answers are JSON.
extension ExecService {
    func statusJSON() -> String {
        let status = executor.status
        var json = JSONWriter()
        json.raw("{\"version\":")
        json.string(Self.version)
        json.raw(",\"uptime_s\":")
        json.raw(String(Int64(MonotonicInstant.now().duration(since: started).components.seconds)))
        json.raw(",\"requests\":{")
        for (index, entry) in outcomes.snapshot.sorted(by: { $0.key < $1.key }).enumerated() {
            if index > 0 { json.raw(",") }
            json.string(entry.key)
            json.raw(":\(entry.value)")
        }
        json.raw("},\"queue_length\":\(status.queueLength),\"memory_bytes\":\(status.memoryInUse),\"running\":")
        if let running = status.running {
            json.raw("{\"token\":")
            if let label = running.label { json.string(label) } else { json.raw("null") }
            json.raw(",\"elapsed_ms\":" + EvaluationRenderer.milliseconds(running.elapsed) + "}")
        } else {
            json.raw("null")
        }
        // Requests whose chunk waits in sleep (SPEC V10): whose, how long since they arrived,
        // how long until they go on.
        json.raw(",\"waiting\":[")
        for (index, waiting) in status.waiting.enumerated() {
            if index > 0 { json.raw(",") }
            json.raw("{\"id\":\(waiting.id),\"token\":")
            if let label = waiting.label { json.string(label) } else { json.raw("null") }
            json.raw(",\"since_ms\":" + EvaluationRenderer.milliseconds(waiting.since))
            json.raw(",\"resumes_in_ms\":" + EvaluationRenderer.milliseconds(waiting.until) + ",\"why\":\"sleep\"}")
        }
        json.raw("]")
        // Saved entries the state could not load (SPEC V6), until an administrator removes them.
        json.raw(",\"set_aside\":[")
        for (index, entry) in ((try? stateStore?.setAside()) ?? []).enumerated() {
            if index > 0 { json.raw(",") }
            json.raw("{\"id\":\(entry.id),\"section\":")
            json.string(entry.section)
            json.raw(",\"key\":")
            json.string(entry.key)
            json.raw(",\"bytes\":\(entry.bytes),\"reason\":")
            json.string(entry.reason)
            json.raw(",\"since\":")
            json.string(UTCTime.iso8601(secondsSince1970: entry.setAsideAt.timeIntervalSince1970))
            json.raw("}")
        }
        json.raw("]}")
        return String(decoding: json.bytes, as: UTF8.self)
    }

    /// `POST /api/v1/admin/interrupt` (SPEC M2): the running chunk; with `?id=N`, the request
    /// waiting in `sleep` that the status lists with that id (SPEC V10); with `?key=K`, the
    /// evaluation sent with `Lua-Interrupt-Key: K`, running or waiting.
    func interrupt(_ call: Call) -> Reply {
        let pairs = QueryString.pairs(in: call.head.query).filter { $0.name != "AuthToken" }
        // A misspelt parameter (`Key=`) must not fall through to ending whatever runs.
        if let other = pairs.first(where: { $0.name != "key" && $0.name != "id" }) {
            return .answer(Self.plain(400, "unknown parameter '\(other.name)': give id=N or key=K, or nothing\n", json: true))
        }
        if pairs.contains(where: { $0.name == "key" }) {
            guard !pairs.contains(where: { $0.name == "id" }) else {
                return .answer(Self.plain(400, "give id or key, not both\n", json: true))
            }
            return interrupt(keyIn: pairs, ownedBy: nil)
        }
        let ids = pairs.filter { $0.name == "id" }
        guard let given = ids.first else {
            return .answer(Self.json(200, "{\"interrupted\":\(executor.interruptRunning())}"))
        }
        guard ids.count == 1, let id = UInt64(String(decoding: given.value, as: UTF8.self)) else {
            return .answer(Self.plain(400, "give one id: the number the status lists for a waiting request\n", json: true))
        }
        return .answer(Self.json(200, "{\"interrupted\":\(executor.interruptWaiting(id: id))}"))
    }

    /// `POST /api/v1/console/interrupt?key=K` (any token): the evaluation this token sent with
    /// `Lua-Interrupt-Key: K`, running, waiting in `sleep` or queued. A console's stop button for
    /// a token without `admin` (an endpoint's or an action's too): it ends that token's own
    /// evaluations only.
    func consoleInterrupt(_ call: Call) -> Reply {
        let pairs = QueryString.pairs(in: call.head.query).filter { $0.name != "AuthToken" }
        if let other = pairs.first(where: { $0.name != "key" }) {
            return .answer(Self.plain(400, "unknown parameter '\(other.name)': give key=K\n", json: true))
        }
        return interrupt(keyIn: pairs, ownedBy: call.identity.name)
    }

    /// Ends the evaluation named by the `key` among `pairs` (of `owner`'s, when given).
    private func interrupt(keyIn pairs: [(name: String, value: [UInt8], raw: Substring)], ownedBy owner: String?) -> Reply {
        let keys = pairs.filter { $0.name == "key" }
        guard keys.count == 1, let key = keys.first.map({ String(decoding: $0.value, as: UTF8.self) }), Self.isInterruptKey(key)
        else {
            return .answer(Self.plain(400, "give one key: \(Self.interruptKeyRule), as sent in Lua-Interrupt-Key\n", json: true))
        }
        return .answer(Self.json(200, "{\"interrupted\":\(executor.interrupt(key: key, label: owner))}"))
    }

    /// Who registered a name or set a timer, as the registry's JSON has it.
    static func write(_ origin: EndpointRegistry.Origin, to json: inout JSONWriter) {
        switch origin {
        case .script(let path, let line):
            json.raw("{\"script\":")
            json.string(path)
            json.raw(",\"line\":\(line)}")
        case .storedScript(let name, let version, let line):
            // `script` and `line` as for an init script, so that a reader that knows only
            // those still names it; `version` says it is a stored one (docs/scripts.md).
            json.raw("{\"script\":")
            json.string(name)
            json.raw(",\"line\":\(line),\"version\":\(version)}")
        case .token(let name):
            json.raw("{\"token\":")
            if let name { json.string(name) } else { json.raw("null") }
            json.raw("}")
        }
    }

    /// The registry of SPEC V4, as `GET /api/v1/admin/endpoints` answers it and luaexecd
    /// publishes it for `luaexec endpoints`:
    /// `{"interactive":true,"actions":false,"endpoints":[{"name":...,"kind":"endpoint"|"action",
    /// "registered_by":{"script":...,"line":N}|{"token":...},"since":"...Z","calls":N,"errors":N,
    /// "source_sha256":...}, ...]}`; actions add `help` and `params`.
    public func endpointsJSON() -> String {
        let options = options
        var json = JSONWriter()
        json.raw("{\"interactive\":\(options.interactive),\"actions\":\(options.actions),\"endpoints\":[")
        for (index, entry) in executor.registry.entries.enumerated() {
            if index > 0 { json.raw(",") }
            json.raw("{\"name\":")
            json.string(entry.name)
            json.raw(",\"kind\":")
            json.string(entry.kind.rawValue)
            json.raw(",\"registered_by\":")
            Self.write(entry.origin, to: &json)
            json.raw(",\"since\":")
            json.string(UTCTime.iso8601(secondsSince1970: entry.since.timeIntervalSince1970))
            json.raw(",\"calls\":\(entry.calls),\"errors\":\(entry.errors),\"source_sha256\":")
            if let digest = entry.sourceSHA256 { json.string(digest) } else { json.raw("null") }
            if entry.kind == .action { Self.writeHelpAndParameters(entry, to: &json) }
            json.raw("}")
        }
        // Timers (SPEC V9): `calls` counts their runs, as for an endpoint; `interval_seconds`
        // is null for a timer.after; `due_in_ms` is 0 while a run is queued or running.
        let now = MonotonicInstant.now()
        for (index, timer) in executor.timers.entries.enumerated() {
            if index > 0 || !executor.registry.entries.isEmpty { json.raw(",") }
            json.raw("{\"name\":")
            json.string("timer \(timer.id)")
            json.raw(",\"kind\":\"timer\",\"registered_by\":")
            Self.write(timer.origin, to: &json)
            json.raw(",\"since\":")
            json.string(UTCTime.iso8601(secondsSince1970: timer.since.timeIntervalSince1970))
            json.raw(",\"calls\":\(timer.runs),\"errors\":\(timer.errors),\"source_sha256\":null")
            json.raw(",\"interval_seconds\":" + (timer.interval.map { "\($0)" } ?? "null"))
            let dueIn = timer.running || timer.due <= now ? Duration.zero : timer.due.duration(since: now)
            json.raw(",\"due_in_ms\":" + EvaluationRenderer.milliseconds(dueIn) + ",\"last_error\":")
            if let failure = timer.lastError {
                json.raw("{\"kind\":")
                json.string(failure.kind.rawValue)
                json.raw(",\"message\":")
                json.string(failure.message)
                json.raw("}")
            } else {
                json.raw("null")
            }
            json.raw("}")
        }
        json.raw("]}")
        return String(decoding: json.bytes, as: UTF8.self)
    }

    static func json(_ status: Int, _ body: String) -> Response {
        Response(
            status: status, headers: [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
            body: Array(body.utf8))
    }

}
