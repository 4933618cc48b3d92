import Foundation
import Testing

/// SPEC E13: `Accept: text/event-stream`, through nginx's shipped site, read as it arrives.
@Suite("Streamed answers (Server-Sent Events) through nginx")
struct StreamingTests {
    let stack = Stack.shared

    /// A spin of `seconds` of wall-clock time (the kernel's uptime, in hundredths) in Lua: no
    /// `sleep`, so only the count hook can hand output over meanwhile. Not os.clock, the
    /// process's CPU time, which on a loaded machine runs slower than the time limit's clock.
    static func spin(_ seconds: Double) -> String {
        "do local function now() local f = io.open('/proc/uptime') local t = f:read('n') f:close() return t end "
            + "local t = now() while now() - t < \(seconds) do end end"
    }

    @Test("output printed before a long spin arrives while the chunk still runs; then the result event")
    func outputBeforeSpin() throws {
        // A stack of its own: on the shared one the request may wait in the queue behind other
        // tests' chunks (SPEC E8), which the time measured from the request would include.
        let stack = try Stack(settings: ["limits.time=30"])
        let answer = try stack.stream("print('first') \(Self.spin(2)) print('second') return 'done', 42")
        #expect(answer.status == 200)
        #expect(answer.headers["content-type"] == "text/event-stream")
        #expect(answer.headers["cache-control"] == "no-store")
        // nginx acts on X-Accel-Buffering and does not pass it on.
        #expect(answer.headers["x-accel-buffering"] == nil)
        // A streamed answer is never a page either (HeaderPolicy; WebConsoleTests.apiPolicy).
        #expect(answer.headers["content-security-policy"] == WebConsoleTests.apiPolicy)
        #expect(answer.headers["x-content-type-options"] == "nosniff")
        let first = try #require(answer.parts.first)
        #expect(first.bytes == Array("event: output\ndata: \"first\\n\"\n\n".utf8))
        // A behavioural bound, not a performance figure: the print's event comes while the
        // two-second spin is still going.
        #expect(first.at < .seconds(1), "first event after \(first.at)")
        #expect(try #require(answer.parts.last).at >= .seconds(2))
        #expect(
            Self.normalized(answer.text)
                == "event: output\ndata: \"first\\n\"\n\n"
                + "event: output\ndata: \"second\\n\"\n\n"
                + "event: result\ndata: {\"ok\":true,\"results\":[\"done\",\"42\"],\"output\":\"\",\"elapsed_ms\":N}\n\n"
        )
    }

    @Test("a chunk that prints nothing before it ends gets one answer: its own status, the final event")
    func nothingStreamed() throws {
        let ok = try stack.stream("print('quick') return 1")
        #expect(ok.status == 200)
        #expect(ok.headers["server-timing"]?.hasPrefix("lua;dur=") == true)
        #expect(
            Self.normalized(ok.text)
                == "event: output\ndata: \"quick\\n\"\n\n"
                + "event: result\ndata: {\"ok\":true,\"results\":[\"1\"],\"output\":\"\",\"elapsed_ms\":N}\n\n")
        let failed = try stack.stream("print('partial') error('boom')")
        #expect(failed.status == 500)
        #expect(failed.headers["x-lua-error"] == "runtime")
        #expect(
            failed.text.hasPrefix(
                "event: output\ndata: \"partial\\n\"\n\nevent: error\ndata: {\"ok\":false,\"error\":{\"kind\":\"runtime\","
                    + "\"message\":\"interactive.lua:1: boom\",\"traceback\":\"stack traceback:\\n\\t[C]: in function 'error'"
            ))
        #expect(failed.text.hasSuffix("\"},\"output\":\"\"}\n\n"))
        // Results as typed trees when JSON is accepted too (the REPL, the page); else as tostring
        // shows them (E4's text in E5's shape: luaexec eval).
        let typed = try stack.stream("return {1, 2}, 'x', nil", accept: "text/event-stream, application/json")
        #expect(
            Self.normalized(typed.text)
                == "event: result\ndata: {\"ok\":true,\"results\":[[1,2],\"x\",null],\"output\":\"\",\"elapsed_ms\":N}\n\n"
        )
        let syntax = try stack.stream("return +")
        #expect(syntax.status == 400)
        #expect(
            syntax.text == "event: error\ndata: {\"ok\":false,\"error\":{\"kind\":\"syntax\",\"message\":"
                + "\"interactive.lua:1: unexpected symbol near '+'\",\"traceback\":null},\"output\":\"\"}\n\n")
    }

    @Test("an error after streamed output is an error event in a 200 stream")
    func errorAfterOutput() throws {
        let answer = try stack.stream("print('working') \(Self.spin(0.4)) error('gave up')")
        #expect(answer.status == 200)
        #expect(answer.headers["x-lua-error"] == nil)
        let text = answer.text
        #expect(
            text.hasPrefix(
                "event: output\ndata: \"working\\n\"\n\nevent: error\ndata: {\"ok\":false,\"error\":"
                    + "{\"kind\":\"runtime\",\"message\":\"interactive.lua:1: gave up\",\"traceback\":\"stack traceback:"
            ))
        #expect(text.hasSuffix("},\"output\":\"\"}\n\n"))
    }

    @Test("output before a sleep streams at the sleep; the chunk goes on after it")
    func sleepStreams() throws {
        let stack = try Stack()  // as outputBeforeSpin
        let answer = try stack.stream("print('before') sleep(1) print('after') return 'woke'")
        #expect(answer.status == 200)
        let first = try #require(answer.parts.first)
        #expect(first.bytes == Array("event: output\ndata: \"before\\n\"\n\n".utf8))
        #expect(first.at < .milliseconds(700), "first event after \(first.at)")
        #expect(try #require(answer.parts.last).at >= .seconds(1))
        #expect(
            Self.normalized(answer.text)
                == "event: output\ndata: \"before\\n\"\n\nevent: output\ndata: \"after\\n\"\n\n"
                + "event: result\ndata: {\"ok\":true,\"results\":[\"woke\"],\"output\":\"\",\"elapsed_ms\":N}\n\n")
    }

    @Test("an endpoint streams what its handler prints; its final event is E5's JSON of what it returned")
    func endpointStreams() throws {
        let name = "streamer_\(UInt32.random(in: 0...UInt32.max))"
        #expect(
            try stack.eval(
                "http.listen('\(name)', function() print('step 1') \(Self.spin(0.5)) print('step 2') return 201, 'made' end)"
            ).status == 200)
        let answer = try stack.stream(chunk: nil, path: "/api/v1/exec/\(name)")
        #expect(answer.status == 200)
        #expect(try #require(answer.parts.first).bytes == Array("event: output\ndata: \"step 1\\n\"\n\n".utf8))
        #expect(
            Self.normalized(answer.text)
                == "event: output\ndata: \"step 1\\n\"\n\nevent: output\ndata: \"step 2\\n\"\n\n"
                + "event: result\ndata: {\"ok\":true,\"results\":[201,\"made\"],\"output\":\"\",\"elapsed_ms\":N}\n\n")
        // Without the header, the endpoint answers as it always did.
        let plain = try stack.request("/api/v1/exec/\(name)", token: stack.adminToken)
        #expect(plain.status == 201)
        #expect(plain.text == "made")
    }

    @Test("an Action URL streams what its function prints, then E5's JSON of its results")
    func actionStreams() throws {
        let stack = ActionTests.stack
        let name = "stepper_\(UInt32.random(in: 0...UInt32.max))"
        #expect(
            try stack.eval(
                "http.action('\(name)', function() print('step') \(Self.spin(0.4)) return 'stepped' end, {help = 'steps'})"
            ).status == 200)
        let answer = try stack.stream(chunk: nil, path: "/api/v1/exec/command?action=\(name)")
        #expect(answer.status == 200)
        #expect(try #require(answer.parts.first).bytes == Array("event: output\ndata: \"step\\n\"\n\n".utf8))
        #expect(
            Self.normalized(answer.text)
                == "event: output\ndata: \"step\\n\"\n\n"
                + "event: result\ndata: {\"ok\":true,\"results\":[\"stepped\"],\"output\":\"\",\"elapsed_ms\":N}\n\n")
    }

    @Test("text that is not UTF-8 comes as base64; a UTF-8 character is never cut between events")
    func bytesExact() throws {
        let answer = try stack.stream(
            #"io.write("\255\254") \#(Self.spin(0.3)) io.write("\226\130") \#(Self.spin(0.3)) io.write("\172!")"#)
        #expect(
            Self.normalized(answer.text)
                == "event: output\ndata: {\"base64\":\"//4=\"}\n\nevent: output\ndata: \"€!\"\n\n"
                + "event: result\ndata: {\"ok\":true,\"results\":[],\"output\":\"\",\"elapsed_ms\":N}\n\n")
    }

    @Test("a client that drops the stream stops only its stream: the chunk goes on, the audit line says so")
    func clientDrops() throws {
        let marker = "dropped_\(UInt32.random(in: 0...UInt32.max))"
        let answer = try stack.stream(
            "print('one') \(Self.spin(1)) print('two') \(Self.spin(0.2)) print('three') \(marker) = 'finished' return 1",
            goAfterFirstPart: true)
        #expect(answer.parts.first?.bytes == Array("event: output\ndata: \"one\\n\"\n\n".utf8))
        try Stack.waitUntil(timeout: .seconds(10), "the dropped stream's audit line") {
            stack.luaexecdLog().contains("stream=dropped")
        }
        #expect(try stack.eval("return \(marker)").text == "finished")
        let line = try #require(stack.luaexecdLog().split(separator: "\n").last { $0.contains("stream=dropped") })
        #expect(line.contains("status=200"))
        #expect(line.contains("endpoint=\"POST /api/v1/exec/interactive.lua\""))
        // The audit trail in the database says so too, once its writer has taken the record.
        try Stack.waitUntil(timeout: .seconds(10), "the dropped stream in the audit trail") {
            let listed = try? stack.request("/api/v1/admin/audit?limit=1000", token: stack.adminToken)
            return listed?.text.contains("stream dropped after ") ?? false
        }
    }

    @Test("a chunk that prints past the output limit while streaming is stopped at the limit")
    func outputCapHolds() throws {
        // A stack of its own with room in time: 16 MiB through nginx to a client that reads it
        // took longer than the shared stack's time limit on a loaded two-core machine (the
        // chunk then ends by its time limit, which is not what this test is about).
        let stack = try Stack(settings: ["limits.time=60"])
        let answer = try stack.stream(
            "local line = string.rep('x', 4095) for i = 1, 5000 do print(line) end return 'unreached'")
        #expect(answer.status == 200)
        let events = answer.text.components(separatedBy: "\n\n").filter { !$0.isEmpty }
        let outputs = events.filter { $0.hasPrefix("event: output\n") }
        let printed = outputs.reduce(0) { total, event in
            total
                + (try! JSONSerialization.jsonObject(
                    with: Data(event.dropFirst("event: output\ndata: ".count).utf8), options: .fragmentsAllowed)
                as! String).utf8.count
        }
        #expect(printed <= 16 << 20)
        #expect(printed >= (16 << 20) - 8192)
        let last = try #require(events.last)
        #expect(
            last.hasPrefix(
                "event: error\ndata: {\"ok\":false,\"error\":{\"kind\":\"runtime\",\"message\":\"interactive.lua:1: output limit of 16777216 bytes exceeded\""
            ))
        #expect(try stack.eval("return 'still here'").text == "still here")
    }

    @Test(
        "lighttpd's and Apache's sites pass the stream on as it comes", arguments: [Stack.WebServer.lighttpd, .apache])
    func otherServers(_ server: Stack.WebServer) throws {
        let stack = try Stack(settings: ["auth.failure_limit=1000000", "limits.time=30"], server: server)
        let answer = try stack.stream("print('first') \(Self.spin(1.5)) return 'done'")
        #expect(answer.status == 200)
        #expect(answer.headers["content-type"] == "text/event-stream")
        let first = try #require(answer.parts.first)
        #expect(first.bytes == Array("event: output\ndata: \"first\\n\"\n\n".utf8))
        #expect(first.at < .seconds(1), "first event after \(first.at)")
        #expect(
            Self.normalized(answer.text)
                == "event: output\ndata: \"first\\n\"\n\n"
                + "event: result\ndata: {\"ok\":true,\"results\":[\"done\"],\"output\":\"\",\"elapsed_ms\":N}\n\n")
    }

    @Test("the README's streamed example answers as the README shows")
    func readmeExample() throws {
        let chunk = #"for i = 1, 3 do print("ring " .. i) sleep(1) end return "rang""#
        let readme = try String(contentsOfFile: Stack.repository + "/README.md", encoding: .utf8)
        let command = try #require(readme.range(of: "-d '\(chunk)'\n"))
        let end = try #require(readme.range(of: "```", range: command.upperBound..<readme.endIndex))
        let shown = String(readme[command.upperBound..<end.lowerBound])
        let answer = try stack.stream(chunk)
        #expect(answer.status == 200)
        #expect(Self.normalized(answer.text) == Self.normalized(shown) + "\n")
    }

    /// `elapsed_ms` varies: N stands for it.
    static func normalized(_ text: String) -> String {
        text.replacingOccurrences(of: #""elapsed_ms":[0-9.]+"#, with: "\"elapsed_ms\":N", options: .regularExpression)
    }
}

