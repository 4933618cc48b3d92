import Foundation
import SystemSupport
import Testing

/// The real stack for a test: nginx with the shipped site, luaexecd, a SQLite database and an
/// admin token, all in a fresh temporary directory. nginx listens on unix sockets, so stacks
/// never compete for ports and tests can run in parallel.
final class Stack: Sendable {
    let directory: String
    let adminToken: String
    /// When set, nginx serves HTTPS on 127.0.0.1 at this port instead of a unix socket, so
    /// requests can come from different client addresses (curl --interface 127.0.0.N).
    let httpsPort: Int?
    /// lighttpd's and Apache's plain-HTTP port (nginx's is the unix socket `httpSocket`).
    let plainPort: Int?
    let luaexecdPID: Int32
    /// The web server in front of luaexecd.
    let server: WebServer
    private let lifelines: [FileHandle]

    /// The web servers luaexec ships a site for (docs/servers.md). lighttpd and Apache httpd
    /// listen on TCP only (the port of `httpsPort`), each started in the foreground with the
    /// stack's own configuration, never as the system's service.
    enum WebServer: String, Sendable, CaseIterable, CustomStringConvertible {
        case nginx, lighttpd, apache
        var description: String { rawValue }
    }

    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    static let binDirectory: String = {
        if let dir = ProcessInfo.processInfo.environment["LUAEXEC_BIN_DIR"], !dir.isEmpty { return dir }
        // `swift test` runs the test bundle from the build products directory.
        return URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().path
    }()

    /// One certificate for every stack of this test run.
    static let certificate: (cert: String, key: String) = {
        let dir = NSTemporaryDirectory() + "luaexec-cert-\(UUID().uuidString)"
        try! FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let result = try! run(repository + "/scripts/make-cert.sh", [dir + "/cert.pem", dir + "/key.pem"])
        precondition(result.status == 0, "make-cert.sh failed")
        return (dir + "/cert.pem", dir + "/key.pem")
    }()

    /// A stack shared by tests that only need "a running luaexec". Its requests all come from
    /// nginx's unix socket (one client address), so the failure throttle is set out of reach.
    static let shared: Stack = try! Stack(settings: ["auth.failure_limit=1000000"])

    var httpsSocket: String { directory + "/https.sock" }
    var httpSocket: String { directory + "/http.sock" }
    var fastcgiSocket: String { directory + "/luaexecd.sock" }
    /// luaexec's database: `luaexec.db` in the stack's directory unless the test chose a path.
    let database: String
    /// luaexecd's config file (the `config` text); a test may rewrite it and send SIGHUP.
    var configFile: String { directory + "/luaexecd.conf" }

    /// How luaexecd gets its listening socket.
    enum Launch {
        /// `listen.socket`: luaexecd creates it.
        case socketOption
        /// spawn-fcgi creates it and execs luaexecd with it on standard input.
        case standardInput
        /// systemd-socket-activate creates it and execs luaexecd with LISTEN_FDS=1 (fd 3).
        case socketActivation
        /// As `socketActivation`, under a shell loop that starts luaexecd again whenever it
        /// ends other than with status 0: systemd's socket unit and `Restart=on-failure`
        /// without PID 1. While the file `restartHold` exists, the loop waits before restarting.
        case supervisedSocketActivation
    }

    /// The supervised launch's current luaexecd.
    var supervisedPIDFile: String { directory + "/luaexecd.current.pid" }
    /// While this file exists, the supervised launch does not restart luaexecd.
    var restartHold: String { directory + "/restart.hold" }
    /// luaexecd's exit status, once it has exited (not for the supervised launch).
    var exitStatusFile: String { Self.daemonPIDFile(in: directory) + ".status" }
    /// Where the lifeline writes the pid of the process it started for luaexecd.
    static func daemonPIDFile(in directory: String) -> String { directory + "/luaexecd.child.pid" }

