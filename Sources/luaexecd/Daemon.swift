import AccessControl
import ArgumentParser
import CoreMetrics
import DaemonConfig
import ExecService
import FastCGI
import Logging
import LuaRuntime
import LuaexecCommands
import Prometheus
import Synchronization
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// One executable, two commands: called as `luaexec` (the Debian package's /usr/bin/luaexec is a
/// link to luaexecd), it is the command-line tool; otherwise the daemon.
@main
enum Entry {
    static func main() {
        let name = CommandLine.arguments.first?.split(separator: "/").last
        if name == "luaexec" {
            Luaexec.main()
        } else if var daemon = Daemon.parsePlain(CommandLine.arguments.dropFirst()) {
            do {
                try daemon.validate()
                try daemon.run()
            } catch {
                Daemon.exit(withError: error)
            }
        } else {
            Daemon.main()
        }
    }
}

struct Daemon: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "luaexecd",
        abstract: "Evaluates Lua sent over FastCGI in one resident Lua 5.4 state.",
        discussion: """
            Settings come from the config file (YAML; packaging/luaexecd.conf in the repository \
            is the annotated example), then from --set. Without listen.socket, luaexecd serves \
            the listening socket systemd passed by socket activation (LISTEN_FDS, fd 3), or \
            else the one on standard input, as spawn-fcgi passes it. SIGHUP reloads the config \
            file; SIGTERM stops after the running evaluation.
            """)

    static let defaultConfig = "/etc/luaexec/luaexecd.conf"

    @Option(help: "The config file. Default: \(Daemon.defaultConfig) when it exists, else the built-in defaults.")
    var config: String?

    @Option(name: .customLong("set"), help: "NAME=VALUE: a setting over the config file's (limits.time=0.5). Repeatable.")
    var overrides: [String] = []

    @Flag(help: "Check the config file and --set values, print the settings in force, and exit.")
    var checkConfig = false

    @Flag(help: "Run no init scripts, whatever lua.safe_mode says: for the day a bad one ships.")
    var safeMode = false

    /// The config file to read: `--config`, else the default one if it exists.
    var configPath: String? {
        if let config { return config }
        return access(Self.defaultConfig, F_OK) == 0 ? Self.defaultConfig : nil
    }

    /// How logs and `--check-config` name where the settings came from.
    var configName: String { configPath ?? "built-in defaults" }

    /// The config file's settings with `--set` applied over them.
    func loadSettings() throws(ConfigError) -> DaemonSettings {
        var settings = try configPath.map { path throws(ConfigError) in try DaemonSettings.load(path: path) } ?? DaemonSettings()
        for assignment in overrides { try settings.set(assignment) }
        if safeMode { settings.safeMode = true }
        return settings
    }

    func run() throws {
        let settings: DaemonSettings
        do {
            settings = try loadSettings()
        } catch {
            StandardError.write(line: "luaexecd: \(error)")
            throw ExitCode(78)  // EX_CONFIG: systemd's RestartPreventExitStatus= keeps it from looping
        }
        if checkConfig {
            print("\(configName): ok")
            for key in DaemonSettings.keys { print("\(key.name) = \(settings.describe(key))") }
            return
        }
        LineLogHandler.setLevel(Logger.Level(rawValue: settings.logLevel) ?? .info)
        LoggingSystem.bootstrap { label in LineLogHandler(label: label) }
        let logger = Logger(label: "luaexecd")
        // The audit trail's key, before the socket is taken: without it luaexecd would answer
        // requests that leave no record in the trail (SPEC M7), so a key it can neither read nor
        // make stops start-up, as a bad config file does.
        let auditKey: AuditKey
        do {
            let (key, created) = try AuditKey.loadOrCreate(path: settings.auditKey)
            auditKey = key
            if created { logger.notice("made the audit trail's key", metadata: ["file": "\(settings.auditKey)"]) }
        } catch {
            StandardError.write(line: "luaexecd: audit.key: \(error)")
            throw ExitCode(78)
        }
        Signals.blockForSigwait()
        let notifier = SystemdNotifier()

        // Before anything can start a child process (an init script's os.execute): the socket
        // gets close-on-exec, and systemd's variables are cleared.
        let listenFD: Int32
        if let socket = settings.socket {
            listenFD = try FastCGIServer.listen(path: socket)
        } else if let activated = Signals.takeSocketFromSystemd() {
            listenFD = activated
        } else {
            listenFD = try Signals.takeListeningSocketFromStandardInput()
        }
        _ = fcntl(listenFD, F_SETFD, FD_CLOEXEC)

        // Read by every new state (at start and at reset), written by a reload.
        let current = ReadWriteLocked(settings)
        let database = try LuaexecDatabase(path: settings.database)
        let auditWriter = try AuditWriter(trail: AuditTrail(sharing: database), key: auditKey, logger: logger)
        startThread(name: "audit", stackSize: 256 << 10) {
            auditWriter.run { current.read().auditRetention }
        }
        let authenticator = try Authenticator(store: TokenStore(database: database))
        let published = PublishedInfo(sharing: database)
        let stateStore = StateStore(sharing: database)
        let scriptStore = ScriptStore(sharing: database)

        // Start-up (the init scripts above all) runs on a thread of its own while this one
        // takes signals: SIGTERM must stop luaexecd even while an init script runs (SPEC O3).
        let running = Mutex<(executor: LuaExecutor, service: ExecService, server: FastCGIServer)?>(nil)
        startThread(name: "startup", stackSize: 16 << 20) {
            do {
                let parts = try start(
                    listenFD: listenFD, current: current, authenticator: authenticator, stateStore: stateStore,
                    scriptStore: scriptStore, auditWriter: auditWriter, logger: logger)
                running.withLock { $0 = parts }
                startThread(name: "token-refresh", stackSize: 256 << 10) {
                    Maintenance.run(
                        authenticator: authenticator, published: published, stateStore: stateStore,
                        service: parts.service, executor: parts.executor, logger: logger)
                }
                logger.notice(
                    "luaexecd serving",
                    metadata: [
                        "socket": "\(settings.socket ?? "fd \(listenFD)")", "database": "\(settings.database)",
                        "threads": "\(settings.threads)", "config": "\(configName)",
                        "safe_mode": "\(current.read().safeMode)",
                    ])
                notifier.send("READY=1\nSTATUS=serving")
                // Start-up's code and data pages given back: idle luaexecd keeps what serving
                // runs (SPEC P2's idle footprint; CodePages).
                if getenv("LUAEXEC_KEEP_STARTUP_PAGES") == nil { CodePages.releaseAfterStartup() }
                if let interval = notifier.watchdogInterval {
                    // Fed only when a job has gone through the evaluation queue: a state wedged in a
                    // C function starves systemd's watchdog, which then restarts luaexecd (SPEC L5).
                    startThread(name: "watchdog", stackSize: 16 << 20) {
                        while true {
                            parts.executor.ping()
                            notifier.send("WATCHDOG=1")
                            pauseThread(for: interval)
                        }
                    }
                }
            } catch {
                logger.critical("luaexecd cannot start", metadata: ["error": "\(error)"])
                Glibc.exit(1)
            }
        }

        while true {
            let signal = Signals.wait()
            guard let (executor, service, server) = running.withLock({ $0 }) else {
                if signal == SIGHUP {
                    logger.notice("config not reloaded: luaexecd is still starting")
                    continue
                }
                // Nothing is served yet and nothing needs saving: an init script that loops
                // must not hold the stop for its whole time limit.
                logger.notice("stopped during start-up")
                Glibc._exit(0)
            }
            switch signal {
            case SIGHUP:
                notifier.send("RELOADING=1")
                // The reload queues a job, and the thread that queues a job may end up running
                // the queue (the requests waiting in it too): a thread with a large stack, for Lua.
                runOnNewThread(stackSize: 16 << 20) {
                    reload(current: current, executor: executor, service: service, logger: logger)
                }
                notifier.send("READY=1\nSTATUS=serving")
            default:
                notifier.send("STOPPING=1")
                service.stopTakingRequests()
                executor.beginShutdown()
                logger.notice("shutting down: no new requests; waiting for the running evaluation")
                // A socket luaexecd made is its own to close; a socket systemd passed stays open
                // (connections wait in it for the next start), so only new requests are refused.
                if settings.socket != nil { shutdown(listenFD, Int32(SHUT_RD)) }
                // Not runOnNewThread, which waits for its thread: ping returns only once the
                // running chunk has ended, and the wait for it is bounded just below.
                startThread(name: "shutdown", stackSize: 16 << 20) { executor.ping() }
                // Chunks asleep in sleep() are ended now and answered so: they would otherwise
                // hold the grace below and then be cut off without an answer.
                if executor.endWaiting() > 0 { logger.notice("shutting down: the chunks waiting in sleep were ended") }
                server.waitUntilIdle(atMost: .seconds(5))
                // A chunk still running after the grace is interrupted (every chunk can be, even
                // inside finalizers: docs/limits.md), so that its client gets an answer and the
                // daemon ends well within systemd's TimeoutStopSec (30 s).
                if executor.interruptRunning() {
                    logger.notice("shutting down: the running evaluation was interrupted")
                    server.waitUntilIdle(atMost: .seconds(2))
                }
                try? authenticator.flushUses()
                auditWriter.flush()
                try? published.withdraw(Maintenance.endpointsKey)
                logger.notice("luaexecd stopped")
                Glibc.exit(0)
            }
        }
    }

    /// Makes the state (running the init scripts under their limits), the service and the
    /// FastCGI server, and starts serving.
    private func start(
        listenFD: Int32, current: ReadWriteLocked<DaemonSettings>, authenticator: Authenticator, stateStore: StateStore,
        scriptStore: ScriptStore, auditWriter: AuditWriter, logger: Logger
    ) throws -> (executor: LuaExecutor, service: ExecService, server: FastCGIServer) {
        let settings = current.read()
        try stateStore.remember()
        let executor = try LuaExecutor(options: settings.executorOptions, logger: logger) { initRunner in
            let settings = current.read()
            let vm = try LuaVM(limits: .init(memory: settings.memoryLimitMiB << 20))
            vm.logger = logger
            // A request's chunk may wait in sleep this long; the transport's poller wakes it.
            vm.maxWaitSeconds = settings.waitLimit
            vm.maxTimers = settings.timerLimit
            vm.maxRegistrations = settings.endpointLimit
            // What was saved comes back before the init scripts run, so they can read it; what a
            // chunk changes is saved before its answer goes out (SPEC V5, V6).
            vm.persistedLimit = settings.persistedLimitMiB << 20
            try Self.loadSaved(into: vm, from: stateStore, logger: logger)
            vm.changeSink = { changes in
                try stateStore.commit(
                    persisted: changes.persisted,
                    config: changes.config.map { ($0.path, $0.value.flatMap(ConfigValue.init)) })
            }
            vm.savedValues = { changes in
                LuaVM.StateChanges(
                    persisted: try changes.persisted.map { ($0.key, try stateStore.persisted(key: $0.key)) },
                    config: try changes.config.map { ($0.path, try stateStore.config($0.path)?.luaValue) })
            }
            let limit = Duration.milliseconds(Int64(settings.initTimeLimit * 1000))
            if settings.safeMode {
                logger.warning("safe mode: no init scripts and no stored scripts run", metadata: ["dir": "\(settings.initDir)"])
            } else {
                vm.runInitScripts(in: settings.initDir, logger: logger) { _, run in initRunner.run(vm, limit: limit, run) }
            }
            if settings.profile == .restricted { try vm.restrict() }
            // The stored scripts after the init directory's files, in name order, under the same
            // limits (SPEC V8), and after the restricted profile is in force: they run as they
            // ran when they were installed over the API, so one cannot reach at start what it
            // could not reach then. One that fails is logged and skipped; none stops luaexecd.
            if !settings.safeMode {
                do {
                    let scripts = try scriptStore.enabled().map {
                        StoredScriptSource(name: $0.name, version: $0.version, source: $0.source)
                    }
                    vm.runStoredScripts(scripts, logger: logger) { run in initRunner.run(vm, limit: limit, run) }
                } catch {
                    logger.error("stored scripts not run: the database did not give them", metadata: ["error": "\(error)"])
                }
            }
            // Changes the scripts made to the config store set off no callbacks: the state is
            // only starting, and they could keep it from ever serving.
            vm.dropConfigCallbacks()
            return vm
        }
        let throttle = FailureThrottle(policy: settings.throttlePolicy)
        let service = ExecService(
            executor: executor, authenticator: authenticator, stateStore: stateStore, scriptStore: scriptStore,
            throttle: throttle,
            options: settings.serviceOptions, exportMetrics: Self.bootstrapMetrics(), logger: logger,
            auditLines: { [label = LogLine.Text(logger.label)] fields in
                LineLogHandler.write(level: .info, label: label, message: fields)
            },
            auditWriter: auditWriter)
        let server = try FastCGIServer(
            listenFD: listenFD, responder: service,
            options: .init(
                threads: settings.threads, maxConnections: settings.maxConnections,
                readTimeout: .milliseconds(Int64(settings.readTimeout * 1000))),
            logger: logger)
        try server.start()
        return (executor, service, server)
    }

    /// Loads `persisted` and the config store into a new state. No stored value may keep the
    /// daemon from starting (SPEC V6): an entry that cannot be loaded (damaged, nested past the
    /// limit, past the memory cap; a hand-edited or foreign database) is moved to the database's
    /// `set_aside` table, logged, and listed in the status and by `luaexec aside` until an
    /// administrator removes it. The state starts with everything else.
    private static func loadSaved(into vm: LuaVM, from store: StateStore, logger: Logger) throws {
        for entry in try store.setAsideConfig() { logSetAside(entry.section, entry.key, entry.reason, logger) }
        let persisted = try store.persisted()
        let config = try store.config()
        let failures = vm.loadSaved(persisted: persisted, config: config.map { ($0.path, $0.value.luaValue) })
        var configFailures: [String: String] = [:]
        for failure in failures {
            switch failure.section {
            case .persisted:
                let key = persisted[failure.index].key
                do {
                    try store.setAside(persistedKey: key, reason: failure.reason)
                    logSetAside("persisted", StateStore.describe(persistedKey: key), failure.reason, logger)
                } catch {
                    logger.error(
                        "persisted entry not loaded, and not set aside",
                        metadata: [
                            "key": "\(StateStore.describe(persistedKey: key))", "reason": "\(failure.reason)",
                            "error": "\(error)",
                        ])
                }
            case .config:
                configFailures[config[failure.index].path] = failure.reason
            }
        }
        if !configFailures.isEmpty {
            for entry in try store.setAsideConfig(paths: configFailures) {
                logSetAside(entry.section, entry.key, entry.reason, logger)
            }
        }
    }

    private static func logSetAside(_ section: String, _ key: String, _ reason: String, _ logger: Logger) {
        logger.error(
            "saved entry not loaded: set aside (luaexec aside list)",
            metadata: ["section": "\(section)", "key": "\(key)", "reason": "\(reason)"])
    }

    /// swift-metrics with the Prometheus backend (SPEC M5); returns the exporter that
    /// `GET /api/v1/metrics` answers with.
    private static func bootstrapMetrics() -> @Sendable () -> [UInt8] {
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        return { registry.emitToBuffer() }
    }

    /// SIGHUP: reads the config file again and applies it. A file that does not load changes
    /// nothing; the error is logged with its line.
    private func reload(
        current: ReadWriteLocked<DaemonSettings>, executor: LuaExecutor, service: ExecService, logger: Logger
    ) {
        let new: DaemonSettings
        do {
            new = try loadSettings()
        } catch {
            logger.error("config not reloaded; the settings in force stay", metadata: ["error": "\(error)"])
            return
        }
        let old = current.read()
        current.write(new)
        LineLogHandler.setLevel(Logger.Level(rawValue: new.logLevel) ?? .info)
        executor.options = new.executorOptions
        executor.runAfterQueued(label: "reload") { vm in
            vm.limits.memory = new.memoryLimitMiB << 20
            vm.persistedLimit = new.persistedLimitMiB << 20
        }
        service.options = new.serviceOptions
        service.throttle.policy = new.throttlePolicy
        var metadata: Logger.Metadata = ["config": "\(configName)"]
        let restartOnly = old.restartOnlyChanges(to: new)
        if !restartOnly.isEmpty { metadata["needs_restart"] = "\(restartOnly.joined(separator: ","))" }
        // What a new state reads when it is made: the running one keeps what it was made with.
        let atNextReset = [
            ("lua.profile", old.profile != new.profile), ("lua.init_dir", old.initDir != new.initDir),
            ("lua.safe_mode", old.safeMode != new.safeMode), ("limits.wait", old.waitLimit != new.waitLimit),
            ("limits.timers", old.timerLimit != new.timerLimit), ("limits.endpoints", old.endpointLimit != new.endpointLimit),
        ].filter(\.1).map(\.0)
        if !atNextReset.isEmpty { metadata["at_next_reset"] = "\(atNextReset.joined(separator: ","))" }
        logger.notice("config reloaded", metadata: metadata)
    }
}

