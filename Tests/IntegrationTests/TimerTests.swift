import AccessControl
import Foundation
import Testing

/// Timers (SPEC V9) through nginx: functions the state runs later, between requests, each under
/// the limits of a chunk. A chunk waits for what a timer did with `sleep` on the server, not with
/// a sleep in the test: `waitFor` asks the state until a condition holds.
// Serialized: one test resets the state, which drops every timer.
@Suite("Timers: work the state does on its own", .serialized)
struct TimerTests {
    static let stack = try! Stack(settings: ["limits.time=0.5", "limits.timers=20", "limits.wait=20"])

    var stack: Stack { Self.stack }

    /// Evaluates `expression` in the state until it is truthy (at most about 10 s), waiting in
    /// `sleep` between tries; returns what it gave, as text.
    func waitFor(_ expression: String) throws -> String {
        try stack.eval(
            "for i = 1, 200 do local v = (\(expression)) if v then return v end sleep(0.05) end return [==[never: \(expression)]==]"
        ).text
    }

    func endpoints() throws -> [[String: Any]] {
        let listing = try stack.request("/api/v1/admin/endpoints", token: stack.adminToken)
        let object = try JSONSerialization.jsonObject(with: Data(listing.body)) as? [String: Any]
        return (object?["endpoints"] as? [[String: Any]]) ?? []
    }

    func timerEntries() throws -> [[String: Any]] { try endpoints().filter { $0["kind"] as? String == "timer" } }

    /// The first timer's registry entry once it counts at least `errors` errors, asked between
    /// sleeps in the state (about 10 s at most); the last one read if it never does.
    func firstTimer(withErrors errors: Int) throws -> [String: Any] {
        var entry: [String: Any] = [:]
        for _ in 0..<200 {
            entry = try timerEntries().first ?? [:]
            if (entry["errors"] as? Int ?? 0) >= errors { break }
            _ = try stack.eval("sleep(0.05)")
        }
        return entry
    }

    @Test("timer.after runs once, in due order; timer.every runs until cancelled; cancel says whether it was set")
    func afterEveryCancel() throws {
        _ = try stack.eval(
            """
            order = {}
            timer.after(0.3, function() order[#order + 1] = 'a' end)
            timer.after(0.1, function() order[#order + 1] = 'b' end)
            timer.after(0.2, function() order[#order + 1] = 'c' end)
            """)
        #expect(try waitFor("#order == 3 and table.concat(order, ',')") == "b,c,a")
        // Once only.
        #expect(try stack.eval("sleep(0.3) return #order").text == "3")

        _ = try stack.eval("ticks = 0 ticker = timer.every(0.05, function() ticks = ticks + 1 end)")
        let ticking = try waitFor("ticks >= 3 and 'ticking'")
        #expect(ticking == "ticking")
        #expect(try stack.eval("stopped_at = ticks return timer.cancel(ticker)").text == "true")
        #expect(try stack.eval("sleep(0.3) return ticks == stopped_at, timer.cancel(ticker)").text == "true\tfalse")
        #expect(try timerEntries().isEmpty)
    }

    @Test("a failing callback is counted and the timer goes on; a looping one is stopped at its limit and requests are served")
    func failures() throws {
        _ = try stack.eval("failing = timer.every(0.05, function() error('boom') end)")
        #expect(try waitFor("true") == "true")
        let failing = try firstTimer(withErrors: 2)
        #expect((failing["errors"] as? Int ?? 0) >= 2)
        #expect(failing["calls"] as? Int == failing["errors"] as? Int)
        let lastError = failing["last_error"] as? [String: Any]
        #expect(lastError?["kind"] as? String == "runtime")
        // Bound first: `#expect((x?["k"] as? String ?? "").hasSuffix(...))` is never false
        // (swift-testing expands it to an optional call whose result it drops).
        let lastMessage = lastError?["message"] as? String ?? ""
        #expect(lastMessage.hasSuffix("boom"), "\(failing)")
        #expect(failing["interval_seconds"] as? Double == 0.05)
        #expect((failing["registered_by"] as? [String: Any])?["token"] as? String == "admin")
        _ = try stack.eval("timer.cancel(failing)")

        _ = try stack.eval("looped = timer.after(0, function() while true do end end)")
        #expect(try waitFor("true") == "true")
        #expect(try stack.eval("return 1 + 1").text == "2")
        let metrics = try stack.request("/api/v1/metrics", token: stack.adminToken).text
        #expect(metrics.contains("luaexec_timer_errors_total "))
        #expect(metrics.contains("# HELP luaexec_timer_lateness_seconds "))
    }