    /// - Parameters:
    ///   - settings: `--set` assignments (`limits.time=0.5`), over `config`.
    ///   - config: the text of luaexecd's config file (YAML).
    ///   - rateLimit: nginx's per-address limit on /api/ (`RATE BURST`). Every client of a
    ///     unix-socket stack shares one address, so the default is out of reach.
    ///   - connectionLimit: how many requests of one address nginx serves under /api/ at once
    ///     (`LUAEXEC_API_CONNECTIONS`); out of reach too by default, for the same reason.
    init(
        settings: [String] = [], config: String = "", initDirectory: String? = nil, tcp: Bool = false,
        rateLimit: (rate: String, burst: Int) = ("100000r/s", 100_000), connectionLimit: Int = 65_535,
        launch: Launch = .socketOption,
        arguments extraArguments: [String] = [], database: String? = nil, server: WebServer = .nginx
    ) throws {
        self.server = server
        let directory = NSTemporaryDirectory() + "luaexec-stack-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        self.directory = directory
        let database = database ?? directory + "/luaexec.db"
        self.database = database
        let httpsPort = tcp || server != .nginx ? try Self.freePort() : nil
        self.httpsPort = httpsPort
        let plainPort = server != .nginx ? try Self.freePort() : nil
        self.plainPort = plainPort
        let (cert, key) = Self.certificate
        let httpsListen = httpsPort.map { "127.0.0.1:\($0)" } ?? "unix:\(directory)/https.sock"
        let (script, renderArguments): (String, [String])
        switch server {
        case .nginx:
            (script, renderArguments) = (
                "render-nginx.sh",
                [
                    directory, directory + "/luaexecd.sock", httpsListen, "unix:\(directory)/http.sock", "", cert, key,
                    rateLimit.rate, String(rateLimit.burst),
                ]
            )
        case .lighttpd, .apache:
            (script, renderArguments) = (
                "render-\(server).sh",
                [
                    directory, directory + "/luaexecd.sock", httpsListen, String(plainPort!), ":\(httpsPort!)",
                    cert, key,
                ]
            )
        }
        var environment = ProcessInfo.processInfo.environment
        environment["LUAEXEC_API_CONNECTIONS"] = String(connectionLimit)
        let render = try Self.run(Self.repository + "/scripts/" + script, renderArguments, environment: environment)
        guard render.status == 0 else { throw StackError("\(script) failed: \(render.stderr)") }

        let created = try Self.run(
            Self.binDirectory + "/luaexec",
            ["token", "create", "admin", "--scope", "exec", "--scope", "admin", "--database", database])
        guard created.status == 0 else { throw StackError("luaexec token create failed: \(created.stderr)") }
        adminToken = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)

