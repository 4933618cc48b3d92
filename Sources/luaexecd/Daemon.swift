import AccessControl
import ArgumentParser
import ExecService
import FastCGI
import Logging
import LuaRuntime
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

@main
struct Daemon: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "luaexecd",
        abstract: "Evaluates Lua sent over FastCGI in one resident Lua 5.4 state.",
        discussion: """
            Without --socket, luaexecd serves the listening socket systemd passed by socket \
            activation (LISTEN_FDS, fd 3), or else the one on standard input, as spawn-fcgi or \
            systemd's StandardInput=socket pass it.
            """)

    @Option(help: "Unix socket to listen on (created, mode 0660). Default: the socket systemd or a supervisor passed.")
    var socket: String?

    @Option(help: "SQLite database with the tokens.")
    var database = "/var/lib/luaexec/luaexec.db"

    @Option(help: "Directory whose *.lua files run at start, in name order.")
    var initDir = "/etc/luaexec/init.d"

    @Option(help: "FastCGI threads; keep above nginx's upstream keepalive.")
    var threads = 64

    @Option(help: "Wall-clock limit per evaluation, in seconds.")
    var timeLimit = 5.0

    @Option(help: "Memory cap of the Lua state, in MiB.")
    var memoryLimit = 256

    @Option(help: "Largest request body, in bytes.")
    var maxBody = 1 << 20

    @Option(help: "Longest wait for the Lua state before 503 busy, in seconds.")
    var queueTimeout = 10.0

    @Option(help: "Most requests that may wait for the Lua state at once; more get 503 busy.")
    var queueCapacity = 256

    @Option(help: "Failed authentications from one address, within a minute, before it gets 429.")
    var authFailureLimit = 10

    @Option(help: "Seconds an address that failed too often gets 429.")
    var authBlockSeconds = 60

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    func validate() throws {
        guard threads >= 1 else { throw ValidationError("--threads must be at least 1") }
        guard timeLimit > 0 else { throw ValidationError("--time-limit must be positive") }
        guard memoryLimit >= 4 else { throw ValidationError("--memory-limit must be at least 4 (MiB)") }
        guard authFailureLimit >= 1 else { throw ValidationError("--auth-failure-limit must be at least 1") }
        guard authBlockSeconds >= 1 else { throw ValidationError("--auth-block-seconds must be at least 1") }
        guard queueCapacity >= 1 else { throw ValidationError("--queue-capacity must be at least 1") }
        guard maxBody >= 0 else { throw ValidationError("--max-body cannot be negative") }
        guard Logger.Level(rawValue: logLevel) != nil else {
            throw ValidationError("--log-level must be one of trace, debug, info, notice, warning, error, critical")
        }
    }

    func run() throws {
        let level = Logger.Level(rawValue: logLevel)!
        LoggingSystem.bootstrap { label in LineLogHandler(label: label, level: level) }
        let logger = Logger(label: "luaexecd")
        Signals.blockForSigwait()

        // Before anything can start a child process (an init script's os.execute): the socket
        // gets close-on-exec, and systemd's variables are cleared.
        let listenFD: Int32
        if let socket {
            listenFD = try FastCGIServer.listen(path: socket)
        } else if let activated = Signals.takeSocketFromSystemd() {
            listenFD = activated
        } else {
            listenFD = try Signals.takeListeningSocketFromStandardInput()
        }
        _ = fcntl(listenFD, F_SETFD, FD_CLOEXEC)

        let store = try TokenStore(path: database)
        let authenticator = try Authenticator(store: store)

        let limits = LuaVM.Limits(memory: memoryLimit << 20)
        let initDir = initDir
        let executor = try LuaExecutor(
            options: .init(
                timeLimit: .milliseconds(Int64(timeLimit * 1000)), queueTimeout: .milliseconds(Int64(queueTimeout * 1000)),
                queueCapacity: queueCapacity),
            logger: logger
        ) {
            let vm = try LuaVM(limits: limits)
            vm.runInitScripts(in: initDir, logger: logger)
            return vm
        }

        let throttle = FailureThrottle(
            policy: .init(limit: authFailureLimit, window: .seconds(60), blockFor: .seconds(authBlockSeconds)))
        let service = ExecService(
            executor: executor, authenticator: authenticator, throttle: throttle, options: .init(maxBodySize: maxBody),
            logger: logger)
        let server = FastCGIServer(listenFD: listenFD, service: service, options: .init(threads: threads), logger: logger)
        try server.start()

        startThread(name: "token-refresh", stackSize: 256 << 10) {
            Maintenance.run(authenticator: authenticator, logger: logger)
        }
        logger.notice(
            "luaexecd serving",
            metadata: ["socket": "\(socket ?? "fd \(listenFD)")", "database": "\(database)", "threads": "\(threads)"])

        while true {
            switch Signals.wait() {
            case SIGHUP:
                logger.notice("SIGHUP: nothing to reload (settings come from the command line)")
            default:
                logger.notice("shutting down: no new requests; waiting for the running evaluation")
                if socket != nil { shutdown(listenFD, Int32(SHUT_RD)) }
                // A job queued now runs after every job queued before it.
                _ = try? executor.perform { _ in () }
                try? authenticator.flushUses()
                logger.notice("luaexecd stopped")
                Glibc.exit(0)
            }
        }
    }
}
