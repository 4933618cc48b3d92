import Foundation
import Synchronization
import Testing

@Suite("Concurrency and hostile peers")
struct ConcurrencyTests {
    @Test("400 global increments from 32 concurrent clients give exactly 400")
    func concurrentIncrements() throws {
        let stack = Stack.shared
        let counter = "counter_\(UInt32.random(in: 0...UInt32.max))"
        _ = try stack.eval("\(counter) = 0")
        let chunk = stack.directory + "/\(counter).lua"
        // A read-modify-write split across statements: interleaved evaluations would lose updates.
        try Data("local c = \(counter) \(counter) = c + 1".utf8).write(to: URL(fileURLWithPath: chunk))
        let clients = 32, total = 400
        let statuses = Mutex<[String]>([])
        DispatchQueue.concurrentPerform(iterations: clients) { client in
            let requests = total / clients + (client < total % clients ? 1 : 0)
            var arguments = ["-sk", "--unix-socket", stack.httpsSocket, "-H", "Authorization: Bearer \(stack.adminToken)",
                             "--data-binary", "@" + chunk, "-o", "/dev/null", "-w", "%{http_code}\\n"]
            arguments += Array(repeating: "https://localhost/api/v1/exec/interactive.lua", count: requests)
            let result = try? Stack.run("/usr/bin/curl", arguments)
            statuses.withLock { $0 += (result?.stdout ?? "").split(separator: "\n").map(String.init) }
        }
        #expect(statuses.withLock { $0.count } == total)
        #expect(statuses.withLock { $0.allSatisfy { $0 == "200" } })
        #expect(try stack.eval("return \(counter)").text == "\(total)")
    }

    @Test("a peer writing garbage to the FastCGI socket does not stop the daemon")
    func garbagePeer() throws {
        let stack = Stack.shared
        for garbage in [Array("GET / HTTP/1.1\r\n\r\n".utf8), [UInt8](repeating: 0xFF, count: 4096), [1, 1, 0, 1, 0, 8, 0, 0]] {
            let fd = try UnixSocket.connect(stack.fastcgiSocket)
            _ = garbage.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            close(fd)
        }
        // One that stays connected after its garbage pins at most its own thread.
        let lingering = try UnixSocket.connect(stack.fastcgiSocket)
        defer { close(lingering) }
        _ = [UInt8](repeating: 0x01, count: 3).withUnsafeBytes { write(lingering, $0.baseAddress, $0.count) }

        let result = try stack.eval("return 'still serving'")
        #expect(result.status == 200)
        #expect(result.text == "still serving")
        #expect(kill(stack.luaexecdPID, 0) == 0)
    }

    @Test("a client that disconnects mid-evaluation does not disturb the next request; the chunk runs to its end")
    func disconnectingClient() throws {
        // A stack of its own: on the shared one the chunk could still wait its turn when its
        // client goes, and a request whose client went before it started never runs.
        let stack = try Stack(settings: ["limits.time=30"])
        let arguments = [
            "curl", "-sk", "-o", "/dev/null", "--unix-socket", stack.httpsSocket,
            "-H", "Authorization: Bearer \(stack.adminToken)",
            "--data-binary", "local t = os.clock() while os.clock() - t < 2 do end disconnected = 'finished'",
            "https://localhost/api/v1/exec/interactive.lua",
        ]
        var cArguments = arguments.map { strdup($0) } + [nil]
        defer { for argument in cArguments { free(argument) } }
        var pid: pid_t = 0
        let spawned = try Stack.spawning.withLock { posix_spawn(&pid, "/usr/bin/curl", nil, nil, &cArguments, environ) }
        try #require(spawned == 0)
        // The client goes while its chunk runs.
        try stack.waitForStatus(#""running":{"#)
        kill(pid, SIGKILL)
        waitpid(pid, nil, 0)
        let after = try stack.eval("return disconnected")
        #expect(after.status == 200)
        #expect(after.text == "finished")
    }
}

enum UnixSocket {
    static func connect(_ path: String) throws -> Int32 {
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw StackError("cannot create a socket") }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in raw.copyBytes(from: Array(path.utf8) + [0]) }
        let rc = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                Glibc.connect(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size))
            }
        }
        guard rc == 0 else {
            close(fd)
            throw StackError("cannot connect to \(path)")
        }
        return fd
    }
}
