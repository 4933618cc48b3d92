import Foundation
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
    let luaexecdPID: Int32
    private let lifelines: [FileHandle]

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
    static let shared: Stack = try! Stack(daemonArguments: ["--auth-failure-limit", "1000000"])

    var httpsSocket: String { directory + "/https.sock" }
    var httpSocket: String { directory + "/http.sock" }
    var fastcgiSocket: String { directory + "/luaexecd.sock" }
    var database: String { directory + "/luaexec.db" }

    /// How luaexecd gets its listening socket.
    enum Launch {
        /// `--socket PATH`: luaexecd creates it.
        case socketOption
        /// spawn-fcgi creates it and execs luaexecd with it on standard input.
        case standardInput
        /// systemd-socket-activate creates it and execs luaexecd with LISTEN_FDS=1 (fd 3).
        case socketActivation
    }

    init(daemonArguments: [String] = [], initDirectory: String? = nil, tcp: Bool = false, launch: Launch = .socketOption) throws {
        let directory = NSTemporaryDirectory() + "luaexec-stack-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        self.directory = directory
        let httpsPort = tcp ? try Self.freePort() : nil
        self.httpsPort = httpsPort
        let (cert, key) = Self.certificate
        let httpsListen = httpsPort.map { "127.0.0.1:\($0)" } ?? "unix:\(directory)/https.sock"
        let render = try Self.run(
            Self.repository + "/scripts/render-nginx.sh",
            [directory, directory + "/luaexecd.sock", httpsListen, "unix:\(directory)/http.sock", "", cert, key])
        guard render.status == 0 else { throw StackError("render-nginx.sh failed: \(render.stderr)") }

        let created = try Self.run(
            Self.binDirectory + "/luaexec",
            ["token", "create", "admin", "--scope", "exec", "--scope", "admin", "--database", directory + "/luaexec.db"])
        guard created.status == 0 else { throw StackError("luaexec token create failed: \(created.stderr)") }
        adminToken = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)

        let arguments = [
            "--database", directory + "/luaexec.db", "--init-dir", initDirectory ?? Self.repository + "/init.d",
        ] + daemonArguments
        let luaexecd = Self.binDirectory + "/luaexecd", socket = directory + "/luaexecd.sock"
        let (executable, launchArguments): (String, [String])
        switch launch {
        case .socketOption:
            (executable, launchArguments) = (luaexecd, ["--socket", socket] + arguments)
        case .standardInput:
            (executable, launchArguments) = ("/usr/bin/spawn-fcgi", ["-n", "-s", socket, "-M", "0660", "--", luaexecd] + arguments)
        case .socketActivation:
            (executable, launchArguments) = ("/usr/bin/systemd-socket-activate", ["-l", socket, luaexecd] + arguments)
        }
        let daemon = try Self.startWithLifeline(
            executable, launchArguments,
            log: directory + "/logs/luaexecd.log", pidFile: directory + "/luaexecd.child.pid")
        let nginx = try Self.startWithLifeline(
            "/usr/sbin/nginx", ["-p", directory, "-c", directory + "/nginx.conf"], log: directory + "/logs/nginx.out",
            pidFile: directory + "/nginx.child.pid")
        lifelines = [daemon.lifeline, nginx.lifeline]
        luaexecdPID = try Self.waitForPIDFile(directory + "/luaexecd.child.pid")
        try Self.waitForSocket(directory + "/luaexecd.sock")
        try Self.waitForSocket(directory + "/http.sock")
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
        return try Self.parse(headers: String(contentsOfFile: headerFile, encoding: .utf8), body: Data(contentsOf: URL(fileURLWithPath: bodyFile)))
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
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let stdout = out.fileHandleForReading.readDataToEndOfFile()
        let stderr = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return ProcessResult(
            status: process.terminationStatus, stdout: String(decoding: stdout, as: UTF8.self),
            stderr: String(decoding: stderr, as: UTF8.self))
    }

    /// Starts `executable` under a shell that kills it when its standard input closes: when the
    /// test process ends, however it ends, no server outlives it.
    static func startWithLifeline(_ executable: String, _ arguments: [String], log: String, pidFile: String) throws
        -> (process: Process, lifeline: FileHandle)
    {
        try FileManager.default.createDirectory(
            atPath: (log as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/sh")
        process.arguments = [
            "-c", "\"$@\" 2>>'\(log)' >>'\(log)' & child=$!; echo $child > '\(pidFile)'; read _ignored; kill $child",
            "lifeline", executable,
        ] + arguments
        let pipe = Pipe()
        process.standardInput = pipe
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        try process.run()
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
