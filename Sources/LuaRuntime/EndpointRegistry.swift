import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What the `http` module has registered in one state (SPEC V4, V7): each endpoint and action,
/// where it came from, and how its calls went. The state's thread writes it as scripts call
/// `http.listen` and `http.action`; any thread reads it (the admin listing, the Action URL list).
///
/// A fresh state starts with an empty registry: a reset drops what requests registered, and the
/// init scripts register theirs again.
public final class EndpointRegistry: Sendable {
    public enum Kind: String, Sendable, Comparable {
        /// `http.listen`: answers `/api/v1/exec/<name>`.
        case endpoint
        /// `http.action`: answers `/api/v1/exec/command?action=<name>`.
        case action

        public static func < (a: Kind, b: Kind) -> Bool { a.rawValue < b.rawValue }
    }

    /// Who registered a name.
    public enum Origin: Sendable, Equatable {
        /// An init script, at this line.
        case script(path: String, line: Int)
        /// A stored script (SPEC V8): its name and version, and the line of the call.
        case storedScript(name: String, version: Int, line: Int)
        /// A request, with this token (nil: a chunk run by luaexecd itself, as in tests).
        case token(String?)

        /// As a log line names it: `init.d/10-x.lua:12`, `stored script x.lua v3:12`,
        /// `token ops`.
        public var text: String {
            switch self {
            case .script(let path, let line): "\(path):\(line)"
            case .storedScript(let name, let version, let line): "stored script \(name) v\(version):\(line)"
            case .token(let name): "token \(name ?? "-")"
            }
        }

        /// The stored script's name, when a stored script registered it.
        public var storedScriptName: String? {
            if case .storedScript(let name, _, _) = self { name } else { nil }
        }
    }

    /// A registered name of one kind.
    public struct Registration: Sendable, Hashable, Comparable {
        public var kind: Kind
        public var name: String

        public init(_ kind: Kind, _ name: String) {
            self.kind = kind
            self.name = name
        }

        public static func < (a: Registration, b: Registration) -> Bool { (a.kind, a.name) < (b.kind, b.name) }
    }

    /// How the last run of a stored script in this state went (SPEC M6).
    public struct ScriptRun: Sendable {
        /// The version that ran.
        public var version: Int
        public var at: Date
        /// Nil: it succeeded.
        public var failure: LuaFailure?
        public var elapsedNanoseconds: Int64
        /// Tells this run from every other of the state (`recordRun` numbers them): a callback of
        /// the script asleep in `sleep` goes on only while the run that set it up is the last
        /// (a disable and an enable of the same version in between make a new run).
        public internal(set) var serial = 0

        public init(version: Int, at: Date = Date(), failure: LuaFailure?, elapsedNanoseconds: Int64) {
            self.version = version
            self.at = at
            self.failure = failure
            self.elapsedNanoseconds = elapsedNanoseconds
        }
    }

    /// The entries as they were at one moment, to put back (`restore`).
    public struct Snapshot: Sendable {
        fileprivate var entries: [Registration: Entry]
    }

    /// The types an Action URL parameter may have (SPEC V7).
    public enum ParameterType: String, Sendable {
        case string, integer, number, boolean
    }

    /// One declared parameter of an action.
    public struct Parameter: Sendable, Equatable {
        public var name: String
        public var type: ParameterType
        public var optional: Bool

        public init(name: String, type: ParameterType, optional: Bool = false) {
            self.name = name
            self.type = type
            self.optional = optional
        }
    }

    public struct Entry: Sendable {
        public var kind: Kind
        public var name: String
        public var origin: Origin
        public var since: Date
        /// SHA-256 (hex) of the chunk that registered it: the init script's file, or the body of
        /// the request (whose audit line shows the first 12 digits). Nil when no chunk was running.
        public var sourceSHA256: String?
        /// Actions: what `action=NAME&help` shows, and the parameters in call order.
        public var help: String?
        public var parameters: [Parameter]
        public var calls = 0
        public var errors = 0
    }

    private struct State {
        var entries: [Registration: Entry] = [:]
        /// The last run of each stored script, by name.
        var runs: [String: ScriptRun] = [:]
        var runSerial = 0
        /// Bumped when a name comes or goes; `counts` when a call is recorded.
        var structure = 0
        var counts = 0
    }

    private let state = Mutex(State())

    public init() {}

    /// Every entry, actions and endpoints, by kind then name.
    public var entries: [Entry] {
        state.withLock { Array($0.entries.values) }.sorted { ($0.kind, $0.name) < ($1.kind, $1.name) }
    }

    public func entry(_ kind: Kind, _ name: String) -> Entry? {
        state.withLock { $0.entries[Registration(kind, name)] }
    }

    /// What the stored script `name` registered and still holds (any of its versions).
    public func registrations(ofStoredScript name: String) -> [Registration] {
        state.withLock { state in state.entries.filter { $0.value.origin.storedScriptName == name }.map(\.key) }.sorted()
    }

    /// The last run of the stored script `name` in this state; nil when it has not run.
    public func lastRun(ofStoredScript name: String) -> ScriptRun? {
        state.withLock { $0.runs[name] }
    }

    func recordRun(ofStoredScript name: String, _ run: ScriptRun?) {
        state.withLock { state in
            state.runSerial += 1
            var run = run
            run?.serial = state.runSerial
            state.runs[name] = run
        }
    }

    func snapshot() -> Snapshot {
        state.withLock { Snapshot(entries: $0.entries) }
    }

    /// Puts back the entries of `snapshot`, as they were then (their counts too).
    func restore(_ snapshot: Snapshot) {
        state.withLock {
            $0.entries = snapshot.entries
            $0.structure += 1
        }
    }

    /// Changes when the entries change: `structure` for a name registered or removed, `counts`
    /// for a call recorded. Lets a mirror write only what changed.
    public var generation: (structure: Int, counts: Int) {
        state.withLock { ($0.structure, $0.counts) }
    }

    func register(_ entry: Entry) {
        state.withLock {
            $0.entries[Registration(entry.kind, entry.name)] = entry
            $0.structure += 1
        }
    }

    func remove(_ kind: Kind, _ name: String) {
        state.withLock {
            if $0.entries.removeValue(forKey: Registration(kind, name)) != nil { $0.structure += 1 }
        }
    }

    /// Counts one call of `name`. Call it on the state's thread, in the job that made the call,
    /// so that the count lands on the registration that answered even if a later job replaces it.
    public func recordCall(_ kind: Kind, _ name: String, failed: Bool) {
        state.withLock {
            guard var entry = $0.entries[Registration(kind, name)] else { return }
            entry.calls += 1
            if failed { entry.errors += 1 }
            $0.entries[Registration(kind, name)] = entry
            $0.counts += 1
        }
    }
}