extension Stack {
    struct Streamed {
        var status: Int
        var headers: [String: String]
        /// Each read of curl's output, with the time since the request began.
        var parts: [(at: Duration, bytes: [UInt8])]
        var body: [UInt8] { parts.flatMap(\.bytes) }
        var text: String { String(decoding: body, as: UTF8.self) }
    }

    /// A request with `Accept: text/event-stream` through the web server, its body read as curl
    /// passes it on (`-N`: no buffering in curl either). `goAfterFirstPart`: the client goes away
    /// once the first part came (no status or headers are read then).
    func stream(
        _ chunk: String, accept: String = "text/event-stream", headers: [String] = [], extra: [String] = [],
        goAfterFirstPart: Bool = false
    ) throws -> Streamed {
        try stream(chunk: chunk, accept: accept, headers: headers, extra: extra, goAfterFirstPart: goAfterFirstPart)
    }

    func stream(
        chunk: String?, path: String = "/api/v1/exec/interactive.lua", accept: String = "text/event-stream",
        headers: [String] = [], extra: [String] = [], goAfterFirstPart: Bool = false
    ) throws -> Streamed {
        let id = UUID().uuidString
        let headerFile = directory + "/sh-\(id)"
        let dataFile = directory + "/sd-\(id)"
        defer { for file in [headerFile, dataFile] { try? FileManager.default.removeItem(atPath: file) } }
        var arguments = [
            "-sNk", "-D", headerFile, "-H", "Authorization: Bearer \(adminToken)", "-H", "Accept: \(accept)",
        ]
        // nginx on a unix socket; lighttpd and Apache on a TCP port.
        if httpsPort == nil { arguments += ["--unix-socket", httpsSocket] }
        for header in headers { arguments += ["-H", header] }
        if let chunk {
            try Data(chunk.utf8).write(to: URL(fileURLWithPath: dataFile))
            arguments += ["--data-binary", "@" + dataFile]
        }
        arguments += extra + [(httpsPort.map { "https://127.0.0.1:\($0)" } ?? "https://localhost") + path]
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
        process.arguments = arguments
        let out = try Self.closeOnExecPipe()
        process.standardOutput = out.write
        process.standardError = FileHandle.nullDevice
        process.standardInput = FileHandle.nullDevice
        let clock = ContinuousClock()
        let began = clock.now
        try Self.spawning.withLock { try process.run() }
        try out.write.close()
        var parts: [(at: Duration, bytes: [UInt8])] = []
        while true {
            let data = out.read.availableData
            if data.isEmpty { break }
            parts.append((clock.now - began, Array(data)))
            if goAfterFirstPart {
                // The client goes away mid-stream: curl ends, its connection to nginx closes.
                process.terminate()
                break
            }
        }
        try out.read.close()
        process.waitUntilExit()
        if goAfterFirstPart { return Streamed(status: 0, headers: [:], parts: parts) }
        guard process.terminationStatus == 0 else {
            throw StackError("curl failed (\(process.terminationStatus))")
        }
        let parsed = try Self.parse(headers: String(contentsOfFile: headerFile, encoding: .utf8), body: Data())
        return Streamed(status: parsed.status, headers: parsed.headers, parts: parts)
    }
}