    @Test("a config callback that a timer's config.set starts runs in that timer's run, once: its failure is the timer's error, a loop ends at the timer's limit")
    func configCallbackFromTimer() throws {
        // The timer sets the path once; the config callback fails. The timer's own code after
        // config.set still ran: config callbacks run once the timer's function has returned,
        // within its run.
        _ = try stack.eval(
            """
            door_runs = 0
            config.register('timertest.door', function() door_runs = door_runs + 1 error('door stuck') end)
            door_timer = timer.every(0.05, function()
              if not door_set then door_set = true config.set('timertest.door', 'open') after_set = true end
            end)
            """)
        #expect(try waitFor("door_runs == 1 and after_set and 'ran'") == "ran")
        var entry = try firstTimer(withErrors: 1)
        #expect(entry["errors"] as? Int == 1)
        let failure = entry["last_error"] as? [String: Any]
        #expect(failure?["kind"] as? String == "runtime")
        let message = failure?["message"] as? String ?? ""
        #expect(
            message.hasPrefix("config: 'timertest.door' was set and saved, but a function registered for it failed:"),
            "\(entry)")
        // Later runs of the timer and later requests run it no more.
        #expect(try stack.eval("sleep(0.3) return door_runs, config.get('timertest.door')").text == "1\topen")
        _ = try stack.eval("timer.cancel(door_timer)")

