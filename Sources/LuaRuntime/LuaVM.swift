import CLua
import CLuaSupport
import Logging
import Synchronization
import SystemSupport

/// The resident Lua state: globals live on between evaluations, locals don't.
///
/// A `LuaVM` belongs to the thread that created it: it is deliberately not `Sendable`.
/// `LuaExecutor` owns one on a dedicated thread and hands work to it.
public final class LuaVM {
    public struct Limits: Sendable {
        /// Cap on the memory the state's allocator may hold while a chunk runs.
        public var memory: Int
        /// Cap on what one chunk may print.
        public var output: Int

        public init(memory: Int = 256 << 20, output: Int = 16 << 20) {
            self.memory = memory
            self.output = output
        }
    }

    /// Who is running chunks now: registrations name it as their origin.
    public enum Caller: Sendable, Equatable {
        /// An init script at start or reset (its path).
        case initScript(String)
        /// A stored script (SPEC V8), at start, at reset or as it is installed.
        case storedScript(name: String, version: Int)
        /// A request, by its token's name.
        case request(token: String?)
        /// A timer's run (SPEC V9), as the one who set it; the box's own work when it was set by
        /// the box's own work (not by a request, nor by a handler a request called).
        case timer(EndpointRegistry.Origin, ownWork: Bool)
        /// An endpoint's or action's handler called by a request (`invoke`), as the one who
        /// registered it: what the handler registers or sets is theirs, not the caller's, whose
        /// token may only allow calling it (and a stored script's handler leaves what it
        /// registers to be withdrawn with the script).
        case handler(EndpointRegistry.Origin)

        /// The stored script (and its version) whose timer or handler this is, if any.
        public var storedScript: (name: String, version: Int)? {
            switch self {
            case .timer(.storedScript(let name, let version, _), _), .handler(.storedScript(let name, let version, _)):
                (name, version)
            default: nil
            }
        }

        /// The box's own work: an init or stored script, or a timer one of them set. A request
        /// (and a handler it calls) or a timer either set is not, and shares what requests are
        /// given (`logBudget`), so that a token cannot use up what the box's scripts need.
        public var isOwnWork: Bool {
            switch self {
            case .initScript, .storedScript: true
            case .timer(_, let ownWork): ownWork
            case .request, .handler: false
            }
        }
    }

    let runtime: OpaquePointer
    let state: OpaquePointer
    /// The endpoints and actions this state's scripts registered (SPEC V4, V7).
    public let registry = EndpointRegistry()
    /// The timers this state's scripts set (SPEC V9).
    public let timers = TimerSchedule()
    /// The most timers set at once (`limits.timers`).
    public var maxTimers = 1000 {
        didSet { installTimerHook() }
    }
    /// The most endpoints and actions registered at once (`limits.endpoints`): each is an entry
    /// in the registry the host keeps and publishes, outside the state's memory cap.
    public var maxRegistrations = 1000 {
        didSet { lx_set_registration_limit(runtime, Int32(clamping: maxRegistrations)) }
    }
    /// Set by whoever runs a chunk; `http.listen` and `http.action` record it, and count the
    /// names it registers against `limits.endpoints` with requests' or with the box's own work's
    /// (`Caller.isOwnWork`).
    public var caller = Caller.request(token: nil) {
        didSet {
            lx_set_own_work(runtime, caller.isOwnWork ? 1 : 0)
            // A stored script's timer callback or handler registers config callbacks in the
            // script's name, as it registers endpoints: withdrawn with the script (docs/scripts.md).
            let owner = caller.storedScript?.name
            if owner != configOwner {
                configOwner = owner
                var status = Int32(LX_OK.rawValue)
                if var name = owner {
                    status = name.withUTF8 { bytes in
                        bytes.withMemoryRebound(to: CChar.self) { lx_set_config_owner(runtime, $0.baseAddress, $0.count) }
                    }
                } else {
                    status = lx_set_config_owner(runtime, nil, 0)
                }
                if status != Int32(LX_OK.rawValue) { configOwner = nil }
            }
        }
    }
    /// The owner `caller` last gave the config callbacks (`lx_set_config_owner`).
    private var configOwner: String?
    /// The longest a request may wait in `sleep` (`limits.wait`), or nil when nothing would
    /// resume it (a state without a scheduler: `sleep` is then an error). Only requests wait:
    /// init scripts, stored scripts being installed and config callbacks run to the end.
    public var maxWaitSeconds: Double?
    /// How many lines `log.write` may still write (LuaVM+Log): requests', and the box's own
    /// work's (`Caller.isOwnWork`), each the same.
    public var logBudget = LogLineBudget()
    public var ownLogBudget = LogLineBudget()
    /// Room left among the evaluations that wait in `sleep` (set by `LuaExecutor` before each
    /// job): a `sleep` past it is a Lua error, not a wait.
    public var waitRoom = WaitRoom(waits: .max, outputBytes: .max)
    /// The time limit the watchdog holds this run to (set by `LuaExecutor`), which a `timeout`
    /// error names: after a reload, or for an init script (`limits.init_time`), the answer says
    /// which limit it was.
    public var timeLimit: Duration?