/// What streams hold for clients that read slowly is bounded (FastCGIServer.streamBacklogLimit):
/// nginx passes a stream on as its client reads, so the rest waits in luaexecd.
@Suite("Streamed answers to slow clients hold a bounded amount")
struct SlowStreamTests {
    @Test("eight clients reading at 1 KiB/s, each streaming 15 MiB: luaexecd holds the 64 MiB budget, not 120 MiB; a fast client behind them gets all")
    func slowClientsBounded() throws {
        // Each chunk makes and sends 15 MiB: on a loaded machine (a whole `make test` on two
        // cores) that took 2-4 s each, and the last of the eight were refused 503 busy at the
        // default 10 s queue timeout. Neither limit is what is tested here.
        let stack = try Stack(settings: ["limits.queue_timeout=600", "limits.time=120"])
        let chunk = "io.write(string.rep('x', 15 << 20)) return 'done'"
        let dataFile = stack.directory + "/slow-chunk"
        try Data(chunk.utf8).write(to: URL(fileURLWithPath: dataFile))
        // Spawned and reaped directly: Foundation's Process took minutes to see these exit.
        var clients: [pid_t] = []
        defer {
            for pid in clients { kill(pid, SIGKILL) }
            for pid in clients { waitpid(pid, nil, 0) }
        }
        let idle = try stack.luaexecdStatus("VmRSS")
        let arguments = [
            "curl", "-sNk", "--limit-rate", "1k", "-o", "/dev/null", "--unix-socket", stack.httpsSocket,
            "-H", "Authorization: Bearer \(stack.adminToken)", "-H", "Accept: text/event-stream",
            "--data-binary", "@" + dataFile, "https://localhost/api/v1/exec/interactive.lua",
        ]
        for _ in 0..<8 {
            var pid: pid_t = 0
            var cArguments = arguments.map { strdup($0) } + [nil]
            defer { for argument in cArguments { free(argument) } }
            var actions = posix_spawn_file_actions_t()
            posix_spawn_file_actions_init(&actions)
            defer { posix_spawn_file_actions_destroy(&actions) }
            for fd: Int32 in [0, 1, 2] { posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0) }
            let spawned = try Stack.spawning.withLock { posix_spawn(&pid, "/usr/bin/curl", &actions, nil, &cArguments, environ) }
            #expect(spawned == 0)
            if spawned == 0 { clients.append(pid) }
        }
        // Every chunk has ended (its audit line is written when its stream ends on luaexecd's
        // side); their clients still read.
        let answered = #"endpoint="POST /api/v1/exec/interactive.lua""#
        try Stack.waitUntil(timeout: .seconds(300), "the eight chunks to end") {
            stack.luaexecdLog().components(separatedBy: answered).count - 1 >= 8
        }
        // Each streamed (none refused, none answered whole).
        #expect(stack.luaexecdLog().components(separatedBy: "stream=").count - 1 == 8, "\(stack.luaexecdLog())")
        let held = try stack.luaexecdStatus("VmRSS") - idle
        // KiB. 8 × 15 MiB (120 MiB) before; the budget is 64 MiB.
        #expect(held < 96 << 10, "luaexecd holds \(held >> 10) MiB more than idle")
        // Cut once their chunks had ended (audited then, `stream=sent`): the log line says so.
        #expect(stack.luaexecdLog().contains("cutting a streamed answer: the streams' clients read too slowly"))
        // With the slow ones still connected and the budget full, a client that reads gets its
        // whole stream: the slow streams are cut, not the one being written.
        for attempt in 0..<2 {
            let fast = try stack.stream(chunk)
            #expect(fast.status == 200)
            #expect(fast.text.contains("event: result\ndata: {\"ok\":true,\"results\":[\"done\"]"), "attempt \(attempt)")
            #expect(fast.body.count > 15 << 20, "attempt \(attempt)")
        }
        // The slow ones go; luaexecd sees their connections close and lets go of what they held.
        for pid in clients { kill(pid, SIGKILL) }
        for pid in clients { waitpid(pid, nil, 0) }
        clients = []
        try Stack.waitUntil(timeout: .seconds(30), "luaexecd to let go of the slow streams") {
            (try? stack.luaexecdStatus("VmRSS")).map { $0 - idle < 32 << 10 } ?? false
        }
    }
}
