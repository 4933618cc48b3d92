/// Every setting of luaexecd (SPEC O1), with the documented defaults.
///
/// The config file (`/etc/luaexec/luaexecd.conf` when installed, YAML) sets any of them; see
/// `DaemonSettings.keys` for the names and `packaging/luaexecd.conf` for the annotated example.
public struct DaemonSettings: Sendable, Equatable {
    /// Which standard libraries chunks see (SPEC V1).
    public enum Profile: String, Sendable, CaseIterable {
        /// All of Lua's standard libraries, with the changes that keep the daemon alive.
        case full
        /// No `io`, `os.execute`, `package`, `require`, `debug`, `dofile`, `loadfile`.
        case restricted
    }

    /// Log levels, as swift-log names them.
    public static let logLevels = ["trace", "debug", "info", "notice", "warning", "error", "critical"]

    /// Unix socket to create and listen on; nil: the socket systemd (or a supervisor) passes.
    public var socket: String? = nil
    /// Threads of the FastCGI event loop: one polls and answers, the others stand by to take
    /// over while a chunk runs long.
    public var threads = 3
    /// Most open FastCGI connections; past it the oldest idle one closes.
    public var maxConnections = 1024
    /// Seconds a FastCGI peer may stall in the middle of a request before it is disconnected.
    public var readTimeout = 30.0
    /// The SQLite database with the tokens.
    public var database = "/var/lib/luaexec/luaexec.db"
    /// Directory whose `*.lua` files run at start and at reset, in name order.
    public var initDir = "/etc/luaexec/init.d"
    public var profile = Profile.full
    /// Start with no init scripts at all, for the day a bad one ships (also `--safe-mode`).
    public var safeMode = false
    /// Wall-clock limit of each init script, in seconds (SPEC V2, L1).
    public var initTimeLimit = 5.0
    /// Whether `/api/v1/exec/interactive.lua` answers (SPEC V4).
    public var interactive = true
    /// Whether Action URLs (`/api/v1/exec/command`) answer (SPEC V7).
    public var actions = false
    /// Largest request body, in bytes.
    public var maxBody = 1 << 20
    /// Wall-clock limit per evaluation, in seconds (SPEC L1).
    public var timeLimit = 5.0
    /// Memory cap of the Lua state, in MiB (SPEC L2).
    public var memoryLimitMiB = 256
    /// Cap on what `persisted` holds, in MiB (SPEC V6).
    public var persistedLimitMiB = 16
    /// Longest wait for the state before 503 busy, in seconds (SPEC L4).
    public var queueTimeout = 10.0
    /// Longest life of a request that waits in `sleep`, in seconds, from its arrival (SPEC V10).
    public var waitLimit = 60.0
    /// Most timers the state's scripts may set at once (SPEC V9).
    public var timerLimit = 1000
    /// Most endpoints and actions the state's scripts may register at once (SPEC V4, V7).
    public var endpointLimit = 1000
    /// Most requests that may wait for the state at once.
    public var queueCapacity = 1024
    /// Most requests and timer callbacks that may wait in `sleep` at once (SPEC V10).
    public var waitCapacity = 1024
    /// Failed authentications from one address within a minute before it gets 429 (SPEC T6).
    public var authFailureLimit = 10
    /// Seconds such an address keeps getting 429.
    public var authBlockSeconds = 60
    /// One of `logLevels`.
    public var logLevel = "info"
    /// The key of the audit trail's HMAC chain (SPEC M7): made by the package's postinst, or by
    /// luaexecd at start when the file is missing and it can.
    public var auditKey = "/etc/luaexec/audit.key"
    /// Days an audit record is kept in the database.
    public var auditRetentionDays = 90
    /// Most audit records kept in the database; the oldest go first.
    public var auditMaxRecords = 200_000
    /// Versions of a stored script kept besides the current one, for rollbacks (SPEC V8).
    public var scriptKeepVersions = 10

    public init() {}

    /// The settings that take effect only when luaexecd starts, by their config-file names,
    /// where `other` differs from `self`. SIGHUP applies everything else.
    public func restartOnlyChanges(to other: DaemonSettings) -> [String] {
        var changed: [String] = []
        if socket != other.socket { changed.append("listen.socket") }
        if threads != other.threads { changed.append("listen.threads") }
        if maxConnections != other.maxConnections { changed.append("listen.max_connections") }
        if readTimeout != other.readTimeout { changed.append("listen.read_timeout") }
        if database != other.database { changed.append("database") }
        if auditKey != other.auditKey { changed.append("audit.key") }
        return changed
    }
}