    public struct WaitRoom: Sendable, Equatable {
        /// How many more evaluations may wait (`limits.wait_capacity` less those waiting).
        public var waits: Int
        /// How much output the evaluation about to run may hold while it waits: what the
        /// waiting ones may hold together, less what they hold and its own request's body
        /// (below zero: no room at all).
        public var outputBytes: Int
        public init(waits: Int, outputBytes: Int) {
            self.waits = waits
            self.outputBytes = outputBytes
        }
    }
    /// While a stored script runs: every name it registered or removed (LuaVM+StoredScripts).
    var touchedRegistrations: Set<EndpointRegistry.Registration>?
    /// Saves what an evaluation changed in `persisted` and the config store (LuaVM+State).
    public var changeSink: ChangeSink?
    /// Where what the running chunk prints goes as it prints it (SPEC E13): at 4 KiB, or within
    /// about 100 ms of a print while Lua runs on. Called on this state's thread, in the middle of
    /// the evaluation: it must not call into the state. Nil: the output is all in the
    /// `Evaluation`. With a sink, the `Evaluation`'s output is only what was not handed over.
    public var outputSink: ((UnsafeRawBufferPointer) -> Void)? {
        didSet {
            guard (outputSink == nil) != (oldValue == nil) else { return }
            if outputSink == nil {
                lx_stream_output(runtime, nil, nil)
            } else {
                // Called during a call into the state, while `self` is alive: unretained is enough.
                lx_stream_output(
                    runtime,
                    { context, data, length in
                        guard let context, let data else { return }
                        Unmanaged<LuaVM>.fromOpaque(context).takeUnretainedValue().outputSink?(
                            UnsafeRawBufferPointer(start: data, count: length))
                    }, Unmanaged.passUnretained(self).toOpaque())
            }
        }
    }
    /// Whether the tracebacks of the evaluations from now on list each frame's locals (SPEC O11,
    /// `Lua-Traceback: locals`); kept by a `Suspension` for its resumption.
    public var tracebackLocals = false {
        didSet { lx_set_traceback_locals(runtime, tracebackLocals ? 1 : 0) }
    }
    /// Where `log.write` sends a script's lines (LuaVM+Log).
    public var logger = Logger(label: "luaexecd")
    /// What the database holds for the keys and paths of changes it failed to save (nil: none),
    /// so that the state can be put back to it (SPEC V6). Without it a failed save leaves the
    /// state as the chunk left it (a state for tests).
    public var savedValues: SavedValues?
    var persistedLimitValue = 16 << 20
    /// The C string of the last chunk name, which is nearly always the one before it
    /// (`interactive.lua`): spelt out once rather than for every request.
    private var lastSource: (chunkName: String, cString: ContiguousArray<CChar>)?
    /// The limits in force. Setting the memory cap between evaluations applies it to the next
    /// one; a state already above the new cap keeps its data and refuses to grow.
    public var limits: Limits {
        didSet { lx_set_memory_limit(runtime, limits.memory) }
    }

    /// Numbers the states a process makes: a `Suspension` names the one it waits in, and no
    /// other state (not even one made later at the same address) takes it for its own.
    private static let made = Atomic<UInt64>(0)
    let serial = LuaVM.made.add(1, ordering: .relaxed).newValue

