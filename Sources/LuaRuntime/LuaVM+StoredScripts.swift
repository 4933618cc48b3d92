import CLuaSupport
import Logging

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// One version of a stored script, as the state runs it (SPEC V8). The database keeps them
/// (AccessControl's `ScriptStore`); the state only runs them.
public struct StoredScriptSource: Sendable {
    public var name: String
    public var version: Int
    public var source: [UInt8]

    public init(name: String, version: Int, source: [UInt8]) {
        self.name = name
        self.version = version
        self.source = source
    }

    /// The chunk name it runs under: `@scripts/<name>`, so that messages and tracebacks read
    /// `scripts/doorbell.lua:3: ...`, apart from init scripts (`/etc/luaexec/init.d/...`) and
    /// requests (`interactive.lua`).
    public var chunkName: String { "@scripts/" + name }

    /// What is compiled of a stored script's source: the source less a UTF-8 byte-order mark at
    /// its start, which editors on some systems write and `lua5.4` skips in a file (so does
    /// luaexec's loadfile, stop.c). The stored bytes and their SHA-256 stay as sent.
    public static func compiled(_ source: [UInt8]) -> [UInt8] {
        source.starts(with: [0xEF, 0xBB, 0xBF]) ? Array(source.dropFirst(3)) : source
    }
}

extension LuaVM {
    /// How one run of a stored script ended.
    public enum ScriptOutcome {
        /// It ran and is kept: what it registered stands, and what its script's earlier version
        /// registered and this run did not register again is withdrawn (`withdrawn`).
        case ran(Evaluation, withdrawn: [EndpointRegistry.Registration])
        /// It failed (its evaluation says how: a syntax error, an error, a limit): everything it
        /// registered is undone, and what was registered before stands as it was.
        case failed(Evaluation)
        /// It ran, but `keep` threw (the database did not take it): undone as a failed run is.
        case notKept(Evaluation, any Error)
        /// luaexecd is stopping: it did not run, and nothing changed.
        case notStarted
    }

    /// Runs `script` as its name's version from now on, as one transaction on the state's
    /// registrations (SPEC V8): the endpoints, actions and config callbacks registered now are
    /// saved first; a run that fails (or whose `keep` throws) gets them back whole, and the timers
    /// it cancelled (any script's or token's) set again as they were, so the previous version's
    /// registrations and timers go on; a run that succeeds withdraws what the
    /// script registered before and did not register again (a name it registers again is
    /// swapped in one step, as `http.listen` always does). What else the run did (globals, `persisted`) stays, as after
    /// any chunk that fails half-way (SPEC E6). Config changes it makes run no callbacks, as an
    /// init script's do.
    ///
    /// - Parameters:
    ///   - guarded: runs the evaluation (the closure) under the limits of an init script
    ///     (`LuaExecutor.InitRunner`); returns false when it did not run it (luaexecd is stopping).
    ///   - keep: called once the run succeeded, before anything is withdrawn: the store write.
    ///     When it throws, the run is undone.
    public func runStoredScript(
        _ script: StoredScriptSource, guarded: (_ run: () -> Void) -> Bool, keep: () throws -> Void = {}
    ) -> ScriptOutcome {
        let before = registry.registrations(ofStoredScript: script.name)
        // Timers are not saved and restored with the registrations: those the run sets are
        // told apart from those before by number, and those it cancels are kept aside
        // (lx_hold_cancelled_timers) to be set again if it fails.
        let scheduleBefore = timers.entries
        let timersBefore = Set(scheduleBefore.map(\.id))
        let newTimers: (TimerSchedule.Entry) -> Bool = {
            $0.origin.storedScriptName == script.name && !timersBefore.contains($0.id)
        }
        let saved = registry.snapshot()
        var status = lx_save_registrations(runtime)
        if status == Int32(LX_OK.rawValue) {
            status = lx_save_config_callbacks(runtime)
            if status != Int32(LX_OK.rawValue) { _ = lx_restore_registrations(runtime) }
        }
        guard status == Int32(LX_OK.rawValue) else {
            // Nothing ran: without the copy, a failure could not be undone.
            let failure = LuaFailure(
                kind: status == Int32(LX_ERR_MEMORY.rawValue) ? .memory : .runtime,
                message: "cannot save the registrations before running \(script.name): "
                    + String(decoding: bytes(lx_error), as: UTF8.self))
            return .failed(Evaluation(output: [], outcome: .failure(failure), elapsedNanoseconds: 0))
        }
        let previousCaller = caller
        caller = .storedScript(name: script.name, version: script.version)
        touchedRegistrations = []
        var ran: Evaluation?
        lx_hold_cancelled_timers(runtime, 1)
        let started = guarded {
            ran = evaluate(StoredScriptSource.compiled(script.source), chunkName: script.chunkName, rendering: .tree)
        }
        lx_hold_cancelled_timers(runtime, 0)
        defer { lx_release_held_timers(runtime) }
        caller = previousCaller
        let touched = touchedRegistrations ?? []
        touchedRegistrations = nil
        // What a run that is not kept changed in the registrations and the timers, undone.
        func undo() {
            undoRegistrations(saved)
            withdrawTimers(where: newTimers)
            let left = Set(timers.entries.map(\.id))
            for entry in scheduleBefore where !left.contains(entry.id) && lx_restore_timer(runtime, entry.id) == 1 {
                timers.restore(entry)
            }
        }
        guard started, let evaluation = ran else {
            undo()
            return .notStarted
        }
        if case .failure = evaluation.outcome {
            undo()
            return .failed(evaluation)
        }
        do {
            try keep()
        } catch {
            undo()
            return .notKept(evaluation, error)
        }
        // The version that ran sets its own timers: the previous version's go.
        withdrawTimers { $0.origin.storedScriptName == script.name && timersBefore.contains($0.id) }
        if lx_forget_saved_registrations(runtime) != Int32(LX_OK.rawValue) {
            logger.error("the saved registrations were not let go", metadata: ["script": "\(script.name)"])
        }
        // Its config callbacks the same way: what the previous version registered and this one
        // did not register again goes (a new version's closures are new functions: without this,
        // a change to a path ran the callback of every version installed since the start).
        if withName(script.name, { lx_end_config_callbacks(runtime, 1, $0, $1) }) != Int32(LX_OK.rawValue) {
            logger.error(
                "the previous version's config callbacks were not withdrawn",
                metadata: ["script": "\(script.name)", "error": "\(String(decoding: bytes(lx_error), as: UTF8.self))"])
        }
        let stale = before.filter { !touched.contains($0) }
        for registration in stale { withdraw(registration) }
        registry.recordRun(
            ofStoredScript: script.name,
            .init(version: script.version, failure: nil, elapsedNanoseconds: evaluation.elapsedNanoseconds))
        return .ran(evaluation, withdrawn: stale)
    }