        try config.write(toFile: directory + "/luaexecd.conf", atomically: true, encoding: .utf8)
        let luaexecd = Self.binDirectory + "/luaexecd", socket = directory + "/luaexecd.sock"
        var arguments = [
            "--config", directory + "/luaexecd.conf", "--set", "database=\(database)",
            "--set", "audit.key=\(directory)/audit.key",
            "--set", "lua.init_dir=\(initDirectory ?? Self.repository + "/init.d")",
        ]
        if launch == .socketOption { arguments += ["--set", "listen.socket=\(socket)"] }
        arguments += settings.flatMap { ["--set", $0] } + extraArguments
        let (executable, launchArguments): (String, [String])
        switch launch {
        case .socketOption:
            (executable, launchArguments) = (luaexecd, arguments)
        case .standardInput:
            (executable, launchArguments) = ("/usr/bin/spawn-fcgi", ["-n", "-s", socket, "-M", "0660", "--", luaexecd] + arguments)
        case .socketActivation:
            (executable, launchArguments) = ("/usr/bin/systemd-socket-activate", ["-l", socket, luaexecd] + arguments)
        case .supervisedSocketActivation:
            // systemd-socket-activate sets LISTEN_PID to the loop's pid; each luaexecd gets its own.
            let loop = """
                trap 'kill $child 2>/dev/null; exit 0' TERM
                while :; do
                    sh -c 'export LISTEN_PID=$$; exec "$@"' luaexecd "$@" & child=$!
                    echo $child > '\(directory)/luaexecd.current.pid'
                    wait $child && exit 0
                    while [ -e '\(directory)/restart.hold' ]; do sleep 0.02; done
                done
                """
            (executable, launchArguments) = (
                "/usr/bin/systemd-socket-activate", ["-l", socket, "/bin/sh", "-c", loop, "supervisor", luaexecd] + arguments
            )
        }
        let daemon = try Self.startWithLifeline(
            executable, launchArguments,
            log: directory + "/logs/luaexecd.log", pidFile: Self.daemonPIDFile(in: directory))
        let (frontExecutable, frontArguments): (String, [String])
        switch server {
        case .nginx: (frontExecutable, frontArguments) = ("/usr/sbin/nginx", ["-p", directory, "-c", directory + "/nginx.conf"])
        case .lighttpd: (frontExecutable, frontArguments) = ("/usr/sbin/lighttpd", ["-D", "-f", directory + "/lighttpd.conf"])
        case .apache:
            (frontExecutable, frontArguments) = ("/usr/sbin/apache2", ["-f", directory + "/apache2.conf", "-D", "FOREGROUND"])
        }
        let front = try Self.startWithLifeline(
            frontExecutable, frontArguments, log: directory + "/logs/\(server).out",
            pidFile: directory + "/\(server).child.pid")
        lifelines = [daemon.lifeline, front.lifeline]
        luaexecdPID = try Self.waitForPIDFile(Self.daemonPIDFile(in: directory))
        try Self.waitForSocket(directory + "/luaexecd.sock")
        switch server {
        case .nginx: try Self.waitForSocket(directory + "/http.sock")
        case .lighttpd, .apache:
            try Self.waitUntil(timeout: .seconds(20), "\(server) to accept connections on port \(httpsPort!)") {
                Self.canConnect(port: httpsPort!)
            }
        }
    }

    static func canConnect(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) == 0
            }
        }
    }

    /// A TCP port free right now on 127.0.0.1 (the kernel picks it).
    static func freePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(fd, $0, length) == 0 && getsockname(fd, $0, &length) == 0
            }
        }
        guard bound else { throw StackError("cannot find a free port") }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    deinit { stop() }

    /// Ends nginx and luaexecd (closing the lifeline makes their wrapper kill them).
    func stop() {
        for lifeline in lifelines { try? lifeline.close() }
    }

    // MARK: Requests

    struct HTTPResult: Sendable {
        var status: Int
        var headers: [String: String]
        var body: [UInt8]
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// One request through nginx over TLS, with curl.
    func request(
        _ path: String = "/api/v1/exec/interactive.lua", method: String? = nil, token: String? = nil,
        headers: [String] = [], body: [UInt8]? = nil, extra: [String] = [], over socket: String? = nil
    ) throws -> HTTPResult {
        let id = UUID().uuidString
        let headerFile = directory + "/h-\(id)", bodyFile = directory + "/b-\(id)", dataFile = directory + "/d-\(id)"
        defer {
            for file in [headerFile, bodyFile, dataFile] { try? FileManager.default.removeItem(atPath: file) }
        }
        var arguments = ["-sk", "-D", headerFile, "-o", bodyFile]
        let base: String
        if let socket {
            arguments += ["--unix-socket", socket]
            base = "http://localhost"
        } else if let httpsPort {
            base = "https://127.0.0.1:\(httpsPort)"
        } else {
            arguments += ["--unix-socket", httpsSocket]
            base = "https://localhost"
        }
        if let method { arguments += ["-X", method] }
        if let token { arguments += ["-H", "Authorization: Bearer \(token)"] }
        for header in headers { arguments += ["-H", header] }
        if let body {
            try Data(body).write(to: URL(fileURLWithPath: dataFile))
            arguments += ["--data-binary", "@" + dataFile]
        }
        arguments += extra
        arguments.append(base + path)
        let result = try Self.run("/usr/bin/curl", arguments)
        guard result.status == 0 else { throw StackError("curl failed (\(result.status)): \(result.stderr)") }
        // curl creates no output file for an answer without a body (a 204, a 304).
        let body = FileManager.default.fileExists(atPath: bodyFile) ? try Data(contentsOf: URL(fileURLWithPath: bodyFile)) : Data()
        return try Self.parse(headers: String(contentsOfFile: headerFile, encoding: .utf8), body: body)
    }

    /// A POST of `chunk` to interactive.lua with the admin token.
    func eval(_ chunk: String, headers: [String] = []) throws -> HTTPResult {
        try request(token: adminToken, headers: headers, body: Array(chunk.utf8))
    }

    static func parse(headers raw: String, body: Data) throws -> HTTPResult {
        // The last response block (after any 100 Continue).
        let blocks = raw.components(separatedBy: "\r\n\r\n").filter { !$0.isEmpty }
        guard let block = blocks.last else { throw StackError("no response headers") }
        let lines = block.components(separatedBy: "\r\n")
        let statusParts = lines[0].split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { throw StackError("bad status line \(lines[0])") }
        var headers: [String: String] = [:]
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return HTTPResult(status: status, headers: headers, body: Array(body))
    }

    /// luaexecd's exit status, once it has exited and its wrapper has written the whole status.
    func waitForExitStatus(timeout: Duration = .seconds(10)) throws -> String {
        var status = ""
        try Self.waitUntil(timeout: timeout, "luaexecd to exit") {
            status = (try? String(contentsOfFile: exitStatusFile, encoding: .utf8)) ?? ""
            return status.hasSuffix("\n")
        }
        return status
    }

    /// A token made with `luaexec token create NAME --scope ...`, usable at once (SPEC T7).
    /// The package's database, which `luaexec` opens when told of no other.
    static let systemDatabase = "/var/lib/luaexec/luaexec.db"

    func makeToken(_ name: String, scopes: [String]) throws -> String {
        let created = try Self.run(
            Self.binDirectory + "/luaexec", ["token", "create", name, "--database", database] + scopes.flatMap { ["--scope", $0] })
        guard created.status == 0 else { throw StackError("luaexec token create failed: \(created.stderr)") }
        return created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// luaexecd's `/proc/PID/NAME` (`status`, `maps`), read until `read(2)` says the end:
    /// /proc files report a size of 0, and a reader that trusts it may stop early.
    func luaexecdProcFile(_ name: String) throws -> String {
        String(decoding: try Files.contents(atPath: "/proc/\(luaexecdPID)/\(name)"), as: UTF8.self)
    }

    /// A number from luaexecd's `/proc/PID/status`: `VmRSS`, `RssAnon` (KiB), `Threads`.
    func luaexecdStatus(_ field: String) throws -> Int {
        let status = try luaexecdProcFile("status")
        guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(field + ":") }),
            let value = line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first.flatMap({ Int($0) })
        else { throw StackError("no \(field) in /proc/\(luaexecdPID)/status") }
        return value
    }

    func luaexecdLog() -> String { (try? String(contentsOfFile: directory + "/logs/luaexecd.log", encoding: .utf8)) ?? "" }

    // MARK: Processes

    struct ProcessResult {
        var status: Int32
        var stdout: String
        var stderr: String
    }

    static func run(_ executable: String, _ arguments: [String], environment: [String: String]? = nil) throws -> ProcessResult {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        if let environment { process.environment = environment }
        // Made close-on-exec before any process starts: Foundation's Process passes every
        // descriptor that is not to the processes it starts, so a server another test starts at the same moment
        // kept the write end of a Pipe() and this read never reached its end (a test hung in
        // Stack.init). The child gets its ends as 1 and 2, which exec keeps.
        let (out, err) = (try Self.closeOnExecPipe(), try Self.closeOnExecPipe())
        process.standardOutput = out.write
        process.standardError = err.write
        process.standardInput = FileHandle.nullDevice
        do {
            try spawning.withLock { try process.run() }
        } catch {
            for handle in [out.read, out.write, err.read, err.write] { try? handle.close() }
            throw error
        }
        try out.write.close()
        try err.write.close()
        let stdout = out.read.readDataToEndOfFile()
        let stderr = err.read.readDataToEndOfFile()
        try out.read.close()
        try err.read.close()
        process.waitUntilExit()
        return ProcessResult(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// Held while the harness makes a pipe and while it starts a process: a pipe is made
    /// close-on-exec before any process can start, so none inherits another's pipe.
    static let spawning = NSLock()

    /// A pipe whose two ends no process started from now on inherits. `pipe2(O_CLOEXEC)` is not
    /// in Swift's Glibc module: `pipe` and `fcntl`, under `spawning`.
    static func closeOnExecPipe() throws -> (read: FileHandle, write: FileHandle) {
        try spawning.withLock {
            var fds: [Int32] = [0, 0]
            guard pipe(&fds) == 0 else { throw StackError("pipe failed: errno \(errno)") }
            for fd in fds { _ = fcntl(fd, F_SETFD, FD_CLOEXEC) }
            return (FileHandle(fileDescriptor: fds[0], closeOnDealloc: false), FileHandle(fileDescriptor: fds[1], closeOnDealloc: false))
        }
    }

    /// Starts `executable` under a shell that kills it when its standard input closes: when the
    /// test process ends, however it ends, no server outlives it. Its exit status lands in
    /// `<pidFile>.status`.
    static func startWithLifeline(_ executable: String, _ arguments: [String], log: String, pidFile: String) throws
        -> (process: Process, lifeline: FileHandle)
    {
        try FileManager.default.createDirectory(
            atPath: (log as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let process = Process()
        // The test runner's threads block most signals, and a child inherits the mask: a shell
        // would never see its child exit (SIGCHLD), a server never see SIGTERM. Start from an
        // empty mask, as a service manager does.
        process.executableURL = URL(fileURLWithPath: "/usr/bin/perl")
        process.arguments = [
            "-MPOSIX", "-e", "sigprocmask(SIG_SETMASK, POSIX::SigSet->new) or die; exec @ARGV or die",
            "/bin/sh", "-c",
            // A background job's standard input is /dev/null: the lifeline is read through fd 3.
            "exec 3<&0; \"$@\" 3<&- 2>>'\(log)' >>'\(log)' & child=$!; echo $child > '\(pidFile)'; "
                + "(read _ignored <&3; kill $child 2>/dev/null) & exec 3<&-; "
                + "wait $child; echo $? > '\(pidFile).status'",
            // The server gets descriptors 0 to 2 only, as from a service manager. Not the shell:
            // Foundation's Process learns that its child ended when the child's end of a socket
            // pair closes, so the shell must keep that descriptor to its end.
            "lifeline", "/usr/bin/perl", "-MPOSIX", "-e", "POSIX::close($_) for 3..1023; exec @ARGV or die",
            executable,
        ] + arguments
        let pipe = Pipe()
        process.standardInput = pipe
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        // A server lives as long as its test: it must not hold a pipe Stack.run reads to its end.
        try spawning.withLock { try process.run() }
        return (process, pipe.fileHandleForWriting)
    }

    static func waitForSocket(_ path: String, timeout: Duration = .seconds(20)) throws {
        try waitUntil(timeout: timeout, "\(path) to accept connections") { canConnect(path) }
    }

    static func waitForPIDFile(_ path: String) throws -> Int32 {
        var pid: Int32 = 0
        try waitUntil(timeout: .seconds(20), "\(path)") {
            guard let text = try? String(contentsOfFile: path, encoding: .utf8),
                let value = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines))
            else { return false }
            pid = value
            return true
        }
        return pid
    }

    /// Polls `condition` until it holds: waiting for a state, not sleeping over a race.
    static func waitUntil(timeout: Duration, _ what: String, _ condition: () -> Bool) throws {
        let clock = ContinuousClock()
        let deadline = clock.now + timeout
        while !condition() {
            guard clock.now < deadline else { throw StackError("timed out waiting for \(what)") }
            usleep(10_000)
        }
    }

    static func canConnect(_ path: String) -> Bool {
        guard let fd = try? UnixSocket.connect(path) else { return false }
        close(fd)
        return true
    }
}

struct StackError: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}
