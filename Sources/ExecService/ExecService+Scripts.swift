import AccessControl
import HTTPCore
import LuaRuntime
import SystemSupport

/// Stored scripts over HTTP (SPEC V8, M6), for tokens with the `admin` scope: scripts kept in
/// the database with their history, run after the init directory's files at start and at reset.
///
///   GET    /api/v1/admin/scripts                   {"scripts":[record, ...]}
///   GET    /api/v1/admin/scripts/<name>            the source (text), or the record with
///                                                  "source" (Accept: application/json)
///   GET    /api/v1/admin/scripts/<name>/versions   {"name":...,"current":N,"versions":[...]}
///   PUT    /api/v1/admin/scripts/<name>            the source as the body: 201 (new script) or
///                                                  200 (new version, or unchanged), 400 syntax,
///                                                  422 the run failed (E6's error): nothing kept
///   POST   /api/v1/admin/scripts/<name>/check      the body compiled only (E12): nothing kept
///   DELETE /api/v1/admin/scripts/<name>
///   POST   /api/v1/admin/scripts/<name>/rollback   ?version=N, else the kept one before
///   POST   /api/v1/admin/scripts/<name>/enable     runs it: 422 and still disabled when it fails
///   POST   /api/v1/admin/scripts/<name>/disable
///
/// A record: `{"name","version","sha256","bytes","enabled","installed_by","installed_at",
/// "updated_by","updated_at","last_run":{...}|null,"registered":[{"kind","name"}]}`.
///
/// Every change is a job on the state, in arrival order with every request: the run, the store
/// write and the withdrawal of what the previous version registered happen in that one job, so
/// two administrators installing the same name are served one after the other, each whole, and
/// each answer names the version it left current. Each change's audit record names the token
/// (as every record does) and, in `detail`, the script, its version and its SHA-256.
extension ExecService {
    // MARK: Reading

    func scriptListing() -> Response {
        guard let scriptStore else { return Self.noScriptStore }
        do {
            let registry = executor.registry
            var json = JSONWriter()
            json.raw("{\"scripts\":[")
            for (index, script) in try scriptStore.list().enumerated() {
                if index > 0 { json.raw(",") }
                Self.write(script, registry: registry, timers: executor.timers, to: &json)
            }
            json.raw("]}")
            return Self.json(200, json)
        } catch {
            return Self.scriptStoreFailure(error)
        }
    }