    /// Withdraws everything the stored script `name` registered (it is disabled or deleted) and
    /// forgets its last run; returns what was withdrawn.
    @discardableResult
    public func withdrawStoredScript(named name: String) -> [EndpointRegistry.Registration] {
        let registrations = registry.registrations(ofStoredScript: name)
        for registration in registrations { withdraw(registration) }
        withdrawTimers { $0.origin.storedScriptName == name }
        if withName(name, { lx_withdraw_config_callbacks(runtime, $0, $1) }) != Int32(LX_OK.rawValue) {
            logger.error(
                "the config callbacks were not withdrawn",
                metadata: ["script": "\(name)", "error": "\(String(decoding: bytes(lx_error), as: UTF8.self))"])
        }
        registry.recordRun(ofStoredScript: name, nil)
        return registrations
    }

    /// Runs the stored scripts at start or reset, after the init directory's files, in the
    /// order given (by name): each under the limits of an init script, each as one transaction
    /// (`runStoredScript`). A script that fails is logged with its error and leaves nothing
    /// registered; the others still run. Stops when `guarded` did not run one (luaexecd is
    /// stopping).
    public func runStoredScripts(
        _ scripts: [StoredScriptSource], logger: Logger, guarded: (_ run: () -> Void) -> Bool
    ) {
        for script in scripts {
            switch runStoredScript(script, guarded: guarded) {
            case .ran(let evaluation, _):
                logOutput(of: evaluation, script: script, logger: logger)
                logger.info(
                    "stored script ran", metadata: ["script": "\(script.name)", "version": "\(script.version)"])
            case .failed(let evaluation), .notKept(let evaluation, _):
                logOutput(of: evaluation, script: script, logger: logger)
                guard case .failure(let failure) = evaluation.outcome else { continue }
                registry.recordRun(
                    ofStoredScript: script.name,
                    .init(version: script.version, failure: failure, elapsedNanoseconds: evaluation.elapsedNanoseconds))
                logger.error(
                    "stored script failed",
                    metadata: [
                        "script": "\(script.name)", "version": "\(script.version)", "kind": "\(failure.kind.rawValue)",
                        "error": "\(failure.message)",
                    ])
            case .notStarted:
                logger.notice("stored scripts stopped: luaexecd is stopping", metadata: ["next": "\(script.name)"])
                return
            }
        }
    }

    private func logOutput(of evaluation: Evaluation, script: StoredScriptSource, logger: Logger) {
        guard !evaluation.output.isEmpty else { return }
        logger.info(
            "stored script output",
            metadata: ["script": "\(script.name)", "output": "\(String(decoding: evaluation.output, as: UTF8.self))"])
    }

    /// Calls `body` with a name's bytes as C takes them.
    private func withName(_ name: String, _ body: (UnsafePointer<CChar>?, Int) -> Int32) -> Int32 {
        Array(name.utf8).withUnsafeBufferPointer { bytes in
            bytes.withMemoryRebound(to: CChar.self) { body($0.baseAddress, $0.count) }
        }
    }

    private func withdraw(_ registration: EndpointRegistry.Registration) {
        let kind = registration.kind == .endpoint ? Int32(LX_KIND_ENDPOINT.rawValue) : Int32(LX_KIND_ACTION.rawValue)
        let status = withName(registration.name) { lx_withdraw(runtime, kind, $0, $1) }
        if status != Int32(LX_OK.rawValue) && status != Int32(LX_ERR_NOT_FOUND.rawValue) {
            logger.error(
                "a registration was not withdrawn",
                metadata: [
                    "kind": "\(registration.kind.rawValue)", "name": "\(registration.name)",
                    "error": "\(String(decoding: bytes(lx_error), as: UTF8.self))",
                ])
        }
    }

    /// The registrations as they were before the run, in the state and in the listing.
    private func undoRegistrations(_ saved: EndpointRegistry.Snapshot) {
        if lx_end_config_callbacks(runtime, 0, nil, 0) != Int32(LX_OK.rawValue) {
            logger.critical(
                "the config callbacks of a failed script were not undone",
                metadata: ["error": "\(String(decoding: bytes(lx_error), as: UTF8.self))"])
        }
        if lx_restore_registrations(runtime) != Int32(LX_OK.rawValue) {
            // Putting a table back allocates nothing Lua does not already hold; should it fail
            // all the same, the listing says what the state holds.
            logger.critical(
                "the registrations of a failed script were not undone",
                metadata: ["error": "\(String(decoding: bytes(lx_error), as: UTF8.self))"])
            return
        }
        registry.restore(saved)
    }
}