extension DaemonSettings {
    var executorOptions: LuaExecutor.Options {
        .init(
            timeLimit: .milliseconds(Int64(timeLimit * 1000)), queueTimeout: .milliseconds(Int64(queueTimeout * 1000)),
            queueCapacity: queueCapacity, waitCapacity: waitCapacity,
            // A few of the largest bodies at least, however large exec.max_body is set.
            queueBytes: max(64 << 20, 4 * maxBody))
    }

    var serviceOptions: ExecService.Options {
        .init(
            maxBodySize: maxBody, interactive: interactive, actions: actions,
            scriptTimeLimit: .milliseconds(Int64(initTimeLimit * 1000)), keepVersions: scriptKeepVersions)
    }

    var auditRetention: AuditWriter.Retention { .init(maxRecords: auditMaxRecords, days: auditRetentionDays) }

    var throttlePolicy: FailureThrottle.Policy {
        .init(limit: authFailureLimit, window: .seconds(60), blockFor: .seconds(authBlockSeconds))
    }
}

/// Unbuffered writes to standard error: log lines, and messages before logging starts.
enum StandardError {
    /// Writes `text` as one line, escaped as log lines are (`LogLine`): a config file's value
    /// quoted in the message reaches the journal too.
    static func write(line text: String) {
        var bytes: [UInt8] = []
        LogLine.append(to: &bytes) { $0.text(text) }
        write(bytes: bytes)
    }