    public init(limits: Limits = Limits()) throws(LuaVMError) {
        // The limits must hold in finalizers too: refuse to run on a liblua where they cannot.
        if let problem = lx_check_layout() {
            throw LuaVMError(message: "cannot enforce the time limit: " + String(cString: problem))
        }
        guard let runtime = lx_runtime_new(limits.memory, limits.output) else {
            throw LuaVMError(message: "cannot create a Lua state within \(limits.memory) bytes")
        }
        self.runtime = runtime
        self.state = lx_runtime_state(runtime)
        self.limits = limits
        // The hook runs on this state's thread, during a call into the state, while `self` is
        // alive (the runtime is freed in deinit): an unretained reference is enough.
        lx_set_registration_hook(runtime, { context, registration in
            guard let context, let registration else { return }
            Unmanaged<LuaVM>.fromOpaque(context).takeUnretainedValue().registrationChanged(registration.pointee)
        }, Unmanaged.passUnretained(self).toOpaque())
        lx_set_log_hook(runtime, { context, tag, tagLength, text, textLength in
            guard let context, let tag, let text else { return 1 }
            return Unmanaged<LuaVM>.fromOpaque(context).takeUnretainedValue().scriptLogged(
                tag: UnsafeRawBufferPointer(start: tag, count: tagLength), text: UnsafeRawBufferPointer(start: text, count: textLength))
        }, Unmanaged.passUnretained(self).toOpaque())
        installTimerHook()
        lx_set_registration_limit(runtime, Int32(clamping: maxRegistrations))
    }

    deinit {
        lx_runtime_free(runtime)
    }

    /// Takes io, os.execute, package, require, debug, dofile and loadfile away from the chunks
    /// evaluated from now on (SPEC V1's restricted profile). Init scripts run before it, so the
    /// API they define may keep what it captured in locals (`local io = io`).
    public func restrict() throws(LuaVMError) {
        guard lx_restrict(runtime) == 0 else {
            throw LuaVMError(message: "cannot apply the restricted profile: the state is out of memory")
        }
    }

    /// Bytes the state holds now.
    public var memoryInUse: Int { lx_memory_in_use(runtime) }

    /// A handle that can stop this state's running chunk from another thread.
    public var stopHandle: StopHandle { StopHandle(runtime: runtime) }

