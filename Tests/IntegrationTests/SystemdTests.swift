import Foundation
import Synchronization
import Testing

@Suite("systemd: readiness and watchdog notifications, restart under socket activation (SPEC L5)")
struct SystemdTests {
    /// A datagram socket standing in for systemd's `$NOTIFY_SOCKET`.
    final class NotifySocket {
        let path: String
        let fd: Int32

        init(path: String) throws {
            self.path = path
            fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
            var address = sockaddr_un()
            address.sun_family = sa_family_t(AF_UNIX)
            withUnsafeMutableBytes(of: &address.sun_path) { raw in raw.copyBytes(from: Array(path.utf8) + [0]) }
            let bound = withUnsafePointer(to: &address) { pointer in
                pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
                }
            }
            guard bound == 0 else { throw StackError("cannot bind \(path)") }
            var timeout = timeval(tv_sec: 20, tv_usec: 0)
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        }

        deinit { close(fd) }

        /// The next message, or nil after 20 s without one.
        func receive() -> String? {
            var buffer = [UInt8](repeating: 0, count: 4096)
            let count = recv(fd, &buffer, buffer.count, 0)
            guard count > 0 else { return nil }
            return String(decoding: buffer[..<count], as: UTF8.self)
        }

        /// Skips watchdog pings until a message other than `WATCHDOG=1` arrives.
        func receiveSkippingPings() -> String? {
            while let message = receive() {
                if message != "WATCHDOG=1" { return message }
            }
            return nil
        }
    }

    @Test("READY once serving, WATCHDOG while the evaluation loop moves, RELOADING on SIGHUP, STOPPING on SIGTERM")
    func notifications() throws {
        let directory = NSTemporaryDirectory() + "luaexec-notify-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let notify = try NotifySocket(path: directory + "/notify.sock")
        let process = Process()
        process.executableURL = URL(fileURLWithPath: Stack.binDirectory + "/luaexecd")
        process.arguments = [
            "--set", "listen.socket=\(directory)/luaexecd.sock", "--set", "database=\(directory)/luaexec.db",
            "--set", "audit.key=\(directory)/audit.key",
            "--set", "lua.init_dir=\(Stack.repository)/init.d",
        ]
        process.environment = ["NOTIFY_SOCKET": notify.path, "WATCHDOG_USEC": "200000", "PATH": "/usr/bin:/bin"]
        process.standardError = FileHandle(forWritingAtPath: "/dev/null")
        try process.run()
        defer { if process.isRunning { process.terminate() } }

        #expect(notify.receive() == "READY=1\nSTATUS=serving")
        // WATCHDOG_USEC=200000: a ping every 100 ms.
        #expect(notify.receive() == "WATCHDOG=1")
        #expect(notify.receive() == "WATCHDOG=1")

        kill(process.processIdentifier, SIGHUP)
        #expect(notify.receiveSkippingPings() == "RELOADING=1")
        #expect(notify.receiveSkippingPings() == "READY=1\nSTATUS=serving")

        kill(process.processIdentifier, SIGTERM)
        #expect(notify.receiveSkippingPings() == "STOPPING=1")
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
    }

    @Test("killed luaexecd comes back on the same socket: requests wait, tokens stay, the state starts fresh")
    func restartAfterKill() throws {
        let stack = try Stack(launch: .supervisedSocketActivation)
        #expect(try stack.eval("before_kill = 'set'").status == 200)
        #expect(try stack.eval("return before_kill").text == "set")
        let first = try Stack.waitForPIDFile(stack.supervisedPIDFile)

        // Hold the restart, kill luaexecd, and show that nothing serves meanwhile but the socket
        // still takes connections.
        #expect(FileManager.default.createFile(atPath: stack.restartHold, contents: Data()))
        kill(first, SIGKILL)
        try Stack.waitUntil(timeout: .seconds(10), "the killed luaexecd to be gone") { kill(first, 0) != 0 }
        #expect(Stack.canConnect(stack.fastcgiSocket))

        let answered = Mutex<Stack.HTTPResult?>(nil)
        let waiting = Thread { answered.withLock { $0 = try? stack.eval("return before_kill == nil, 'fresh'") } }
        waiting.start()
        try FileManager.default.removeItem(atPath: stack.restartHold)

        try Stack.waitUntil(timeout: .seconds(20), "the waiting request to be answered") {
            answered.withLock { $0 } != nil
        }
        let result = try #require(answered.withLock { $0 })
        #expect(result.status == 200)
        #expect(result.text == "true\tfresh")  // the init scripts ran again; globals are gone
        let second = try Stack.waitForPIDFile(stack.supervisedPIDFile)
        #expect(second != first)
        // The token that authorised everything above came from the database, which survived.
        #expect(try stack.eval("return sip.calls.get_all()[1]:getState()").text == "active")
    }
}