        // A callback that loops is ended by the timer's time limit (limits.time, 0.5 s here),
        // once, and requests are served meanwhile and after.
        _ = try stack.eval(
            """
            spin_runs = 0
            config.register('timertest.spin', function() spin_runs = spin_runs + 1 while true do end end)
            spin_timer = timer.every(0.05, function()
              if not spin_set then spin_set = true config.set('timertest.spin', 1) end
            end)
            """)
        entry = try firstTimer(withErrors: 1)
        #expect((entry["last_error"] as? [String: Any])?["kind"] as? String == "timeout", "\(entry)")
        #expect(try stack.eval("sleep(0.3) return spin_runs, config.get('timertest.spin')").text == "1\t1")
        #expect(try stack.eval("return 1 + 1").text == "2")
        _ = try stack.eval("timer.cancel(spin_timer)")
    }

    @Test("a callback may sleep; it is not run again while it sleeps")
    func callbackSleeps() throws {
        _ = try stack.eval(
            "overlap, runs, running = false, 0, false "
                + "sleepy = timer.every(0.05, function() if running then overlap = true end running = true runs = runs + 1 sleep(0.2) running = false end)"
        )
        #expect(try waitFor("runs >= 3 and tostring(overlap)") == "false")
        _ = try stack.eval("timer.cancel(sleepy)")
    }

    @Test(
        "bad arguments are errors that say so",
        arguments: [
            ("timer.every(0, print)", "bad argument #1 to 'every' (the interval must be 0.01 to 31536000 seconds)"),
            ("timer.every(0.001, print)", "bad argument #1 to 'every' (the interval must be 0.01 to 31536000 seconds)"),
            ("timer.after(-1, print)", "bad argument #1 to 'after' (the delay must be 0 to 31536000 seconds)"),
            ("timer.after(0/0, print)", "bad argument #1 to 'after' (the delay must be 0 to 31536000 seconds)"),
            ("timer.after(1, 'print')", "bad argument #2 to 'after' (function expected, got string)"),
            ("timer.cancel({})", "bad argument #1 to 'cancel' (luaexec.timer expected, got table)"),
        ])
    func badInput(chunk: String, message: String) throws {
        let result = try stack.eval(chunk)
        #expect(result.status == 500)
        #expect(result.text.hasPrefix("interactive.lua:1: " + message))
    }

    @Test("more timers than limits.timers is an error; what was set stays")
    func limit() throws {
        let result = try stack.eval("held = {} for i = 1, 25 do held[i] = timer.after(600, print) end")
        #expect(result.status == 500)
        #expect(
            result.text.hasPrefix(
                "interactive.lua:1: too many timers: 20 are set, the most limits.timers allows; cancel some first"))
        #expect(try timerEntries().count == 20)
        #expect(try stack.eval("local n = 0 for _, h in pairs(held) do if timer.cancel(h) then n = n + 1 end end return n").text == "20")
        #expect(try timerEntries().isEmpty)
    }

    @Test("a reset drops the timers; a stored script's timer is set again when it runs, and goes with its script")
    func resetAndStoredScripts() throws {
        _ = try stack.eval("timer.every(60, print)")
        let put = try stack.request(
            "/api/v1/admin/scripts/heartbeat.lua", method: "PUT", token: stack.adminToken,
            body: Array("beats = 0\ntimer.every(0.05, function() beats = beats + 1 end)\n".utf8))
        #expect(put.status == 201)
        #expect(try timerEntries().count == 2)
        let reset = try stack.request("/api/v1/admin/reset", method: "POST", token: stack.adminToken)
        #expect(reset.status == 200)
        let after = try timerEntries()
        #expect(after.count == 1)
        let origin = after.first?["registered_by"] as? [String: Any]
        #expect(origin?["script"] as? String == "heartbeat.lua")
        #expect(origin?["line"] as? Int == 2)
        #expect(try waitFor("beats >= 2 and 'beating'") == "beating")
        // A new version sets its own timer; the old one's goes.
        let second = try stack.request(
            "/api/v1/admin/scripts/heartbeat.lua", method: "PUT", token: stack.adminToken,
            body: Array("timer.every(30, function() end)\n".utf8))
        #expect(second.status == 200)
        #expect(try timerEntries().map { $0["interval_seconds"] as? Double } == [30])
        // A version that fails leaves the timer of the one before, and sets none.
        let failed = try stack.request(
            "/api/v1/admin/scripts/heartbeat.lua", method: "PUT", token: stack.adminToken,
            body: Array("timer.every(1, print)\nerror('no')\n".utf8))
        #expect(failed.status == 422)
        #expect(try timerEntries().map { $0["interval_seconds"] as? Double } == [30])
        let deleted = try stack.request("/api/v1/admin/scripts/heartbeat.lua", method: "DELETE", token: stack.adminToken)
        #expect(deleted.status == 200)
        #expect(try timerEntries().isEmpty)
    }

    @Test("the README's background example: a timer records samples into persisted, an endpoint serves them")
    func readmeExample() throws {
        let readme = try String(contentsOfFile: Stack.repository + "/README.md", encoding: .utf8)
        let start = try #require(readme.range(of: "$ cat loadavg.lua\n"))
        let end = try #require(readme.range(of: "$ luaexec script push loadavg.lua", range: start.upperBound..<readme.endIndex))
        let script = String(readme[start.upperBound..<end.lowerBound])
        #expect(script.contains("timer.every(10, function()"))
        // Every 50 ms rather than 10 s: the same script, sooner.
        let fast = script.replacingOccurrences(of: "timer.every(10, function()", with: "timer.every(0.05, function()")
        let put = try stack.request(
            "/api/v1/admin/scripts/loadavg.lua", method: "PUT", token: stack.adminToken, body: Array(fast.utf8))
        #expect(put.status == 201)
        #expect(try waitFor("#persisted.load >= 3 and 'sampled'") == "sampled")
        let served = try stack.request("/api/v1/exec/load", token: stack.adminToken)
        #expect(served.status == 200)
        let samples = served.text.split(separator: "\n")
        #expect(samples.count >= 3)
        // `19:47:21 0.31`: the time of day (UTC) and the load.
        #expect(
            samples.allSatisfy { $0.wholeMatch(of: /\d\d:\d\d:\d\d \d+(\.\d+)?/) != nil }, "\(served.text)")
        #expect(served.text.hasSuffix("\n"))
        let timer = try #require(try timerEntries().first)
        #expect((timer["registered_by"] as? [String: Any])?["script"] as? String == "loadavg.lua")
        #expect(
            try stack.request("/api/v1/admin/scripts/loadavg.lua", method: "DELETE", token: stack.adminToken).status
                == 200)
        _ = try stack.eval("persisted.load = nil")
    }

    @Test("luaexec endpoints lists a timer: when it runs next and how its last run failed")
    func commandLine() throws {
        _ = try stack.eval("listed_timer = timer.every(30, function() error('listed') end)")
        var table = ""
        try Stack.waitUntil(timeout: .seconds(10), "luaexecd to publish the timer") {
            table =
                (try? Stack.run(Stack.binDirectory + "/luaexec", ["endpoints", "--database", stack.database]))?.stdout
                ?? ""
            return table.contains("(every 30 s, next in ")
        }
        let line = try #require(table.split(separator: "\n").first { $0.hasPrefix("timer ") })
        #expect(line.wholeMatch(of: /timer +timer \d+ \(every 30 s, next in \d+(\.\d)? s\) +token admin +\S+ +0 +0 */) != nil, "\(line)")
        _ = try stack.eval("timer.cancel(listed_timer)")
    }
}

