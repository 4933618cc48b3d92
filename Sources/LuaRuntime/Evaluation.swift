/// What one chunk did: what it printed, and its results or the error that ended it.
public struct Evaluation: Sendable {
    /// Everything the chunk wrote with `print` and `io.write`, in order, byte-exact.
    public var output: [UInt8]
    public var outcome: Result<[LuaValue], LuaFailure>
    /// Time spent loading, running and converting the chunk (not waiting for the state), in
    /// nanoseconds: kept as a count, as the metrics and `Server-Timing` read it.
    public var elapsedNanoseconds: Int64

    /// Set when the chunk waits in `sleep` (SPEC V10): `outcome` then means nothing yet, and
    /// `output` is what it printed before; `LuaVM.resume` goes on with it when the time is up.
    public var suspension: Suspension?

    public init(output: [UInt8], outcome: Result<[LuaValue], LuaFailure>, elapsedNanoseconds: Int64) {
        self.output = output
        self.outcome = outcome
        self.elapsedNanoseconds = elapsedNanoseconds
    }
}

/// An evaluation waiting in `sleep`: what `LuaVM.resume` or `LuaVM.abandon` needs. It belongs
/// to the state that made it; a reset ends it with that state.
public struct Suspension: Sendable {
    /// The registry reference that keeps the evaluation's coroutine.
    let reference: Int32
    /// How long the chunk asked to wait.
    public let seconds: Double
    let rendering: Rendering
    let caller: LuaVM.Caller
    /// The state it waits in (`LuaVM.serial`): after a reset its reference means nothing, or
    /// another evaluation's.
    let state: UInt64
    /// Whether its tracebacks list locals (`LuaVM.tracebackLocals`).
    var tracebackLocals = false
    /// What it printed before this sleep, in all its runs: the output limit is the whole
    /// evaluation's, not each run's.
    public internal(set) var outputUsed = 0
    /// What the evaluation ran before this sleep, in all its runs: its `elapsedNanoseconds` when
    /// it ends counts them all (E5 `elapsed_ms`, E7 `Server-Timing`, the evaluations' histogram),
    /// not only the last.
    public internal(set) var ranNanoseconds: Int64 = 0
    /// For a stored script's timer callback or handler: the serial of the script's run that was
    /// the last when it went to sleep (`EndpointRegistry.ScriptRun.serial`).
    var scriptRun: Int?
}

/// Why a chunk did not complete. The state survives every one of these.
public struct LuaFailure: Error, Sendable, Equatable {
    public enum Kind: String, Sendable {
        /// The chunk did not compile, or was precompiled.
        case syntax
        /// The chunk raised an error (including errors converting its results).
        case runtime
        /// The chunk hit the state's memory cap.
        case memory
        /// The chunk ran past its time limit.
        case timeout
        /// An administrator interrupted the chunk.
        case interrupted
    }

    public var kind: Kind
    public var message: String
    /// `stack traceback:` and its lines, for runtime errors.
    public var traceback: String?

    public init(kind: Kind, message: String, traceback: String? = nil) {
        self.kind = kind
        self.message = message
        self.traceback = traceback
    }
}

/// How the results of a chunk are converted.
public enum Rendering: Sendable {
    /// Every result as `tostring` shows it (`.string`), nil as `.nil`.
    case text
    /// Results as typed trees (`.array`, `.object`, ...), for JSON.
    case tree
}
