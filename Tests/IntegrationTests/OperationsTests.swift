import Foundation
import Synchronization
import SystemSupport
import Testing

@Suite("Operations: config file, signals, systemd protocols, nginx rate limit")
struct OperationsTests {
    @Test("a wrong config stops start-up with the file, the line and the reason, exit 78")
    func badConfigRefused() throws {
        let directory = NSTemporaryDirectory() + "luaexec-config-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let config = directory + "/luaexecd.conf"
        try "limits:\n  time: 5\n  memroy: 64\n".write(toFile: config, atomically: true, encoding: .utf8)
        let result = try Stack.run(
            Stack.binDirectory + "/luaexecd", ["--config", config, "--set", "listen.socket=\(directory)/s.sock"])
        #expect(result.status == 78)
        #expect(
            result.stderr
                == "luaexecd: \(config):3: unknown setting 'limits.memroy' (known here: limits.time, limits.init_time, limits.memory, limits.persisted, limits.queue_timeout, limits.wait, limits.timers, limits.endpoints, limits.queue_capacity, limits.wait_capacity)\n"
        )
        // It refused before doing anything: no socket, no database.
        #expect(!FileManager.default.fileExists(atPath: directory + "/s.sock"))
        #expect(try Stack.run(Stack.binDirectory + "/luaexecd", ["--check-config", "--config", config]).status == 78)
    }

    @Test("SIGHUP applies a changed config file; a broken one changes nothing and is logged with its line")
    func reload() throws {
        let stack = try Stack(config: "limits:\n  time: 60\n")
        #expect(try stack.eval("return 1").text == "1")

        try "exec:\n  interactive: false\nlimits:\n  time: 0.3\n".write(
            toFile: stack.configFile, atomically: true, encoding: .utf8)
        kill(stack.luaexecdPID, SIGHUP)
        try Stack.waitUntil(timeout: .seconds(10), "the reload to switch interactive.lua off") {
            (try? stack.eval("return 1").status) == 404
        }
        try "exec:\n  interactive: true\nlimits:\n  time: 0.3\n".write(
            toFile: stack.configFile, atomically: true, encoding: .utf8)
        kill(stack.luaexecdPID, SIGHUP)
        try Stack.waitUntil(timeout: .seconds(10), "the reload to switch interactive.lua on") {
            (try? stack.eval("return 1").status) == 200
        }
        // The lowered time limit applies too.
        let spin = try stack.eval("while true do end")
        #expect(spin.status == 504)
        #expect(spin.headers["x-lua-error"] == "timeout")

        try "exec:\n  interactive: maybe\n".write(toFile: stack.configFile, atomically: true, encoding: .utf8)
        kill(stack.luaexecdPID, SIGHUP)
        try Stack.waitUntil(timeout: .seconds(10), "the refused reload to be logged") {
            stack.luaexecdLog().contains("config not reloaded")
        }
        #expect(stack.luaexecdLog().contains("\(stack.configFile):2: exec.interactive: expected true or false, got 'maybe'"))
        #expect(try stack.eval("return 2").text == "2")
        #expect(kill(stack.luaexecdPID, 0) == 0)
    }

    @Test("what a new state reads (limits.timers here) waits for the next reset after SIGHUP, and the log says so")
    func reloadAtNextReset() throws {
        let stack = try Stack(config: "limits:\n  timers: 1000\n")
        let setThree = "local t = {} for i = 1, 3 do t[i] = timer.after(3600, print) end for i = 1, 3 do timer.cancel(t[i]) end return 'set'"
        #expect(try stack.eval(setThree).text == "set")
        try "limits:\n  timers: 2\n".write(toFile: stack.configFile, atomically: true, encoding: .utf8)
        kill(stack.luaexecdPID, SIGHUP)
        try Stack.waitUntil(timeout: .seconds(10), "the reload") { stack.luaexecdLog().contains("config reloaded") }
        let line = try #require(stack.luaexecdLog().split(separator: "\n").last { $0.contains("config reloaded") })
        #expect(line.contains("at_next_reset=limits.timers"), "\(line)")
        // The running state keeps the limit it was made with; a reset makes one with the new.
        #expect(try stack.eval(setThree).text == "set")
        #expect(try stack.request("/api/v1/admin/reset", method: "POST", token: stack.adminToken).status == 200)
        let refused = try stack.eval(setThree)
        #expect(refused.status == 500)
        #expect(refused.text.contains("too many timers: 2 are set, the most limits.timers allows"), "\(refused.text)")
    }

    @Test("SIGTERM lets the running evaluation finish and answer, refuses new requests, exits 0")
    func gracefulStop() throws {
        let stack = try Stack(settings: ["limits.time=30"])
        let answered = Mutex<Stack.HTTPResult?>(nil)
        let worker = Thread {
            // Runs until the test has sent SIGTERM, then returns: an evaluation in flight.
            answered.withLock {
                $0 = try? stack.eval("while not io.open(release_file) do end return 'finished'", headers: [])
            }
        }
        let releaseFile = stack.directory + "/release"
        _ = try stack.eval("release_file = '\(releaseFile)'")
        worker.start()
        try Stack.waitUntil(timeout: .seconds(10), "the chunk to run") {
            let status = try? stack.request("/api/v1/admin/status", token: stack.adminToken)
            return status?.text.contains("\"running\":{") == true
        }
        kill(stack.luaexecdPID, SIGTERM)
        try Stack.waitUntil(timeout: .seconds(10), "luaexecd to take SIGTERM") {
            stack.luaexecdLog().contains("shutting down")
        }
        // Over a connection nginx kept open, luaexecd answers 503; a new connection finds the
        // socket luaexecd made shut (nginx: 502). Either way nothing runs.
        let ranFile = stack.directory + "/ran"
        let refused = try stack.eval("io.open('\(ranFile)', 'w'):close() return 'new'")
        #expect(refused.status == 503 || refused.status == 502)
        if refused.status == 503 {
            #expect(refused.headers["retry-after"] == "1")
            #expect(refused.text == "luaexecd is stopping; retry in a moment\n")
        }
        #expect(FileManager.default.createFile(atPath: releaseFile, contents: Data()))
        #expect(try stack.waitForExitStatus() == "0\n")
        let result = try #require(answered.withLock { $0 })
        #expect(result.status == 200)
        #expect(result.text == "finished")
        #expect(!FileManager.default.fileExists(atPath: ranFile))
    }

    @Test("SIGTERM ends the chunks asleep in sleep() at once and answers them; luaexecd exits 0")
    func stopWithSleepers() throws {
        let stack = try Stack()
        let answered = Mutex<Stack.HTTPResult?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            let result = try? stack.eval("print('zz') sleep(20) return 'woke'")
            answered.withLock { $0 = result }
            done.signal()
        }
        try Stack.waitUntil(timeout: .seconds(10), "the chunk to sleep") {
            let status = try? stack.request("/api/v1/admin/status", token: stack.adminToken)
            return status?.text.contains(#""why":"sleep""#) == true
        }
        let sent = MonotonicInstant.now()
        kill(stack.luaexecdPID, SIGTERM)
        done.wait()
        let result = try #require(answered.withLock { $0 })
        #expect(result.status == 500)
        #expect(result.headers["x-lua-error"] == "interrupted")
        #expect(result.text.hasPrefix("zz\nluaexecd is stopping: the chunk was ended while it waited in sleep"))
        #expect(try stack.waitForExitStatus() == "0\n")
        // Not the sleep's 20 s, nor the 5 s grace for a running chunk.
        #expect(MonotonicInstant.now().duration(since: sent) < .seconds(4.5))
        #expect(stack.luaexecdLog().contains("the chunks waiting in sleep were ended"))
    }

    @Test("a process a chunk starts inherits no socket: neither the listening socket nor the FastCGI connections")
    func childInheritsNoSocket() throws {
        let stack = try Stack()
        let listing = stack.directory + "/fds"
        // Connections other clients keep open, so that several are there to leak.
        for _ in 0..<4 { #expect(try stack.eval("return 1").text == "1") }
        #expect(try stack.eval("os.execute('ls -l /proc/self/fd > \(listing)')").status == 200)
        let fds = try String(contentsOfFile: listing, encoding: .utf8)
        #expect(fds.contains("/proc/"))  // ls's own directory descriptor: the listing is real
        #expect(!fds.contains("socket:"), "\(fds)")
    }

    @Test("the restricted profile takes io, os.execute, os's file and environment functions, require, debug away; the init scripts' API still works")
    func restrictedProfile() throws {
        let stack = try Stack(settings: ["lua.profile=restricted"])
        #expect(
            try stack.eval("return io, os.execute, package, require, debug, dofile, loadfile").text
                == "nil\tnil\tnil\tnil\tnil\tnil\tnil")
        #expect(
            try stack.eval("return os.remove, os.rename, os.tmpname, os.getenv, os.setlocale, os.date('!%Y', 0)").text
                == "nil\tnil\tnil\tnil\tnil\t1970")
        let attempt = try stack.eval("return os.getenv('PATH')")
        #expect(attempt.status == 500)
        #expect(attempt.text.hasPrefix("interactive.lua:1: attempt to call a nil value (field 'getenv')"))
        #expect(try stack.eval("return type(system.hostname())").text == "string")
        #expect(try stack.eval("system.toast('restricted toast')").status == 200)
        try Stack.waitUntil(timeout: .seconds(5), "the toast in the log") {
            stack.luaexecdLog().contains(#"lua tag=toast text="restricted toast""#)
        }
    }

    @Test("nginx answers 429 past the per-address rate, and those requests never reach luaexecd")
    func rateLimit() throws {
        let stack = try Stack(tcp: true, rateLimit: ("1r/m", 2))
        var statuses: [Int] = []
        for index in 0..<6 {
            let result = try stack.eval("counted = (counted or 0) + 1 return \(index)")
            statuses.append(result.status)
            if result.status == 429 {
                #expect(result.headers["retry-after"] == "1")
                #expect(result.headers["content-security-policy"] == WebConsoleTests.policy)
                #expect(result.text == "too many requests from this address; slow down\n")
            }
        }
        // One request at the rate, two in the burst; then 429 until a minute has passed.
        #expect(statuses == [200, 200, 200, 429, 429, 429])
        // Asked for JSON (or a stream, whose refusals are JSON), the refusal is JSON, as luaexecd's.
        for accept in ["application/json", "text/event-stream", "text/plain, Application/JSON;q=0.5"] {
            let json = try stack.eval("counted = (counted or 0) + 1", headers: ["Accept: \(accept)"])
            #expect(json.status == 429)
            #expect(json.headers["content-type"] == "application/json", "\(accept)")
            #expect(json.headers["retry-after"] == "1")
            #expect(json.text == #"{"ok":false,"error":{"kind":"http","message":"too many requests from this address; slow down"}}"#)
        }
        // Not JSON: a media type that only contains the words.
        #expect(try stack.eval("return 1", headers: ["Accept: application/jsonx"]).headers["content-type"] == "text/plain; charset=utf-8")
        let auditLines = stack.luaexecdLog().split(separator: "\n").filter { $0.contains(" body_sha256=") }
        #expect(auditLines.count == 3)
    }

    @Test("nginx answers 429 past the requests one address may have served at once (a sleeper holds one), and those never reach luaexecd")
    func connectionLimit() throws {
        let stack = try Stack(tcp: true, connectionLimit: 2)
        // Two asleep hold this address's two; they are counted, and end by themselves.
        let done = DispatchSemaphore(value: 0)
        let answers = Mutex<[Int]>([])
        for _ in 0..<2 {
            Thread.detachNewThread { [stack] in
                let status = (try? stack.eval("asleep = (asleep or 0) + 1 sleep(3) return 'woke'"))?.status ?? -1
                answers.withLock { $0.append(status) }
                done.signal()
            }
        }
        // Polled, not slept on, and past nginx (whose slots the poll would take): both asleep.
        let direct = try FastCGIClient(stack.fastcgiSocket)
        try Stack.waitUntil(timeout: .seconds(20), "two requests asleep") {
            guard (try? direct.send(FastCGIClient.request(token: stack.adminToken, chunk: "return asleep"))) != nil
            else { return false }
            return (try? direct.readAnswer().body) == "2"
        }
        let refused = try stack.eval("refused_ran = true return 1")
        #expect(refused.status == 429)
        #expect(refused.headers["retry-after"] == "1")
        #expect(refused.text == "too many requests from this address; slow down\n")
        done.wait()
        done.wait()
        #expect(answers.withLock { $0 } == [200, 200])
        // Room again; what was refused never ran.
        #expect(try stack.eval("return refused_ran == nil").text == "true")
    }

    @Test("nginx -t accepts the shipped site as rendered")
    func nginxAcceptsTheSite() throws {
        let stack = Stack.shared
        let result = try Stack.run("/usr/sbin/nginx", ["-t", "-p", stack.directory, "-c", stack.directory + "/nginx.conf"])
        #expect(result.status == 0)
        #expect(result.stderr.contains("syntax is ok"))
        #expect(result.stderr.contains("test is successful"))
    }

    @Test("--check-config prints every setting in force and exits 0")
    func checkConfig() throws {
        let result = try Stack.run(
            Stack.binDirectory + "/luaexecd",
            ["--check-config", "--config", Stack.repository + "/packaging/luaexecd.conf", "--set", "limits.time=2.5"])
        #expect(result.status == 0)
        let lines = result.stdout.split(separator: "\n")
        #expect(lines.first == "\(Stack.repository)/packaging/luaexecd.conf: ok")
        #expect(lines.contains("limits.time = 2.5"))
        #expect(lines.contains("lua.profile = full"))
        #expect(lines.contains("listen.threads = 3"))
        #expect(lines.contains("listen.read_timeout = 30.0"))
        #expect(lines.contains("audit.key = /etc/luaexec/audit.key"))
        #expect(lines.contains("audit.retention_days = 90"))
        #expect(lines.contains("audit.max_records = 200000"))
        #expect(lines.contains("scripts.keep_versions = 10"))
        #expect(lines.contains("limits.wait = 60.0"))
        #expect(lines.contains("limits.timers = 1000"))
        #expect(lines.contains("limits.wait_capacity = 1024"))
        #expect(lines.contains("limits.endpoints = 1000"))
        #expect(lines.count == 29)
    }

    /// luaexecd reads the plain spellings itself and leaves the rest to swift-argument-parser
    /// (Daemon.parsePlain): both must agree on what a command line means.
    @Test("every spelling of luaexecd's options means the same; what is not plain is explained or refused as before")
    func optionSpellings() throws {
        let luaexecd = Stack.binDirectory + "/luaexecd"
        let config = Stack.repository + "/packaging/luaexecd.conf"
        func settings(_ arguments: [String]) throws -> String {
            let result = try Stack.run(luaexecd, arguments)
            #expect(result.status == 0, "\(arguments): \(result.stderr)")
            return result.stdout
        }
        let plain = try settings(
            ["--config", config, "--set", "limits.time=2.5", "--set=limits.memory=32", "--safe-mode", "--check-config"])
        let lines = plain.split(separator: "\n")
        #expect(lines.first == "\(config): ok")
        #expect(lines.contains("limits.time = 2.5") && lines.contains("limits.memory = 32"))
        #expect(lines.contains("lua.safe_mode = true"))
        #expect(try settings(["--check-config", "--safe-mode", "--set=limits.memory=32", "--config=" + config, "--set", "limits.time=2.5"]) == plain)
        // A repeated --config is left to the parser, whose last one wins.
        let repeated = try settings(["--config", "/nonexistent", "--config", config, "--check-config"])
        #expect(repeated.hasPrefix("\(config): ok\n"))

        let missing = try Stack.run(luaexecd, ["--config"])
        #expect(missing.status == 64)
        #expect(missing.stderr.hasPrefix("Error: Missing value for '--config <config>'"))
        let dashed = try Stack.run(luaexecd, ["--set", "--check-config"])
        #expect(dashed.status == 64)
        #expect(dashed.stderr.hasPrefix("Error: Missing value for '--set <set>'"))
        let unknown = try Stack.run(luaexecd, ["--check-config", "--bogus"])
        #expect(unknown.status == 64)
        #expect(unknown.stderr.hasPrefix("Error: Unknown option '--bogus'"))
        let help = try Stack.run(luaexecd, ["--help"])
        #expect(help.status == 0)
        #expect(help.stdout.hasPrefix("OVERVIEW: Evaluates Lua sent over FastCGI"))
        let invalid = try Stack.run(luaexecd, ["--set", "limits.time=abc", "--check-config"])
        #expect(invalid.status == 78)
        #expect(invalid.stderr == "luaexecd: --set: limits.time: expected a number of seconds above 0, at most 86400, got 'abc'\n")
        #expect(invalid.stdout == "")
    }

    @Test("luaexecd called by the name luaexec is the command-line tool (the package's /usr/bin/luaexec)")
    func multiCall() throws {
        let directory = NSTemporaryDirectory() + "luaexec-multicall-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(
            atPath: directory + "/luaexec", withDestinationPath: Stack.binDirectory + "/luaexecd")
        let created = try Stack.run(directory + "/luaexec", ["token", "create", "ops", "--database", directory + "/db"])
        #expect(created.status == 0)
        #expect(created.stdout.hasPrefix("lxk_"))
        let listed = try Stack.run(directory + "/luaexec", ["token", "list", "--json", "--database", directory + "/db"])
        #expect(listed.stdout.contains("\"name\":\"ops\""))
    }

    @Test("the service unit's systemd-analyze exposure is at most 1.0")
    func unitHardening() throws {
        let result = try Stack.run(
            "/usr/bin/systemd-analyze", ["security", "--offline=true", Stack.repository + "/systemd/luaexecd.service"])
        let summary = try #require(
            result.stdout.split(separator: "\n").first { $0.contains("Overall exposure level for luaexecd.service:") })
        let score = try #require(Double(summary.split(separator: ":")[1].split(separator: " ")[0]))
        #expect(score <= 1.0, "\(summary)")
    }
}