/// `luaexec endpoints` reads what luaexecd published, up to 10 s ago when only counts changed:
/// when a timer runs next is said as of now, not as of then.
@Suite("luaexec endpoints counts a timer's next run from now")
struct PublishedTimerTests {
    @Test("a listing published 25 s ago: a 30 s timer due in 30 s then runs in 5 s; one due in 2 s every 10 s, in 7 s")
    func nextRunFromNow() throws {
        let database = "/tmp/luaexec-published-\(UUID().uuidString).db"
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: database + suffix) } }
        let made = try Stack.run(Stack.binDirectory + "/luaexec", ["token", "create", "t", "--database", database])
        #expect(made.status == 0, "\(made.stderr)")
        func timer(_ number: Int, every interval: String, dueInMs: Int) -> String {
            #"{"name":"timer \#(number)","kind":"timer","registered_by":{"token":"admin"},"#
                + #""since":"2026-12-06T06:00:00Z","calls":3,"errors":0,"interval_seconds":\#(interval),"#
                + #""due_in_ms":\#(dueInMs),"last_error":null}"#
        }
        let timers = [timer(1, every: "30", dueInMs: 30_000), timer(2, every: "10", dueInMs: 2000), timer(3, every: "null", dueInMs: 2000)]
        let listing = #"{"interactive":true,"actions":true,"endpoints":["# + timers.joined(separator: ",") + "]}"
        let db = try LuaexecDatabase(path: database)
        try PublishedInfo(sharing: db).publish("endpoints", listing, pid: getpid(), now: Date().addingTimeInterval(-25))
        let listed = try Stack.run(Stack.binDirectory + "/luaexec", ["endpoints", "--database", database])
        #expect(listed.status == 0, "\(listed.stderr)")
        let lines = listed.stdout.split(separator: "\n")
        // The listing's time is kept in whole seconds: its age is 25 or 26 s.
        func shows(_ text: String...) -> Bool { lines.contains { line in text.contains { line.contains($0) } } }
        #expect(shows("timer 1 (every 30 s, next in 5 s)", "timer 1 (every 30 s, next in 4 s)"), "\(listed.stdout)")
        #expect(shows("timer 2 (every 10 s, next in 7 s)", "timer 2 (every 10 s, next in 6 s)"), "\(listed.stdout)")
        #expect(shows("timer 3 (once, next in 0 s)"), "\(listed.stdout)")
    }
}

/// Timers that loop to their limit, each due again as its run ends (an `exec` token can set
/// them, a stored script can set them at every start): requests go on being served, the
/// administrator's included, each behind one timer's run at most.
@Suite("Timers that loop do not hold requests past queue_timeout")
struct LoopingTimerTests {
    @Test("with three looping timers each request is answered, within one timer's run, and a reset gets through")
    func requestsBetweenLoopingTimers() throws {
        // Three runs of 0.5 s add up past the queue timeout of 1 s.
        let stack = try Stack(settings: ["limits.time=0.5", "limits.queue_timeout=1"])
        #expect(
            try stack.eval("for i = 1, 3 do timer.every(0.01, function() while true do end end) end return 'set'").text
                == "set")
        // The timers run now, one after another, each to its limit.
        #expect(try stack.eval("return 'first'").status == 200)
        // Each behind the running timer (0.5 s at most), not behind all three (1.5 s: 503 busy).
        for attempt in 0..<4 {
            let answer = try stack.eval("return 'served \(attempt)'")
            #expect(answer.status == 200 && answer.text == "served \(attempt)", "\(answer.status) \(answer.text)")
        }
        let status = try stack.request("/api/v1/admin/status", token: stack.adminToken)
        #expect(status.status == 200)
        let reset = try stack.request("/api/v1/admin/reset", method: "POST", token: stack.adminToken)
        #expect(reset.status == 200, "\(reset.text)")
        #expect(try stack.eval("return 'after the reset'").text == "after the reset")
    }
}