    /// Writes all of `bytes`, retrying short writes; gives up silently if standard error is gone.
    static func write(bytes: [UInt8]) {
        writeAll(2, bytes)
    }
}

extension Daemon {
    /// The options, when `arguments` take only the plain forms the systemd unit and the scripts
    /// pass: `--config PATH`, `--set NAME=VALUE` (either also as `--name=value`), `--check-config`,
    /// `--safe-mode`, each option once but `--set`. Anything else (`--help`, a typo, a missing
    /// value, a repeat) gives nil, and swift-argument-parser parses, explains or refuses it.
    /// Why two paths: the parser's start-up (reflection over the options, Codable decoding)
    /// keeps about 0.6 MB of code resident for the daemon's whole life, and luaexecd's idle
    /// footprint is held to 10 MB (docs/packaging.md).
    ///
    /// A static function, not an initializer: assigning an option inside an initializer would
    /// make a new, unparsed property wrapper rather than set its value.
    static func parsePlain(_ arguments: ArraySlice<String>) -> Daemon? {
        var daemon = Daemon()
        daemon.config = nil
        daemon.overrides = []
        daemon.checkConfig = false
        daemon.safeMode = false
        var rest = arguments
        var seen: Set<Substring> = []
        while let argument = rest.popFirst() {
            let equals = argument.firstIndex(of: "=")
            let name = argument[..<(equals ?? argument.endIndex)]
            let inline = equals.map { String(argument[argument.index(after: $0)...]) }
            guard name == "--set" || seen.insert(name).inserted else { return nil }
            switch name {
            case "--config", "--set":
                guard let value = inline ?? rest.popFirst(), inline != nil || !value.hasPrefix("-") else { return nil }
                if name == "--config" { daemon.config = value } else { daemon.overrides.append(value) }
            case "--check-config" where inline == nil: daemon.checkConfig = true
            case "--safe-mode" where inline == nil: daemon.safeMode = true
            default: return nil
            }
        }
        return daemon
    }
}
