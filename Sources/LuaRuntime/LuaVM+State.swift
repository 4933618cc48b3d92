import CLuaSupport
import SystemSupport

/// `persisted` and the config store (SPEC V5, V6): what a chunk changed, handed to the host to
/// save before the answer goes out, and what was saved, loaded into a fresh state.
extension LuaVM {
    /// What one evaluation changed. `persisted` entries are opaque to the host: the encoded
    /// top-level key and value, stored as they are and given back to `loadSaved`.
    public struct StateChanges: Sendable {
        /// nil value: the key was removed.
        public var persisted: [(key: [UInt8], value: [UInt8]?)]
        /// nil value: the path was unset. Values are scalars: string, integer, number, boolean.
        public var config: [(path: String, value: LuaValue?)]

        public init(persisted: [(key: [UInt8], value: [UInt8]?)], config: [(path: String, value: LuaValue?)]) {
            self.persisted = persisted
            self.config = config
        }
    }

    /// Saves the changes of an evaluation, durably, before its answer goes out (the daemon
    /// commits them to SQLite). A throw turns the evaluation into a failure that says so.
    public typealias ChangeSink = (StateChanges) throws -> Void

    /// Reads what the database holds for the keys and paths of `changes` (nil: nothing), to undo
    /// them in the state when they could not be saved.
    public typealias SavedValues = (_ changes: StateChanges) throws -> StateChanges

    /// The encoded size of everything in `persisted`.
    public var persistedBytes: Int { lx_persisted_bytes(runtime) }

    /// The cap on `persisted` (SPEC V6); growth past it is refused with a Lua error.
    public var persistedLimit: Int {
        get { persistedLimitValue }
        set {
            persistedLimitValue = newValue
            lx_set_persist_limit(runtime, newValue)
        }
    }

    /// A saved entry that could not be loaded, by its position in what `loadSaved` was given.
    public struct UnloadableEntry: Sendable, Equatable {
        public enum Section: String, Sendable { case persisted, config }
        public var section: Section
        public var index: Int
        /// Why, as the loader said it ("stored data is damaged", "not enough memory").
        public var reason: String
    }

    /// Fills `persisted` and the config store with what was saved, before any chunk runs. Each
    /// entry is loaded on its own: one that cannot be loaded (damaged, nested past the limit,
    /// larger than the memory cap; a foreign or hand-edited database) is left out and returned,
    /// so that the daemon starts with the rest and sets that one aside (SPEC V6).
    public func loadSaved(persisted: [(key: [UInt8], value: [UInt8])], config: [(path: String, value: LuaValue)])
        -> [UnloadableEntry]
    {
        var failures: [UnloadableEntry] = []
        for (index, entry) in persisted.enumerated() {
            if let reason = load(entry.key + entry.value, config: false) {
                failures.append(.init(section: .persisted, index: index, reason: reason))
            }
        }
        for (index, entry) in config.enumerated() {
            let bytes = LuaValue.encodeValue(.string(Array(entry.path.utf8))) + LuaValue.encodeValue(entry.value)
            if let reason = load(bytes, config: true) {
                failures.append(.init(section: .config, index: index, reason: reason))
            }
        }
        return failures
    }