    /// Loads `chunk` as Lua source text and runs it in the global environment.
    ///
    /// - Parameter chunkName: how error messages name the chunk; `interactive.lua` gives
    ///   `interactive.lua:1: ...`. Lua's own prefixes are kept: `@path` names a file (a long
    ///   path is shortened from the left, as `lua5.4 path` shows it), `=name` a name shown as is.
    /// - Parameter arguments: the chunk's `...` (SPEC E11); nil, as an empty list: none.
    public func evaluate(
        _ chunk: [UInt8], chunkName: String, rendering: Rendering, arguments: [LuaValue]? = nil
    ) -> Evaluation {
        assert(lua_gettop(state) == 0, "a request must start with an empty Lua stack")
        defer { assert(lua_gettop(state) == 0, "a request must end with an empty Lua stack") }
        let start = MonotonicInstant.now()

        // Lua would refuse it too ("attempt to load a binary chunk"); say it plainly.
        if chunk.first == 0x1B {
            let failure = LuaFailure(
                kind: .syntax, message: "binary (precompiled) chunks are refused: send Lua source text")
            return Evaluation(output: [], outcome: .failure(failure), elapsedNanoseconds: MonotonicInstant.now().nanoseconds(since: start))
        }

        let mode = rendering == .text ? Int32(LX_RENDER_TEXT.rawValue) : Int32(LX_RENDER_TREE.rawValue)
        if lastSource?.chunkName != chunkName {
            lastSource = (chunkName, Self.source(chunkName).utf8CString)
        }
        allowWaiting()
        let encoded = arguments.map(LuaValue.encodeList)
        let status = chunk.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { chars in
                lastSource!.cString.withUnsafeBufferPointer { source in
                    guard let encoded else { return lx_eval(runtime, chars.baseAddress, chars.count, source.baseAddress, mode) }
                    return encoded.withUnsafeBufferPointer { args in
                        args.withMemoryRebound(to: CChar.self) { args in
                            lx_eval_args(
                                runtime, chars.baseAddress, chars.count, source.baseAddress, args.baseAddress, args.count, mode)
                        }
                    }
                }
            }
        }
        return withConfigCallbacks(finish(status: status, start: start, rendering: rendering))
    }

    /// Goes on with an evaluation that waited in `sleep`, as its caller (SPEC V10).
    public func resume(_ suspension: Suspension) -> Evaluation {
        assert(lua_gettop(state) == 0, "a request must start with an empty Lua stack")
        let start = MonotonicInstant.now()
        // Woken after a reset replaced the state it waited in (queued before the reset ran).
        guard suspension.state == serial else {
            return Evaluation(
                output: [],
                outcome: .failure(
                    LuaFailure(kind: .interrupted, message: "the Lua state was reset while the chunk waited in sleep")),
                elapsedNanoseconds: 0)
        }
        if outlivesItsRun(suspension), let (name, version) = suspension.caller.storedScript {
            abandon(suspension)
            return Evaluation(
                output: [],
                outcome: .failure(
                    LuaFailure(
                        kind: .interrupted,
                        message: "the stored script \(name) v\(version) was withdrawn or replaced while this waited in sleep")),
                elapsedNanoseconds: suspension.ranNanoseconds)
        }
        let previous = caller
        defer { caller = previous }
        caller = suspension.caller
        tracebackLocals = suspension.tracebackLocals
        allowWaiting()
        let mode = suspension.rendering == .text ? Int32(LX_RENDER_TEXT.rawValue) : Int32(LX_RENDER_TREE.rawValue)
        let status = lx_resume(runtime, suspension.reference, mode, suspension.outputUsed)
        return withConfigCallbacks(
            finish(status: status, start: start, rendering: suspension.rendering, ranBefore: suspension.ranNanoseconds))
    }

    /// Whether `suspension` is a stored script's timer callback or handler whose script was
    /// deleted, disabled, replaced or run again while it slept: it goes no further (`resume`
    /// answers `interrupted`), since it would register in the name of a run that is gone.
    public func outlivesItsRun(_ suspension: Suspension) -> Bool {
        guard let (name, _) = suspension.caller.storedScript else { return false }
        guard let run = registry.lastRun(ofStoredScript: name) else { return true }
        return run.serial != suspension.scriptRun || run.failure != nil
    }

    /// Where an evaluation waits (in `sleep`), as a traceback (SPEC O11), for the answer of one
    /// ended there (interrupted, or past `limits.wait`); call it before `abandon`.
    public func traceback(of suspension: Suspension) -> String? {
        guard suspension.state == serial else { return nil }
        tracebackLocals = suspension.tracebackLocals
        defer { tracebackLocals = false }
        guard lx_waiting_traceback(runtime, suspension.reference) == Int32(LX_OK.rawValue) else { return nil }
        return Self.text(bytes(lx_traceback))
    }

    /// Ends an evaluation that waits in `sleep` without going on with it: its pending
    /// to-be-closed variables are closed (under the running job's time limit).
    public func abandon(_ suspension: Suspension) {
        guard suspension.state == serial else { return }
        // Its __close handlers run as the evaluation they belong to, not as whatever ran last:
        // what they register or log counts where the evaluation's would.
        let previous = caller
        caller = suspension.caller
        defer { caller = previous }
        lx_abandon(runtime, suspension.reference)
        _ = saveChanges()
    }

    /// Lets the evaluation about to run wait in `sleep` when it is a request's and something
    /// resumes it.
    private func allowWaiting() {
        switch (maxWaitSeconds, caller) {
        case (let seconds?, .request), (let seconds?, .timer), (let seconds?, .handler):
            lx_set_suspendable(runtime, 1, seconds)
            lx_set_wait_room(runtime, waitRoom.waits, Int64(waitRoom.outputBytes))
        default: lx_set_suspendable(runtime, 0, 0)
        }
    }

    /// Calls the function the `http` module registered under `name` with `arguments`, under the
    /// limits of an evaluation; nil when nothing is registered under that name (nothing ran).
    public func invoke(
        _ kind: EndpointRegistry.Kind, _ name: String, arguments: [LuaValue], rendering: Rendering
    ) -> Evaluation? {
        let cKind = kind == .endpoint ? Int32(LX_KIND_ENDPOINT.rawValue) : Int32(LX_KIND_ACTION.rawValue)
        // Put back afterwards: what runs next in the state (a console's job, a change from
        // outside and its callbacks) is not the handler's owner's.
        let calledBy = caller
        defer { caller = calledBy }
        if case .request = caller, let owner = registry.entry(kind, name)?.origin { caller = .handler(owner) }
        allowWaiting()
        defer { lx_set_suspendable(runtime, 0, 0) }
        return invoke(kind: cKind, name, arguments: arguments, rendering: rendering).map(withConfigCallbacks)
    }

    /// Runs the timer `id` (SPEC V9) as `evaluate` runs a chunk, as the one who set it; nil when
    /// it is no longer set (cancelled meanwhile). It may wait in `sleep`.
    public func runTimer(_ id: Int64, origin: EndpointRegistry.Origin, ownWork: Bool) -> Evaluation? {
        // Put back afterwards, as `invoke` does: a job that runs next without a caller of its own
        // (a change from outside and its callbacks) is not the timer's owner's.
        let previous = caller
        defer { caller = previous }
        caller = .timer(origin, ownWork: ownWork)
        allowWaiting()
        defer { lx_set_suspendable(runtime, 0, 0) }
        return invoke(kind: Int32(LX_KIND_TIMER.rawValue), String(id), arguments: [], rendering: .text).map(
            withConfigCallbacks)
    }

    /// Runs the config callbacks an evaluation's changes queued; when one fails, so does the
    /// evaluation (its own failure, if it failed, comes first).
    private func withConfigCallbacks(_ evaluation: Evaluation) -> Evaluation {
        // Changes an init script makes run no callbacks: the state is only starting, and the
        // callbacks of one script must not run inside the next (docs/state.md). A stored script
        // runs as an init script does, when it is installed too (docs/scripts.md).
        switch caller {
        case .initScript, .storedScript:
            dropConfigCallbacks()
            return evaluation
        case .request, .timer, .handler:
            break
        }
        guard let failure = runConfigCallbacks(), case .success = evaluation.outcome else { return evaluation }
        var evaluation = evaluation
        evaluation.outcome = .failure(failure)
        // It fails here: it does not go on after its sleep.
        if let waiting = evaluation.suspension { abandon(waiting) }
        evaluation.suspension = nil
        return evaluation
    }

    func invoke(kind cKind: Int32, _ name: String, arguments: [LuaValue], rendering: Rendering) -> Evaluation? {
        assert(lua_gettop(state) == 0, "a request must start with an empty Lua stack")
        defer { assert(lua_gettop(state) == 0, "a request must end with an empty Lua stack") }
        let start = MonotonicInstant.now()
        let encoded = LuaValue.encodeList(arguments)
        let mode = rendering == .text ? Int32(LX_RENDER_TEXT.rawValue) : Int32(LX_RENDER_TREE.rawValue)
        let status = encoded.withUnsafeBufferPointer { args in
            args.withMemoryRebound(to: CChar.self) { args in
                Array(name.utf8).withUnsafeBufferPointer { nameBytes in
                    nameBytes.withMemoryRebound(to: CChar.self) { nameChars in
                        lx_invoke(runtime, cKind, nameChars.baseAddress, nameChars.count, args.baseAddress, args.count, mode)
                    }
                }
            }
        }
        if status == Int32(LX_ERR_NOT_FOUND.rawValue) { return nil }
        return finish(status: status, start: start, rendering: rendering)
    }

    /// The Lua chunk name for `chunkName`: as it is when it starts with `@` or `=`, else `=chunkName`.
    static func source(_ chunkName: String) -> String {
        chunkName.hasPrefix("@") || chunkName.hasPrefix("=") ? chunkName : "=" + chunkName
    }

    /// `ranBefore`: what the evaluation ran before this run, over its earlier runs between
    /// sleeps; its `elapsedNanoseconds` is the whole evaluation's running time.
    private func finish(status: Int32, start: MonotonicInstant, rendering: Rendering, ranBefore: Int64 = 0) -> Evaluation {
        defer { lx_trim_buffers(runtime) }
        // Nothing after this evaluation may wait (config callbacks run to the end).
        lx_set_suspendable(runtime, 0, 0)
        let output = bytes(lx_output)
        var outcome: Result<[LuaValue], LuaFailure>
        var suspension: Suspension?
        if status == Int32(LX_SUSPENDED.rawValue) {
            var reference: Int32 = 0
            var seconds = 0.0
            lx_suspension(runtime, &reference, &seconds)
            suspension = Suspension(
                reference: reference, seconds: seconds, rendering: rendering, caller: caller, state: serial,
                tracebackLocals: tracebackLocals, outputUsed: lx_output_used(runtime),
                ranNanoseconds: ranBefore + MonotonicInstant.now().nanoseconds(since: start),
                scriptRun: caller.storedScript.flatMap { registry.lastRun(ofStoredScript: $0.name)?.serial })
            outcome = .success([])
        } else if status == Int32(LX_OK.rawValue) {
            var length = 0
            let pointer = lx_result(runtime, &length)
            outcome = .success(LuaValue.decodeList(UnsafeRawBufferPointer(start: pointer, count: length)))
        } else {
            outcome = .failure(failure(status: status))
        }
        // What the chunk changed is saved before its answer goes out, whether it ended well or
        // not: the state keeps what a failed chunk did before it failed (SPEC E6, V6).
        if let unsaved = saveChanges() {
            // A chunk whose changes cannot be kept does not go on after its sleep.
            if let waiting = suspension { lx_abandon(runtime, waiting.reference) }
            suspension = nil
            outcome = .failure(unsaved)
        }
        var evaluation = Evaluation(
            output: output, outcome: outcome,
            elapsedNanoseconds: ranBefore + MonotonicInstant.now().nanoseconds(since: start))
        evaluation.suspension = suspension
        return evaluation
    }

    private func failure(status: Int32) -> LuaFailure {
        let message = String(decoding: bytes(lx_error), as: UTF8.self)
        let traceback = bytes(lx_traceback)
        switch lx_status(UInt32(status)) {
        case LX_ERR_SYNTAX:
            return LuaFailure(kind: .syntax, message: message)
        // Post-mortem (SPEC O11): where the chunk was when it ran out of memory or was stopped.
        case LX_ERR_MEMORY:
            return LuaFailure(
                kind: .memory, message: "not enough memory: the state's limit is \(limits.memory) bytes",
                traceback: Self.text(traceback))
        case LX_ERR_TIMEOUT:
            return LuaFailure(
                kind: .timeout, message: "the chunk exceeded its time limit" + (timeLimit.map { " (\($0))" } ?? ""),
                traceback: Self.text(traceback))
        case LX_ERR_INTERRUPTED:
            return LuaFailure(
                kind: .interrupted, message: "the chunk was interrupted by an administrator", traceback: Self.text(traceback))
        case LX_ERR_RENDER:
            return LuaFailure(kind: .runtime, message: "cannot convert the results: " + message)
        // An answer too large to make, as the renderer's byte limit (SPEC E6's `memory`).
        case LX_ERR_TOO_LARGE:
            return LuaFailure(kind: .memory, message: message)
        default:
            return LuaFailure(kind: .runtime, message: message, traceback: Self.text(traceback))
        }
    }

    private static func text(_ traceback: [UInt8]) -> String? {
        traceback.isEmpty ? nil : String(decoding: traceback, as: UTF8.self)
    }

    func bytes(_ accessor: (OpaquePointer?, UnsafeMutablePointer<Int>?) -> UnsafePointer<CChar>?) -> [UInt8] {
        var length = 0
        guard let pointer = accessor(runtime, &length), length > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: length))
    }
}

@available(*, unavailable)
extension LuaVM: Sendable {}

/// Stops the running chunk of one `LuaVM` from any thread.
///
/// `@unchecked Sendable`: `lx_stop` only stores an atomic flag and calls `lua_sethook`, which
/// Lua documents as safe to call asynchronously; the pointer stays valid because `LuaExecutor`
/// uses a handle only while its VM is alive and an evaluation is running.
public struct StopHandle: @unchecked Sendable {
    let runtime: OpaquePointer

    public enum Reason: Sendable {
        case timeout, interrupt
    }

    public func stop(_ reason: Reason) {
        lx_stop(runtime, reason == .timeout ? Int32(LX_STOP_TIMEOUT.rawValue) : Int32(LX_STOP_INTERRUPT.rawValue))
    }

    /// Clears a stop once the evaluation has ended; on the state's own thread only.
    func clear() { lx_stop_clear(runtime) }
}

/// The state could not be created.
public struct LuaVMError: Error, CustomStringConvertible, Sendable {
    public var message: String
    public var description: String { message }
}