    func scriptSource(_ call: Call) -> Response {
        if call.rest.isEmpty { return scriptListing() }
        let scriptStore: ScriptStore, name: String
        switch scriptTarget(call) {
        case .refused(let refusal): return refusal
        case .named(let store, let named): (scriptStore, name) = (store, named)
        }
        do {
            guard let script = try scriptStore.script(named: name) else { return Self.noScript(name) }
            var source = script.source
            var version: ScriptVersion?
            if let asked = QueryString.values(of: "version", in: call.head.query).last {
                guard let number = Int(asked), number > 0 else {
                    return Self.plain(400, "version: expected a version number, got '\(asked)'\n", json: true)
                }
                guard let kept = try scriptStore.versions(of: name).first(where: { $0.version == number }),
                    let keptSource = try scriptStore.source(of: name, version: number)
                else { return try Self.notKept(number, of: name, in: scriptStore) }
                version = kept
                source = keptSource
            }
            let sha256 = version?.sha256 ?? script.sha256
            var response: Response
            if call.json {
                var json = JSONWriter()
                if let version {
                    Self.write(version, current: script.version, to: &json, closing: false)
                } else {
                    Self.write(script, registry: executor.registry, timers: executor.timers, to: &json, closing: false)
                }
                json.raw(",\"source\":")
                json.luaString(source)
                json.raw("}")
                response = Self.json(200, json)
            } else {
                response = Response(
                    status: 200,
                    headers: [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")],
                    body: source)
            }
            response.headers.append(("ETag", "\"\(sha256)\""))
            return response
        } catch {
            return Self.scriptStoreFailure(error)
        }
    }

    func scriptVersions(_ call: Call) -> Response {
        let scriptStore: ScriptStore, name: String
        switch scriptTarget(call) {
        case .refused(let refusal): return refusal
        case .named(let store, let named): (scriptStore, name) = (store, named)
        }
        do {
            guard let script = try scriptStore.script(named: name) else { return Self.noScript(name) }
            var json = JSONWriter()
            json.raw("{\"name\":")
            json.string(name)
            json.raw(",\"current\":\(script.version),\"enabled\":\(script.enabled),\"versions\":[")
            for (index, version) in try scriptStore.versions(of: name).enumerated() {
                if index > 0 { json.raw(",") }
                Self.write(version, current: script.version, to: &json)
            }
            json.raw("]}")
            return Self.json(200, json)
        } catch {
            return Self.scriptStoreFailure(error)
        }
    }

    // MARK: Changing, on the state

    func putScript(_ call: Call, audit: inout AuditRecord) -> Reply {
        let scriptStore: ScriptStore, name: String
        switch scriptTarget(call) {
        case .refused(let refusal): return .answer(refusal)
        case .named(let store, let named): (scriptStore, name) = (store, named)
        }
        let source: [UInt8]
        switch wholeBody(call.body, json: true) {
        case .refused(let refusal): return .answer(refusal)
        case .read(let bytes): source = bytes
        }
        audit.body = source
        guard !source.isEmpty else {
            return .answer(
                Self.plain(400, "send the script's Lua source as the body (DELETE removes a script)\n", json: true))
        }
        // `?enabled=false`: stored as the new current version, disabled, and not run (a fleet
        // tool rolling out a script meant to stay off must not run it once on the way).
        // Any other parameter is refused: a misspelt `?enable=false` must not install and run.
        if let other = QueryString.pairs(in: call.head.query).first(where: { $0.name != "enabled" && $0.name != "AuthToken" }) {
            return .answer(Self.plain(400, "unknown parameter '\(other.name)': a PUT takes enabled=false, or nothing\n", json: true))
        }
        var enable = true
        let enabled = QueryString.values(of: "enabled", in: call.head.query)
        if let value = enabled.first {
            guard enabled.count == 1, value == "true" || value == "false" else {
                return .answer(Self.plain(
                    400,
                    "enabled: expected one value, true or false (false stores the script disabled, without running it), got '\(enabled.joined(separator: "', '"))'\n",
                    json: true))
            }
            enable = value == "true"
        }
        let precondition = Precondition(call.head)
        let sha256 = ScriptStore.sha256(source)
        let (options, token) = (options, call.identity.name)
        return .onState(label: token) { [self] vm, audit in
            do {
                let current = try scriptStore.script(named: name)
                if let refusal = precondition.refusal(name, current, registry: vm.registry, timers: vm.timers) {
                    audit.detail = "script put \(name) precondition failed sha256=\(sha256)"
                    return refusal
                }
                if let current, current.sha256 == sha256, enable || !current.enabled {
                    audit.detail = "script put \(name) unchanged version=\(current.version) sha256=\(sha256)"
                    return Self.changeAnswer(
                        200, current, registry: vm.registry, timers: vm.timers, run: nil, withdrawn: [], changed: false)
                }
                if !enable {
                    return try putDisabled(
                        name: name, source: source, sha256: sha256, current: current, token: token, store: scriptStore,
                        vm: vm, audit: &audit)
                }
                let version = try scriptStore.nextVersion(of: name)
                var installed: StoredScript?
                let outcome = vm.runStoredScript(
                    StoredScriptSource(name: name, version: version, source: source),
                    guarded: { run in executor.initRunner.run(vm, limit: options.scriptTimeLimit, run) },
                    keep: {
                        installed = try scriptStore.install(
                            name: name, version: version, source: source, by: token, keep: options.keepVersions)
                    })
                return answer(
                    outcome, change: "put", name: name, version: version, sha256: sha256, token: token,
                    created: current == nil, kept: installed, store: scriptStore, vm: vm, audit: &audit)
            } catch {
                return Self.scriptStoreFailure(error)
            }
        }
    }

    /// `PUT …/<name>?enabled=false`, on the state: compiled as an install compiles it (a syntax
    /// error stores nothing and is 400), then stored as the current version, disabled, without
    /// running; what the version before it registered is withdrawn, as a disable withdraws it.
    /// The same source as the current, enabled version: that version disabled, no new one.
    private func putDisabled(
        name: String, source: [UInt8], sha256: String, current: StoredScript?, token: String, store: ScriptStore,
        vm: LuaVM, audit: inout AuditRecord
    ) throws(StoreError) -> Response {
        var version = current?.version ?? 0
        let stored: StoredScript
        if let current, current.sha256 == sha256 {
            stored = try store.setEnabled(false, name: name, by: token)
        } else {
            version = try store.nextVersion(of: name)
            let chunkName = StoredScriptSource(name: name, version: version, source: []).chunkName
            let compiled = LuaSyntax.check(
                StoredScriptSource.compiled(source), chunkName: chunkName, timeLimit: options.scriptTimeLimit)
            if case .failure = compiled.outcome {
                return answer(
                    .failed(compiled), change: "put", name: name, version: version, sha256: sha256, token: token,
                    created: current == nil, kept: nil, store: store, vm: vm, audit: &audit)
            }
            stored = try store.install(
                name: name, version: version, source: source, by: token, keep: options.keepVersions, enabled: false)
        }
        let withdrawn = vm.withdrawStoredScript(named: name)
        audit.detail = "script put \(name) version=\(version) sha256=\(sha256) disabled"
        logger.notice(
            "script installed disabled, not run",
            metadata: ["script": "\(name)", "version": "\(version)", "sha256": "\(sha256)", "by": "\(token)"])
        return Self.changeAnswer(
            current == nil ? 201 : 200, stored, registry: vm.registry, timers: vm.timers, run: nil,
            withdrawn: withdrawn, changed: true)
    }

    /// `POST …/<name>/check`: the body compiled as an install would compile it, under the
    /// script's own name (SPEC E12's answer), after the request is handed over; nothing runs,
    /// nothing is stored, no job waits for the state. A dry run (Ansible's check mode): a
    /// luaexecd that predates it answers 405, never an install.
    func checkScript(_ call: Call, audit: inout AuditRecord) -> Reply {
        let name: String
        switch scriptTarget(call) {
        case .refused(let refusal): return .answer(refusal)
        case .named(_, let named): name = named
        }
        let source: [UInt8]
        switch wholeBody(call.body, json: true) {
        case .refused(let refusal): return .answer(refusal)
        case .read(let bytes): source = bytes
        }
        audit.body = source
        audit.detail = "script check \(name) sha256=\(ScriptStore.sha256(source))"
        let chunkName = StoredScriptSource(name: name, version: 0, source: []).chunkName
        return .later { [self] audit in
            check(
                Self.syntaxCheck, chunk: StoredScriptSource.compiled(source), chunkName: chunkName, json: true,
                script: true, audit: &audit)
        }
    }

    func enableScript(_ call: Call, audit: inout AuditRecord) -> Reply {
        let scriptStore: ScriptStore, name: String
        switch scriptTarget(call) {
        case .refused(let refusal): return .answer(refusal)
        case .named(let store, let named): (scriptStore, name) = (store, named)
        }
        let (limit, token) = (options.scriptTimeLimit, call.identity.name)
        return .onState(label: token) { [self] vm, audit in
            do {
                guard let script = try scriptStore.script(named: name) else { return Self.noScript(name) }
                if script.enabled {
                    audit.detail = "script enable \(name) unchanged version=\(script.version) sha256=\(script.sha256)"
                    return Self.changeAnswer(
                        200, script, registry: vm.registry, timers: vm.timers, run: nil, withdrawn: [], changed: false)
                }
                var enabled: StoredScript?
                let outcome = vm.runStoredScript(
                    StoredScriptSource(name: name, version: script.version, source: script.source),
                    guarded: { run in executor.initRunner.run(vm, limit: limit, run) },
                    keep: { enabled = try scriptStore.setEnabled(true, name: name, by: token) })
                return answer(
                    outcome, change: "enable", name: name, version: script.version, sha256: script.sha256, token: token,
                    created: false, kept: enabled, store: scriptStore, vm: vm, audit: &audit)
            } catch {
                return Self.scriptStoreFailure(error)
            }
        }
    }

    func rollbackScript(_ call: Call, audit: inout AuditRecord) -> Reply {
        let scriptStore: ScriptStore, name: String
        switch scriptTarget(call) {
        case .refused(let refusal): return .answer(refusal)
        case .named(let store, let named): (scriptStore, name) = (store, named)
        }
        var asked: Int?
        if let text = QueryString.values(of: "version", in: call.head.query).last {
            guard let number = Int(text), number > 0 else {
                return .answer(Self.plain(400, "version: expected a version number, got '\(text)'\n", json: true))
            }
            asked = number
        }
        let (limit, token) = (options.scriptTimeLimit, call.identity.name)
        return .onState(label: token) { [self] vm, audit in
            do {
                guard let script = try scriptStore.script(named: name) else { return Self.noScript(name) }
                let kept = try scriptStore.versions(of: name)
                let target: ScriptVersion
                if let asked {
                    guard let found = kept.first(where: { $0.version == asked }) else {
                        return try Self.notKept(asked, of: name, in: scriptStore)
                    }
                    target = found
                } else {
                    guard let previous = kept.first(where: { $0.version < script.version }) else {
                        return Self.plain(
                            409,
                            "\(name) is at version \(script.version), the oldest version kept: there is nothing to roll back to\n",
                            json: true)
                    }
                    target = previous
                }
                if target.version == script.version && script.enabled {
                    audit.detail = "script rollback \(name) unchanged version=\(script.version) sha256=\(script.sha256)"
                    return Self.changeAnswer(
                        200, script, registry: vm.registry, timers: vm.timers, run: nil, withdrawn: [], changed: false)
                }
                guard let source = try scriptStore.source(of: name, version: target.version) else {
                    return try Self.notKept(target.version, of: name, in: scriptStore)
                }
                var activated: StoredScript?
                let outcome = vm.runStoredScript(
                    StoredScriptSource(name: name, version: target.version, source: source),
                    guarded: { run in executor.initRunner.run(vm, limit: limit, run) },
                    keep: { activated = try scriptStore.activate(name: name, version: target.version, by: token) })
                return answer(
                    outcome, change: "rollback", name: name, version: target.version, sha256: target.sha256,
                    token: token,
                    created: false, kept: activated, store: scriptStore, vm: vm, audit: &audit,
                    from: script.version)
            } catch {
                return Self.scriptStoreFailure(error)
            }
        }
    }

    func disableScript(_ call: Call, audit: inout AuditRecord) -> Reply {
        let scriptStore: ScriptStore, name: String
        switch scriptTarget(call) {
        case .refused(let refusal): return .answer(refusal)
        case .named(let store, let named): (scriptStore, name) = (store, named)
        }
        let token = call.identity.name
        return .onState(label: token) { [self] vm, audit in
            do {
                guard let script = try scriptStore.script(named: name) else { return Self.noScript(name) }
                if !script.enabled {
                    audit.detail = "script disable \(name) unchanged version=\(script.version) sha256=\(script.sha256)"
                    return Self.changeAnswer(
                        200, script, registry: vm.registry, timers: vm.timers, run: nil, withdrawn: [], changed: false)
                }
                // The store first: should it fail, the script goes on serving and the answer says so.
                let disabled = try scriptStore.setEnabled(false, name: name, by: token)
                let withdrawn = vm.withdrawStoredScript(named: name)
                audit.detail = "script disable \(name) version=\(script.version) sha256=\(script.sha256)"
                logger.notice(
                    "script disabled",
                    metadata: ["script": "\(name)", "version": "\(script.version)", "by": "\(token)"])
                return Self.changeAnswer(
                    200, disabled, registry: vm.registry, timers: vm.timers, run: nil, withdrawn: withdrawn,
                    changed: true)
            } catch {
                return Self.scriptStoreFailure(error)
            }
        }
    }

    func deleteScript(_ call: Call, audit: inout AuditRecord) -> Reply {
        let scriptStore: ScriptStore, name: String
        switch scriptTarget(call) {
        case .refused(let refusal): return .answer(refusal)
        case .named(let store, let named): (scriptStore, name) = (store, named)
        }
        let token = call.identity.name
        return .onState(label: token) { [self] vm, audit in
            do {
                guard let script = try scriptStore.script(named: name) else { return Self.noScript(name) }
                try scriptStore.delete(name: name)
                let withdrawn = vm.withdrawStoredScript(named: name)
                audit.detail = "script delete \(name) version=\(script.version) sha256=\(script.sha256)"
                logger.notice(
                    "script deleted", metadata: ["script": "\(name)", "version": "\(script.version)", "by": "\(token)"])
                var json = JSONWriter()
                json.raw("{\"ok\":true,\"deleted\":")
                json.string(name)
                json.raw(",\"version\":\(script.version),\"sha256\":")
                json.string(script.sha256)
                json.raw(",\"withdrawn\":")
                Self.write(withdrawn, to: &json)
                json.raw("}")
                return Self.json(200, json)
            } catch {
                return Self.scriptStoreFailure(error)
            }
        }
    }

    /// The answer to a change that ran a version (put, enable, rollback), and its audit detail.
    private func answer(
        _ outcome: LuaVM.ScriptOutcome, change: String, name: String, version: Int, sha256: String, token: String,
        created: Bool, kept: StoredScript?, store: ScriptStore, vm: LuaVM, audit: inout AuditRecord, from: Int? = nil
    ) -> Response {
        let subject =
            "script \(change) \(name) version=\(version) sha256=\(sha256)" + (from.map { " from=\($0)" } ?? "")
        switch outcome {
        case .ran(let evaluation, let withdrawn):
            recordEvaluation(nanoseconds: evaluation.elapsedNanoseconds)
            audit.detail = subject
            logger.notice(
                "script \(change == "put" ? "installed" : change == "enable" ? "enabled" : "rolled back")",
                metadata: ["script": "\(name)", "version": "\(version)", "sha256": "\(sha256)", "by": "\(token)"])
            guard let kept else { return Self.scriptStoreFailure(StoreError("\(name) was not stored")) }
            return Self.changeAnswer(
                created ? 201 : 200, kept, registry: vm.registry, timers: vm.timers,
                run: EvaluationRenderer.json(evaluation).body, withdrawn: withdrawn, changed: true)
        case .failed(let evaluation):
            recordEvaluation(nanoseconds: evaluation.elapsedNanoseconds)
            guard case .failure(let failure) = evaluation.outcome else {
                return Self.plain(500, "no failure\n", json: true)
            }
            audit.errorKind = failure.kind.rawValue
            audit.detail = subject + " refused=\(failure.kind.rawValue)"
            logger.notice(
                "script not \(change == "put" ? "installed" : change == "enable" ? "enabled" : "rolled back"): its run failed",
                metadata: [
                    "script": "\(name)", "version": "\(version)", "kind": "\(failure.kind.rawValue)",
                    "error": "\(failure.message)", "by": "\(token)",
                ])
            // E6's error object, the output so far, and what stays current. A syntax error is
            // 400 as for any chunk; a run that failed is 422: the version was understood, and
            // refused for what it did.
            var rendered = EvaluationRenderer.json(evaluation).body
            rendered.removeLast()
            var json = JSONWriter()
            json.raw(String(decoding: rendered, as: UTF8.self))
            json.raw(",\"current\":")
            if let current = try? store.script(named: name) {
                Self.write(current, registry: vm.registry, timers: vm.timers, to: &json)
            } else {
                json.raw("null")
            }
            json.raw("}")
            var response = Self.json(failure.kind == .syntax ? 400 : 422, json)
            response.headers.append(("X-Lua-Error", failure.kind.rawValue))
            return response
        case .notKept(let evaluation, let error):
            recordEvaluation(nanoseconds: evaluation.elapsedNanoseconds)
            audit.errorKind = "store"
            audit.detail = subject + " refused=store"
            return Self.plain(
                500,
                "\(name) ran, but the database did not keep it (\(error)); what it registered is undone, and the "
                    + "version before it stays\n", json: true, kind: "store")
        case .notStarted:
            audit.errorKind = "stopping"
            audit.detail = subject + " refused=stopping"
            return busy(json: true, message: "luaexecd is stopping; \(name) did not run and nothing changed\n")
        }
    }

    // MARK: Answers

    static let noScriptStore = plain(404, "no script store\n", json: true)

    /// The store and the script a call names, or the answer that refuses them: no store, or a
    /// name against the rule (400 naming it). Every handler of a script starts here.
    enum ScriptTarget {
        case named(ScriptStore, String)
        case refused(Response)
    }

    func scriptTarget(_ call: Call) -> ScriptTarget {
        guard let scriptStore else { return .refused(Self.noScriptStore) }
        if let problem = ScriptStore.nameProblem(call.rest) { return .refused(Self.plain(400, problem + "\n", json: true)) }
        return .named(scriptStore, call.rest)
    }

    static func noScript(_ name: String) -> Response {
        plain(404, "no script named '\(name)'\n", json: true)
    }

    static func notKept(_ version: Int, of name: String, in store: ScriptStore) throws(StoreError) -> Response {
        let kept = try store.versions(of: name).map { String($0.version) }.reversed().joined(separator: ", ")
        return plain(404, "version \(version) of \(name) is not kept (kept: \(kept))\n", json: true)
    }

    static func scriptStoreFailure(_ error: any Error) -> Response {
        let notFound = (error as? StoreError)?.kind == .notFound
        return plain(notFound ? 404 : 500, "the script store failed: \(error)\n", json: true, kind: "store")
    }

    static func json(_ status: Int, _ json: JSONWriter) -> Response {
        Response(
            status: status, headers: [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
            body: json.bytes)
    }

    /// `{"ok":true,"changed":...,"script":record,"run":...,"withdrawn":[...]}`: `changed` is
    /// false when the request changed nothing (the same source, already enabled or disabled).
    static func changeAnswer(
        _ status: Int, _ script: StoredScript, registry: EndpointRegistry, timers: TimerSchedule, run: [UInt8]?,
        withdrawn: [EndpointRegistry.Registration], changed: Bool
    ) -> Response {
        var json = JSONWriter()
        json.raw("{\"ok\":true,\"changed\":\(changed),\"script\":")
        write(script, registry: registry, timers: timers, to: &json)
        json.raw(",\"run\":")
        if let run { json.raw(String(decoding: run, as: UTF8.self)) } else { json.raw("null") }
        json.raw(",\"withdrawn\":")
        write(withdrawn, to: &json)
        json.raw("}")
        var response = Self.json(status, json)
        response.headers.append(("ETag", "\"\(script.sha256)\""))
        return response
    }

    /// A script's record; `closing: false` leaves the object open for another field.
    static func write(
        _ script: StoredScript, registry: EndpointRegistry, timers: TimerSchedule, to json: inout JSONWriter,
        closing: Bool = true
    ) {
        json.raw("{\"name\":")
        json.string(script.name)
        json.raw(",\"version\":\(script.version),\"sha256\":")
        json.string(script.sha256)
        json.raw(",\"bytes\":\(script.source.count),\"enabled\":\(script.enabled),\"installed_by\":")
        json.string(script.installedBy)
        json.raw(",\"installed_at\":")
        json.string(UTCTime.iso8601(secondsSince1970: script.installedAt.timeIntervalSince1970))
        json.raw(",\"updated_by\":")
        json.string(script.updatedBy)
        json.raw(",\"updated_at\":")
        json.string(UTCTime.iso8601(secondsSince1970: script.updatedAt.timeIntervalSince1970))
        json.raw(",\"last_run\":")
        if let run = registry.lastRun(ofStoredScript: script.name) {
            json.raw("{\"version\":\(run.version),\"at\":")
            json.string(UTCTime.iso8601(secondsSince1970: run.at.timeIntervalSince1970))
            json.raw(",\"ok\":\(run.failure == nil),\"elapsed_ms\":")
            json.raw(EvaluationRenderer.milliseconds(nanoseconds: run.elapsedNanoseconds))
            if let failure = run.failure {
                json.raw(",\"error\":{\"kind\":")
                json.string(failure.kind.rawValue)
                json.raw(",\"message\":")
                json.string(failure.message)
                json.raw(",\"traceback\":")
                if let traceback = failure.traceback { json.string(traceback) } else { json.raw("null") }
                json.raw("}")
            }
            json.raw("}")
        } else {
            json.raw("null")
        }
        json.raw(",\"registered\":")
        write(
            registry.registrations(ofStoredScript: script.name),
            timers: timers.entries.filter { $0.origin.storedScriptName == script.name }, to: &json)
        if closing { json.raw("}") }
    }

    static func write(_ version: ScriptVersion, current: Int, to json: inout JSONWriter, closing: Bool = true) {
        json.raw("{\"version\":\(version.version),\"sha256\":")
        json.string(version.sha256)
        json.raw(",\"bytes\":\(version.bytes),\"installed_by\":")
        json.string(version.installedBy)
        json.raw(",\"installed_at\":")
        json.string(UTCTime.iso8601(secondsSince1970: version.installedAt.timeIntervalSince1970))
        json.raw(",\"current\":\(version.version == current)")
        if closing { json.raw("}") }
    }

    /// `[{"kind","name"}]`: endpoints and actions, then timers, named as the registry lists them
    /// (`timer 12`).
    static func write(
        _ registrations: [EndpointRegistry.Registration], timers: [TimerSchedule.Entry] = [], to json: inout JSONWriter
    ) {
        json.raw("[")
        for (index, registration) in registrations.enumerated() {
            if index > 0 { json.raw(",") }
            json.raw("{\"kind\":")
            json.string(registration.kind.rawValue)
            json.raw(",\"name\":")
            json.string(registration.name)
            json.raw("}")
        }
        for (index, timer) in timers.enumerated() {
            if index > 0 || !registrations.isEmpty { json.raw(",") }
            json.raw("{\"kind\":\"timer\",\"name\":")
            json.string("timer \(timer.id)")
            json.raw("}")
        }
        json.raw("]")
    }

    /// `If-Match` and `If-None-Match` on a PUT (RFC 9110 §13.1.1, §13.1.2), with the SHA-256 as
    /// the entity tag: an administrator who read version 3 installs over version 3 only, and
    /// learns which version is current otherwise (412 with the record).
    struct Precondition {
        /// The tags `If-Match` lists (`*`: any current version); nil without the header.
        var match: [String]?
        /// The tags `If-None-Match` lists (`*`: no script by that name yet).
        var noneMatch: [String]?

        init(_ head: RequestHead) {
            match = head.headers["if-match"].map(Self.tags)
            noneMatch = head.headers["if-none-match"].map(Self.tags)
        }

        private static func tags(_ header: String) -> [String] {
            header.split(separator: ",").map { tag in
                var tag = tag.trimmingWhitespace()
                if tag.hasPrefix("W/") { tag = tag.dropFirst(2) }
                if tag.count >= 2, tag.hasPrefix("\""), tag.hasSuffix("\"") { tag = tag.dropFirst().dropLast() }
                return String(tag)
            }
        }

        /// 412 when the script's current version (nil: none) is not what the headers ask for.
        func refusal(
            _ name: String, _ current: StoredScript?, registry: EndpointRegistry, timers: TimerSchedule
        ) -> Response? {
            var failed: String?
            if let match {
                if let current {
                    if !match.contains("*") && !match.contains(current.sha256) {
                        failed =
                            "\(name) is at version \(current.version) (sha256 \(current.sha256)), not one If-Match names"
                    }
                } else {
                    failed = "there is no script named '\(name)' for If-Match to match"
                }
            }
            if failed == nil, let noneMatch, let current, noneMatch.contains("*") || noneMatch.contains(current.sha256)
            {
                failed =
                    "\(name) exists, at version \(current.version) (sha256 \(current.sha256)), and If-None-Match refuses it"
            }
            guard let failed else { return nil }
            var json = JSONWriter()
            json.raw("{\"ok\":false,\"error\":{\"kind\":\"precondition\",\"message\":")
            json.string(failed + "; nothing changed")
            json.raw("},\"current\":")
            if let current {
                ExecService.write(current, registry: registry, timers: timers, to: &json)
            } else {
                json.raw("null")
            }
            json.raw("}")
            return ExecService.json(412, json)
        }
    }
}