    /// Loads one encoded entry (key, then value); the loader's message when it cannot.
    private func load(_ entry: [UInt8], config: Bool) -> String? {
        var section: [UInt8] = []
        withUnsafeBytes(of: UInt32(1).littleEndian) { section.append(contentsOf: $0) }
        section += entry
        let status = section.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) {
                lx_load_saved(runtime, config ? 1 : 0, $0.baseAddress, $0.count)
            }
        }
        guard status != Int32(LX_OK.rawValue) else { return nil }
        return String(decoding: bytes(lx_error), as: UTF8.self)
    }

    /// Sets a config path from outside the state (the CLI, the admin API), queueing its
    /// callbacks when the value changes. `save`: the change is not in the database yet, so it
    /// goes through the change sink now. Returns the failure, if any.
    public func applyConfig(path: String, value: LuaValue?, save: Bool) -> LuaFailure? {
        let encoded = LuaValue.encodeValue(value ?? .nil)
        let status = Array(path.utf8).withUnsafeBufferPointer { pathBytes in
            pathBytes.withMemoryRebound(to: CChar.self) { pathChars in
                encoded.withUnsafeBufferPointer { valueBytes in
                    valueBytes.withMemoryRebound(to: CChar.self) { valueChars in
                        lx_apply_config(
                            runtime, pathChars.baseAddress, pathChars.count, valueChars.baseAddress, valueChars.count,
                            save ? 1 : 0)
                    }
                }
            }
        }
        guard status == Int32(LX_OK.rawValue) else {
            return LuaFailure(kind: .runtime, message: String(decoding: bytes(lx_error), as: UTF8.self))
        }
        guard save else { return nil }
        return saveChanges() ?? runConfigCallbacks()
    }

    /// The most config callbacks one change may set off, its own and those their changes queue:
    /// two callbacks that keep setting each other's paths must not hold the state forever.
    static let configCallbackLimit = 100

    /// Runs the config callbacks queued so far (SPEC V5), each once, under the limits of what
    /// caused them: the request's time limit and stop go on, no fresh limit is given, so a
    /// callback that loops ends with the request that set its path, never in a later one. A
    /// failing callback makes that request fail: the first failure is returned (the path's value
    /// stays set and saved); after a timeout or an interrupt the rest are dropped.
    public func runConfigCallbacks() -> LuaFailure? {
        var first: LuaFailure?
        var calls = 0
        while let path = nextConfigCallback() {
            calls += 1
            guard calls <= Self.configCallbackLimit else {
                dropConfigCallbacks()
                return first
                    ?? LuaFailure(
                        kind: .runtime,
                        message: "config: the change set off more than \(Self.configCallbackLimit) callbacks; the rest were dropped")
            }
            guard case .failure(let failure) = runConfigCallback(path: path).outcome else { continue }
            if first == nil {
                first = LuaFailure(
                    kind: failure.kind,
                    message: "config: '\(path)' was set and saved, but a function registered for it failed: \(failure.message)",
                    traceback: failure.traceback)
            }
            if failure.kind != .runtime {
                dropConfigCallbacks()
                break
            }
        }
        return first
    }

    /// The path of the next config callback to run, choosing it; nil when none is queued.
    public func nextConfigCallback() -> String? {
        var path: UnsafePointer<CChar>?
        var length = 0
        guard lx_next_config_call(runtime, &path, &length) != 0, let path else { return nil }
        return String(decoding: UnsafeRawBufferPointer(start: path, count: length), as: UTF8.self)
    }

    /// Runs the callback `nextConfigCallback` chose, as `fn(path)`, under the limits of a chunk.
    public func runConfigCallback(path: String) -> Evaluation {
        let start = MonotonicInstant.now()
        return invoke(kind: Int32(LX_KIND_CONFIG_CALL.rawValue), "", arguments: [.string(path)], rendering: .text)
            ?? Evaluation(output: [], outcome: .success([]), elapsedNanoseconds: MonotonicInstant.now().nanoseconds(since: start))
    }

    /// Forgets every queued config callback.
    public func dropConfigCallbacks() { lx_drop_config_calls(runtime) }

    /// Hands what the last evaluation changed to `changeSink`; the failure to report when it
    /// could not be saved. Without a sink the changes are dropped (a state for tests).
    func saveChanges() -> LuaFailure? {
        guard lx_has_changes(runtime) != 0 else { return nil }
        var data: UnsafePointer<CChar>?
        var length = 0
        guard lx_take_changes(runtime, &data, &length) == Int32(LX_OK.rawValue) else {
            // Only a failed allocation gets here (the changes' size is bounded as they are made):
            // forgotten, so that the next save does not fail the same way.
            let reason = String(decoding: bytes(lx_error), as: UTF8.self)
            lx_drop_changes(runtime)
            dropConfigCallbacks()
            return LuaFailure(
                kind: .memory,
                message: "the changes to persisted and config could not be encoded (\(reason)): they are not "
                    + "saved, and the state may hold them until a reset brings back what was saved")
        }
        guard let changeSink, let data else { return nil }
        let changes: StateChanges = {
            let raw = UnsafeRawBufferPointer(start: data, count: length)
            var offset = 0
            let persisted = LuaValue.splitEntries(raw, offset: &offset).map { entry in
                (key: entry.key, value: entry.value == [UInt8(ascii: "n")] ? nil : entry.value)
            }
            let config = LuaValue.splitEntries(raw, offset: &offset).map { entry -> (path: String, value: LuaValue?) in
                let path: String
                if case .string(let bytes) = LuaValue.decode(entry.key) {
                    path = String(decoding: bytes, as: UTF8.self)
                } else {
                    path = ""
                }
                let value = LuaValue.decode(entry.value)
                return (path, value == .nil ? nil : value)
            }
            return StateChanges(persisted: persisted, config: config)
        }()
        do {
            try changeSink(changes)
            return nil
        } catch {
            // The answer says the change was not kept; the state must not go on serving it
            // (SPEC V6): what the chunk changed goes back to what the database holds, and the
            // callbacks its config changes queued do not run.
            dropConfigCallbacks()
            let message = "the changes to persisted and config were not saved (\(error))"
            guard let savedValues else { return LuaFailure(kind: .runtime, message: message) }
            do {
                try restore(savedValues(changes))
                return LuaFailure(kind: .runtime, message: message + "; they are undone: persisted and config hold what was saved")
            } catch {
                return LuaFailure(
                    kind: .runtime,
                    message: message + "; what was saved could not be read back either (\(error)): reset the state once the database is writable")
            }
        }
    }

    /// Puts `saved` (what the database holds; nil values: nothing) into the state as it is, with no
    /// callbacks and nothing to save.
    private func restore(_ saved: StateChanges) throws(LuaVMError) {
        func section(_ entries: [(key: [UInt8], value: [UInt8])]) -> [UInt8] {
            var bytes: [UInt8] = []
            withUnsafeBytes(of: UInt32(entries.count).littleEndian) { bytes.append(contentsOf: $0) }
            for entry in entries { bytes += entry.key + entry.value }
            return bytes
        }
        let persisted = section(saved.persisted.map { ($0.key, $0.value ?? [UInt8(ascii: "n")]) })
        let config = section(
            saved.config.map { (LuaValue.encodeValue(.string(Array($0.path.utf8))), LuaValue.encodeValue($0.value ?? .nil)) })
        for (encoded, isConfig) in [(persisted, false), (config, true)] {
            let status = encoded.withUnsafeBufferPointer { buffer in
                buffer.withMemoryRebound(to: CChar.self) {
                    lx_restore_saved(runtime, isConfig ? 1 : 0, $0.baseAddress, $0.count)
                }
            }
            guard status == Int32(LX_OK.rawValue) else {
                throw LuaVMError(message: String(decoding: bytes(lx_error), as: UTF8.self))
            }
        }
    }
}
