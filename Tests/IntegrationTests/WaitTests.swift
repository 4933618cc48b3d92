import Foundation
import Synchronization
import SystemSupport
import Testing

/// `sleep` (SPEC V10) through nginx: a chunk that waits lets go of the state, and goes on with
/// its locals and its output when its time is up.
// Serialized: a reset (statusAndReset) ends every chunk asleep in the stack.
@Suite("Waiting: sleep lets other requests run", .serialized)
struct WaitTests {
    /// A time limit far below the sleeps: `limits.time` counts running time only.
    static let stack = try! Stack(settings: ["limits.time=0.5", "limits.wait=4"])

    var stack: Stack { Self.stack }

    /// Runs `chunks` at once, each on its own thread; their answers and when each came back.
    func concurrently(_ chunks: [String]) -> [(result: Result<Stack.HTTPResult, any Error>, at: MonotonicInstant)] {
        let results = Mutex<[Int: (Result<Stack.HTTPResult, any Error>, MonotonicInstant)]>([:])
        let done = DispatchSemaphore(value: 0)
        // A thread each (concurrentPerform runs only as many at once as there are cores).
        for (index, chunk) in chunks.enumerated() {
            Thread.detachNewThread { [stack] in
                let result = Result { try stack.eval(chunk) }
                results.withLock { $0[index] = (result, MonotonicInstant.now()) }
                done.signal()
            }
        }
        for _ in chunks { done.wait() }
        return results.withLock { all in chunks.indices.map { (all[$0]!.0, all[$0]!.1) } }
    }

    @Test("three chunks that each sleep twice finish together, and a fourth request is answered meanwhile")
    func sleepersShareTheState() throws {
        let sleeper = "print('a') sleep(1) print('b') sleep(1) return 'done'"
        let started = MonotonicInstant.now()
        // The fourth waits 0.3 s itself, so that it runs while the three are asleep.
        let answers = concurrently([sleeper, sleeper, sleeper, "sleep(0.3) return 1"])
        for answer in answers.prefix(3) {
            let result = try answer.result.get()
            #expect(result.status == 200)
            #expect(result.text == "a\nb\ndone")
        }
        let quick = try answers[3].result.get()
        #expect(quick.status == 200 && quick.text == "1")
        // In series the sleeps alone would take 6 s; together about 2.
        let slowest = answers.prefix(3).map { $0.at.duration(since: started) }.max()!
        #expect(slowest < .seconds(5))
        // The quick one came back before any sleeper: it did not wait for their sleeps.
        #expect(
            answers.prefix(3).allSatisfy { $0.at > answers[3].at },
            "\(answers.map { $0.at.duration(since: started) })")
    }

    @Test("a chunk goes on with its locals and its output after sleep; globals are shared")
    func goesOn() throws {
        let result = try stack.eval("local x = 41 print('before') sleep(0.05) print('after') wait_global = x + 1 return x + 1")
        #expect(result.status == 200)
        #expect(result.text == "before\nafter\n42")
        #expect(try stack.eval("return wait_global").text == "42")
        // JSON mode: output and results as E5 has them.
        let json = try stack.eval("print('p') sleep(0) return {1, 2}", headers: ["Accept: application/json"])
        #expect(json.text.hasPrefix(#"{"ok":true,"results":[[1,2]],"output":"p\n","elapsed_ms":"#))
    }

    @Test("the output limit (16 MiB) is the whole chunk's across its sleeps, not each run's; an error answer stays within it")
    func outputLimitAcrossSleeps() throws {
        // A stack of its own: building and copying 20 MiB can take longer than the suite's half
        // second of running time on a loaded machine (a clean-clone run answered 504 once).
        let stack = try Stack(settings: ["limits.time=10"])
        // print raises past the limit (io.write returns nil and an error message instead).
        let over = try stack.eval(
            "io.write(string.rep('x', 10 << 20)) sleep(0) print(string.rep('y', 10 << 20)) return 'done'")
        #expect(over.status == 500)
        #expect(over.headers["x-lua-error"] == "runtime")
        let bodySize = over.body.count
        #expect(bodySize > 10 << 20 && bodySize < (10 << 20) + 4096, "\(bodySize) bytes")
        let tail = String(decoding: over.body.suffix(from: 10 << 20), as: UTF8.self)
        #expect(tail.contains("output limit of 16777216 bytes exceeded"), "\(tail.prefix(300))")
        // io.write past it writes nothing and says why.
        let written = try stack.eval(
            "io.write(string.rep('x', 10 << 20)) sleep(0) return io.write(string.rep('y', 10 << 20))")
        #expect(written.status == 200)
        #expect(written.body.count < (10 << 20) + 4096, "\(written.body.count) bytes")
        let fits = try stack.eval(
            "io.write(string.rep('x', 6 << 20)) sleep(0) io.write(string.rep('y', 6 << 20)) return 'done'")
        #expect(fits.status == 200)
        #expect(fits.body.count == (12 << 20) + 4)
    }

    @Test("limits.time counts running time only: a chunk that sleeps past it ends well")
    func timeCountsRunningOnly() throws {
        let result = try stack.eval("sleep(0.6) sleep(0.6) return 'ok'")
        #expect(result.status == 200 && result.text == "ok")
        // Running time still counts, across its sleeps.
        let spinner = try stack.eval("print('x') sleep(0) local t = os.clock() while true do end")
        #expect(spinner.status == 504)
        #expect(spinner.headers["x-lua-error"] == "timeout")
    }

    @Test("elapsed_ms and Server-Timing count the running time of every run, not the last one after a sleep")
    func timingAcrossSleeps() throws {
        // A stack of its own with a time limit far above the spin: on a busy machine 0.3 s of CPU
        // can take more than the suite's 0.5 s of wall time (CI saw that 504).
        let stack = try Stack(settings: ["limits.time=10"])
        // 0.3 s of CPU before the sleep (os.clock counts every thread of luaexecd: a little less
        // wall time), a few microseconds after it.
        let chunk = "local t = os.clock() while os.clock() - t < 0.3 do end sleep(0) return 1"
        let json = try stack.eval(chunk, headers: ["Accept: application/json"])
        #expect(json.status == 200)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.body)) as? [String: Any])
        let elapsed = try #require(object["elapsed_ms"] as? Double, "\(json.text)")
        #expect(elapsed >= 250, "\(json.text)")
        let timing = try #require(json.headers["server-timing"])
        let duration = try #require(Double(timing.replacingOccurrences(of: "lua;dur=", with: "")), "\(timing)")
        #expect(duration >= 250, "\(timing)")
    }

    @Test("limits.wait ends a chunk that sleeps past it: 504 timeout, its output kept, its __close run")
    func waitLimit() throws {
        let result = try stack.eval(
            "local x <close> = setmetatable({}, {__close = function() closed_by_wait = true end}) "
                + "print('started') for i = 1, 100 do sleep(0.5) end return 'never'")
        #expect(result.status == 504)
        #expect(result.headers["x-lua-error"] == "timeout")
        // Where it slept (SPEC O11).
        #expect(
            result.text
                == "started\nthe request waited in sleep past limits.wait (4 seconds from its arrival)\n"
                + "stack traceback:\n\t[C]: in function 'sleep'\n\tinteractive.lua:1: in main chunk\n\t[C]: in ?\n")
        #expect(try stack.eval("return closed_by_wait").text == "true")
        // One sleep longer than the limit is refused at once.
        let long = try stack.eval("sleep(5)")
        #expect(long.status == 500)
        #expect(long.text.hasPrefix("interactive.lua:1: sleep(5.0): longer than a request may wait (limits.wait: 4.0 seconds)"))
    }

    @Test(
        "bad arguments and places where sleep cannot wait are errors that say so",
        arguments: [
            ("sleep(-1)", "interactive.lua:1: bad argument #1 to 'sleep' (seconds must be 0 or more)"),
            ("sleep(0/0)", "interactive.lua:1: bad argument #1 to 'sleep' (seconds is NaN (not a number), not 0 or more)"),
            ("sleep('x')", "interactive.lua:1: bad argument #1 to 'sleep' (number expected, got string)"),
            ("sleep(1e300)", "interactive.lua:1: sleep(1e+300): longer than a request may wait (limits.wait: 4.0 seconds)"),
            (
                "coroutine.wrap(function() sleep(0) end)()",
                // coroutine.wrap adds the position again, as lua5.4's does.
                "interactive.lua:1: interactive.lua:1: sleep cannot wait inside a coroutine the chunk made: call it from the chunk itself"
            ),
            (
                "table.sort({3, 2, 1}, function(a, b) sleep(0) return a < b end)",
                "interactive.lua:1: sleep cannot wait inside a function called from C"
            ),
            ("coroutine.yield()", "attempt to yield from outside a coroutine"),
        ])
    func badInput(chunk: String, message: String) throws {
        let result = try stack.eval(chunk)
        #expect(result.status == 500)
        #expect(result.headers["x-lua-error"] == "runtime")
        #expect(result.text.hasPrefix(message))
        #expect(try stack.eval("return 1").text == "1")
    }

    @Test("no chunk can resume or close another request's chunk while it sleeps")
    func cannotResumeASleeper() throws {
        let answers = concurrently([
            "sleeper_thread = coroutine.running() sleep(1) return 'slept'",
            "sleep(0.3) return coroutine.resume(sleeper_thread)",
            "sleep(0.3) return pcall(coroutine.close, sleeper_thread)",
        ])
        #expect(try answers[0].result.get().text == "slept")
        #expect(try answers[1].result.get().text == "false\tcannot resume a request's chunk that waits in sleep")
        let closed = try answers[2].result.get().text
        #expect(closed == "false\tcannot close a request's chunk that waits in sleep")
    }

    @Test("the status lists a sleeping request; a reset ends it with a clear error")
    func statusAndReset() throws {
        let sleeper = Mutex<Result<Stack.HTTPResult, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            sleeper.withLock { $0 = Result { try stack.eval("print('going to sleep') sleep(2.5) return 'woke'") } }
            done.signal()
        }
        // Polled, not slept on: the status lists it once it waits.
        var listed = false
        for _ in 0..<200 where !listed {
            let status = try stack.request("/api/v1/admin/status", token: stack.adminToken)
            listed = status.text.contains(#""waiting":[{"id":"#) && status.text.contains(#","token":"admin","since_ms":"#)
        }
        #expect(listed)
        let reset = try stack.request("/api/v1/admin/reset", method: "POST", token: stack.adminToken)
        #expect(reset.status == 200)
        done.wait()
        let answer = try #require(try sleeper.withLock { $0 }?.get())
        #expect(answer.status == 500)
        #expect(answer.headers["x-lua-error"] == "interrupted")
        #expect(answer.text.hasPrefix("going to sleep\nthe Lua state was reset while the chunk waited in sleep"))
        let after = try stack.request("/api/v1/admin/status", token: stack.adminToken)
        #expect(after.text.contains(#""waiting":[]"#))
    }

    @Test("the README's example: a bell rung three times a second apart")
    func readmeExample() throws {
        let result = try stack.eval("for i = 1, 3 do print('ding ' .. i) sleep(1) end return 'rang'")
        #expect(result.status == 200)
        #expect(result.text == "ding 1\nding 2\nding 3\nrang")
        let readme = try String(contentsOfFile: Stack.repository + "/README.md", encoding: .utf8)
        #expect(readme.contains("-d \"for i = 1, 3 do print('ding ' .. i) sleep(1) end return 'rang'\"\nding 1\nding 2\nding 3\nrang\n"))
    }

    @Test("an interrupt that names a sleeping request ends it; an unknown id ends nothing")
    func interruptByID() throws {
        let sleeper = Mutex<Result<Stack.HTTPResult, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        Thread.detachNewThread {
            sleeper.withLock { $0 = Result { try stack.eval("print('zz') sleep(3.5) return 'woke'") } }
            done.signal()
        }
        var id: Int?
        for _ in 0..<200 where id == nil {
            let status = try stack.request("/api/v1/admin/status", token: stack.adminToken)
            let object = try JSONSerialization.jsonObject(with: Data(status.body)) as? [String: Any]
            id = ((object?["waiting"] as? [[String: Any]])?.first)?["id"] as? Int
        }
        let waiting = try #require(id)
        let unknown = try stack.request("/api/v1/admin/interrupt?id=999999999", method: "POST", token: stack.adminToken)
        #expect(unknown.text == #"{"interrupted":false}"#)
        let bad = try stack.request("/api/v1/admin/interrupt?id=x", method: "POST", token: stack.adminToken)
        #expect(bad.status == 400)
        let ended = try stack.request("/api/v1/admin/interrupt?id=\(waiting)", method: "POST", token: stack.adminToken)
        #expect(ended.text == #"{"interrupted":true}"#)
        done.wait()
        let answer = try #require(try sleeper.withLock { $0 }?.get())
        #expect(answer.status == 500)
        #expect(answer.headers["x-lua-error"] == "interrupted")
        #expect(
            answer.text
                == "zz\nthe chunk was interrupted by an administrator\nstack traceback:\n\t[C]: in function 'sleep'\n"
                + "\tinteractive.lua:1: in main chunk\n\t[C]: in ?\n")
    }

    @Test("Lua-Interrupt-Key: the client's own key ends its evaluation, asleep or running; another key ends nothing")
    func interruptByKey() throws {
        let stack = try Stack(settings: ["limits.time=30"])
        func start(_ chunk: String, key: String, token: String? = nil) -> Stack.Pending {
            stack.start(chunk, key: key, token: token)
        }
        func interrupt(_ query: String) throws -> Stack.HTTPResult {
            try stack.request("/api/v1/admin/interrupt?" + query, method: "POST", token: stack.adminToken)
        }
        func waitFor(_ what: String) throws { try stack.waitForStatus(what) }
        // Asleep: the status's id is not needed.
        let sleeping = start("print('zz') sleep(25) key_sleeper_woke = true", key: "page-1f3a")
        try waitFor(#""why":"sleep""#)
        #expect(try interrupt("key=page-other").text == #"{"interrupted":false}"#)
        #expect(try interrupt("key=page-1f3a").text == #"{"interrupted":true}"#)
        let asleep = try #require(try sleeping.get())
        #expect(asleep.status == 500)
        #expect(asleep.headers["x-lua-error"] == "interrupted")
        #expect(asleep.text.hasPrefix("zz\nthe chunk was interrupted by an administrator\n"))
        // Running: the same call.
        let running = start("print('busy') while true do end", key: "repl_77")
        try waitFor(#""running":{"#)
        #expect(try interrupt("key=page-1f3a").text == #"{"interrupted":false}"#)
        #expect(try interrupt("key=repl_77").text == #"{"interrupted":true}"#)
        let busy = try #require(try running.get())
        #expect(busy.status == 500)
        #expect(busy.text.hasPrefix("busy\nthe chunk was interrupted by an administrator\n"))
        #expect(try stack.eval("return key_sleeper_woke").body == [])
        // Refused as they come: a bad key runs nothing; id and key together are one too many.
        let bad = try stack.eval("bad_key_ran = true", headers: ["Lua-Interrupt-Key: not a key!"])
        #expect(bad.status == 400)
        #expect(bad.text == "the Lua-Interrupt-Key header must be 1 to 64 letters, digits, '-' and '_' (a UUID will do)\n")
        #expect(try stack.eval("return bad_key_ran").body == [])
        // Two keys: which one would an interrupt name? Neither: refused, and nothing ran.
        let twoKeys = try stack.eval(
            "two_keys_ran = true", headers: ["Lua-Interrupt-Key: k-one", "Lua-Interrupt-Key: k-two"])
        #expect(twoKeys.status == 400)
        #expect(twoKeys.text == "the Lua-Interrupt-Key header is given more than once; send it once\n")
        #expect(try stack.eval("return two_keys_ran").body == [])
        #expect(try interrupt("key=a%20b").status == 400)
        #expect(try interrupt("key=a&id=1").text == #"{"ok":false,"error":{"kind":"http","message":"give id or key, not both"}}"#)
        #expect(try interrupt("id=1&id=2").text
            == #"{"ok":false,"error":{"kind":"http","message":"give one id: the number the status lists for a waiting request"}}"#)
        // A bad key is refused whatever the request: a compile-only check too.
        let badCheck = try stack.eval("return 1", headers: ["Lua-Interrupt-Key: not a key!", "Lua-Check: syntax"])
        #expect(badCheck.status == 400)
        #expect(badCheck.text == "the Lua-Interrupt-Key header must be 1 to 64 letters, digits, '-' and '_' (a UUID will do)\n")
        // Nothing runs now: an interrupt by key ends nothing, and says so.
        #expect(try interrupt("key=repl_77").text == #"{"interrupted":false}"#)

        // A token without admin ends its own evaluation by its key, and no other token's.
        let mine = try stack.makeToken("own-runs", scopes: ["exec"]), other = try stack.makeToken("other-runs", scopes: ["exec"])
        func consoleInterrupt(_ key: String, token: String) throws -> Stack.HTTPResult {
            try stack.request("/api/v1/console/interrupt?key=" + key, method: "POST", token: token)
        }
        let own = start("print('mine') sleep(25) own_run_woke = true", key: "tab-9", token: mine)
        try waitFor(#""token":"own-runs""#)
        #expect(try consoleInterrupt("tab-9", token: other).text == #"{"interrupted":false}"#)
        #expect(try consoleInterrupt("tab-9", token: mine).text == #"{"interrupted":true}"#)
        let ended = try #require(try own.get())
        #expect(ended.status == 500)
        // Said as it was: its own client ended it, not an administrator.
        #expect(ended.text.hasPrefix("mine\nthe chunk was interrupted by its client (Lua-Interrupt-Key)\n"))
        #expect(try stack.eval("return own_run_woke").body == [])
        #expect(try consoleInterrupt("tab-9", token: mine).text == #"{"interrupted":false}"#)
        #expect(try consoleInterrupt("", token: mine).status == 400)
        #expect(try consoleInterrupt("tab-9&id=3", token: mine).status == 400)
        // A token for one endpoint may end its own call of it too.
        let endpointOnly = try stack.makeToken("door-only", scopes: ["endpoint:door"])
        #expect(try stack.eval("http.listen('door', function() sleep(25) return 'opened' end)").status == 200)
        let door = Stack.Pending()
        Thread.detachNewThread {
            door.answer.withLock {
                $0 = Result { try stack.request("/api/v1/exec/door", token: endpointOnly, headers: ["Lua-Interrupt-Key: door-1"]) }
            }
            door.done.signal()
        }
        try waitFor(#""token":"door-only""#)
        #expect(try consoleInterrupt("door-1", token: endpointOnly).text == #"{"interrupted":true}"#)
        let doorAnswer = try #require(try door.get())
        #expect(doorAnswer.status == 500)
        #expect(doorAnswer.text.hasPrefix("the chunk was interrupted by its client (Lua-Interrupt-Key)\n"), "\(doorAnswer.text)")

        // Waiting its turn: woken from sleep behind a chunk that holds the state, or never
        // started; either ends as interrupted when its turn comes, and runs nothing further.
        func queued() throws {
            try Stack.waitUntil(timeout: .seconds(20), "a request to wait its turn") {
                (try? stack.request("/api/v1/admin/status", token: stack.adminToken))?.text.contains(#""queue_length":1"#) == true
            }
        }
        let woken = start("sleep(0.5) woken_ran_on = true", key: "woken-1")
        try waitFor(#""why":"sleep""#)
        let holder = start("local t = os.clock() while os.clock() - t < 3 do end", key: "holder")
        try waitFor(#""running":{"#)
        try queued()
        #expect(try interrupt("key=woken-1").text == #"{"interrupted":true}"#)
        let fresh = start("never_ran = true", key: "fresh-1")
        // Found once it is queued (behind the woken one, which still waits its turn too).
        try Stack.waitUntil(timeout: .seconds(20), "the fresh request to be queued and interrupted") {
            (try? interrupt("key=fresh-1"))?.text == #"{"interrupted":true}"#
        }
        #expect(try #require(try holder.get()).status == 200)
        let wokenAnswer = try #require(try woken.get())
        #expect(wokenAnswer.status == 500)
        #expect(wokenAnswer.text.hasPrefix("the chunk was interrupted by an administrator\n"))
        let freshAnswer = try #require(try fresh.get())
        #expect(freshAnswer.status == 500)
        #expect(freshAnswer.text == "the request was interrupted before it ran\n")
        #expect(try stack.eval("return woken_ran_on, never_ran").text == "nil\tnil")
        // A misspelt parameter ends nothing: 400, not the running chunk.
        #expect(try interrupt("Key=holder").status == 400)
    }

    @Test("a client that goes while its chunk sleeps: the chunk is ended at once, its <close> run")
    func clientGone() throws {
        _ = try stack.eval("freed_by_disconnect = false")
        // curl gives up after half a second; nginx then closes its FastCGI connection.
        _ = try? stack.request(
            token: stack.adminToken,
            body: Array("local x <close> = setmetatable({}, {__close = function() freed_by_disconnect = true end}) sleep(3.5)".utf8),
            extra: ["--max-time", "0.5"])
        let started = MonotonicInstant.now()
        let freed = try stack.eval(
            "for i = 1, 100 do if freed_by_disconnect then return 'freed' end sleep(0.02) end return 'still asleep'")
        #expect(freed.text == "freed")
        // Long before the sleep would have ended.
        #expect(MonotonicInstant.now().duration(since: started) < .seconds(2.5))
    }

    @Test("a client that goes while its request waits its turn: the request leaves the queue, never runs, and its audit line says so")
    func clientGoneWhileQueued() throws {
        // Neither the holder's time limit nor the queue timeout ends anything while the test runs.
        let stack = try Stack(settings: ["limits.time=60", "limits.queue_timeout=60"])
        let leaver = try stack.makeToken("leaver", scopes: ["exec"])
        _ = try stack.eval("queued_ran = false")
        let holder = stack.start("while true do end", key: "holder-1")
        try stack.waitForStatus(#""running":{"#)
        // Queued behind the holder; curl gives up after half a second and nginx closes its
        // FastCGI connection.
        let gone = try Stack.run("/usr/bin/curl", [
            "-sk", "--unix-socket", stack.httpsSocket, "-m", "0.5", "-H", "Authorization: Bearer \(leaver)",
            "--data-binary", "queued_ran = true", "https://localhost/api/v1/exec/interactive.lua",
        ])
        #expect(gone.status == 28)  // curl: operation timed out
        // Out of the queue while the holder still runs (before, it waited there to run).
        try Stack.waitUntil(timeout: .seconds(20), "the queue to empty") {
            let status = stack.statusObject()
            return status?["queue_length"] as? Int == 0 && status?["running"] is [String: Any]
        }
        #expect(try stack.request("/api/v1/admin/interrupt?key=holder-1", method: "POST", token: stack.adminToken).text
            == #"{"interrupted":true}"#)
        #expect(try #require(try holder.get()).status == 500)
        #expect(try stack.eval("return queued_ran").text == "false")
        var record = ""
        try Stack.waitUntil(timeout: .seconds(20), "the leaver's audit line") {
            record = (try? stack.request("/api/v1/admin/audit?token=leaver&limit=5", token: stack.adminToken))?.text ?? ""
            return record.contains(#""token":"leaver""#)
        }
        #expect(record.contains(#""status":500,"error":"interrupted""#), "\(record)")
    }

    @Test("a request whose peer closes as soon as it has sent it, behind a running chunk, never runs")
    func requestAndCloseTogether() throws {
        let stack = try Stack(settings: ["limits.time=60", "limits.queue_timeout=60"])
        let holder = stack.start("while true do end", key: "holder-2")
        try stack.waitForStatus(#""running":{"#)
        // The request and the close reach luaexecd in one poll: the close is heard once the
        // request is queued, not before it is submitted.
        do {
            let peer = try FastCGIClient(stack.fastcgiSocket)
            try peer.send(FastCGIClient.request(token: stack.adminToken, chunk: "together_ran = true"))
        }
        try Stack.waitUntil(timeout: .seconds(20), "the request to be read and to leave the queue") {
            stack.luaexecdLog().contains("error=interrupted")
        }
        #expect(try stack.request("/api/v1/admin/interrupt?key=holder-2", method: "POST", token: stack.adminToken).text
            == #"{"interrupted":true}"#)
        #expect(try #require(try holder.get()).status == 500)
        #expect(try stack.eval("return together_ran").body == [])
    }

    @Test("a chunk's arguments (SPEC E11) live on across its sleep; a long argument list reaches it whole")
    func argumentsAcrossSleep() throws {
        let call = "Content-Type: application/vnd.luaexec.call+json"
        let result = try stack.request(
            token: stack.adminToken, headers: [call],
            body: Array(#"{"chunk":"local a, b, c = ... sleep(0.05) return a + b + c","args":[1,2,3]}"#.utf8))
        #expect(result.status == 200 && result.text == "6")
        let many = "[" + Array(repeating: "1", count: 100_000).joined(separator: ",") + "]"
        let long = try stack.request(
            token: stack.adminToken, headers: [call],
            body: Array(#"{"chunk":"local n = select('#', ...) sleep(0) return n","args":\#(many)}"#.utf8))
        #expect(long.status == 200 && long.text == "100000")
    }

    @Test("an endpoint's handler may sleep too")
    func endpointSleeps() throws {
        _ = try stack.eval(
            #"http.listen("slow", function() print('ignored') sleep(0.1) return "slept well" end)"#)
        let result = try stack.request("/api/v1/exec/slow", token: stack.adminToken)
        #expect(result.status == 200)
        #expect(result.text == "slept well")
    }
}

/// `limits.wait_capacity`: every sleeping request keeps nginx's two connections open, so that
/// a flood of them would leave the console and the admin API without one (docs/limits.md).
@Suite("Waiting: limits.wait_capacity bounds the sleeping requests", .serialized)
struct WaitCapacityTests {
    static let stack = try! Stack(settings: ["limits.wait=8", "limits.wait_capacity=2"])
    var stack: Stack { Self.stack }

    /// The ids of the requests waiting in sleep, from the admin status.
    func waitingIDs() throws -> [Int] {
        let status = try stack.request("/api/v1/admin/status", token: stack.adminToken)
        let object = try JSONSerialization.jsonObject(with: Data(status.body)) as? [String: Any]
        return (object?["waiting"] as? [[String: Any]] ?? []).compactMap { $0["id"] as? Int }
    }

    @Test("past the capacity sleep is a Lua error that says which limit, nothing waits; the admin API answers; the box's own timers still wait; room again once one ends")
    func capacity() throws {
        let answers = Mutex<[Result<Stack.HTTPResult, any Error>]>([])
        let done = DispatchSemaphore(value: 0)
        for _ in 0..<2 {
            Thread.detachNewThread { [stack] in
                let result = Result { try stack.eval("print('zz') sleep(7) return 'woke'") }
                answers.withLock { $0.append(result) }
                done.signal()
            }
        }
        // Polled, not slept on: both are listed once they wait.
        var ids: [Int] = []
        for _ in 0..<400 where ids.count < 2 { ids = try waitingIDs() }
        #expect(ids.count == 2)

        let refused = try stack.eval("refused_ran_on = false print('before') sleep(0.01) refused_ran_on = true return 'slept'")
        #expect(refused.status == 500)
        #expect(refused.headers["x-lua-error"] == "runtime")
        #expect(
            refused.text
                == "before\ninteractive.lua:1: sleep cannot wait now: as many requests as limits.wait_capacity allows wait in sleep already "
                + "(try again later, or wait in fewer)\nstack traceback:\n\t[C]: in function 'sleep'\n"
                + "\tinteractive.lua:1: in main chunk\n\t[C]: in ?\n")
        // Nothing after the refused sleep ran, and nothing of it waits.
        #expect(try stack.eval("return refused_ran_on").text == "false")
        #expect(try waitingIDs().sorted() == ids.sorted())
        // A chunk may catch it and go on without waiting.
        #expect(try stack.eval("local ok = pcall(sleep, 1) return ok").text == "false")

        // The box's own work waits in a room of its own: a stored script's timer sleeps while the
        // requests' room is full. A timer a token set is the token's, and waits with the requests.
        let put = try stack.request(
            "/api/v1/admin/scripts/own-sleeper.lua", method: "PUT", token: stack.adminToken,
            body: Array("timer.after(0, function() sleep(0.01) own_timer_slept = true end)\n".utf8))
        #expect(put.status == 201)
        _ = try stack.eval("token_timer = timer.every(0.05, function() sleep(0.01) token_timer_slept = true end)")
        // Polled, not slept on (a request may not sleep now).
        var tokenTimer: [String: Any] = [:]
        try Stack.waitUntil(timeout: .seconds(20), "the script's timer slept, the token's was refused") {
            let listing = try? stack.request("/api/v1/admin/endpoints", token: stack.adminToken)
            let object = listing.flatMap { try? JSONSerialization.jsonObject(with: Data($0.body)) as? [String: Any] }
            let timers = (object?["endpoints"] as? [[String: Any]] ?? []).filter { $0["kind"] as? String == "timer" }
            tokenTimer = timers.first { ($0["registered_by"] as? [String: Any])?["token"] != nil } ?? [:]
            return (try? stack.eval("return own_timer_slept").text) == "true" && (tokenTimer["errors"] as? Int ?? 0) >= 1
        }
        let lastError = tokenTimer["last_error"] as? [String: Any]
        let message = lastError?["message"] as? String ?? ""
        #expect(message.contains("sleep cannot wait now"), "\(tokenTimer)")
        #expect(try stack.eval("return timer.cancel(token_timer), token_timer_slept == nil").text == "true\ttrue")
        let removed = try stack.request("/api/v1/admin/scripts/own-sleeper.lua", method: "DELETE", token: stack.adminToken)
        #expect(removed.status == 200 || removed.status == 204)

        // One ends: there is room for one again.
        let ended = try stack.request("/api/v1/admin/interrupt?id=\(ids[0])", method: "POST", token: stack.adminToken)
        #expect(ended.text == #"{"interrupted":true}"#)
        done.wait()
        #expect(try stack.eval("sleep(0) return 'slept'").text == "slept")
        let other = try stack.request("/api/v1/admin/interrupt?id=\(ids[1])", method: "POST", token: stack.adminToken)
        #expect(other.text == #"{"interrupted":true}"#)
        done.wait()
        let statuses = try answers.withLock { try $0.map { try $0.get().headers["x-lua-error"] } }
        #expect(statuses == ["interrupted", "interrupted"])
    }
}

/// What the sleeping requests hold together: their output and their requests' bodies, 64 MiB.
@Suite("Waiting: the sleepers' output and bodies together stay within 64 MiB", .serialized)
struct WaitHeldBytesTests {
    @Test("sleepers with bodies of 1,000,000 bytes: 67 wait, the next sleep is a Lua error that says why; none was run twice")
    func bodiesCount() throws {
        let stack = try Stack(settings: ["limits.wait=30", "limits.queue_timeout=30"])
        let count = 70
        let flight = stack.sendPadded(
            "held_bodies = (held_bodies or 0) + 1 sleep(25) return 'woke' --", bytes: 1_000_000, count: count)
        // Every one asleep or answered: polled, not slept on.
        var asleep = 0
        try Stack.waitUntil(timeout: .seconds(60), "all \(count) asleep or answered") {
            guard let status = stack.statusObject() else { return false }
            asleep = (status["waiting"] as? [Any])?.count ?? 0
            return asleep + flight.answers.withLock { $0.count } == count
        }
        let answered = flight.answers.withLock { $0 }
        // Refused by the queue's own bound before running (arrivals faster than the state) or by
        // sleep: whichever, what sleeps stays within 64 MiB.
        let busy = answered.filter { $0.status == 503 }.count
        let refused = answered.filter {
            $0.status == 500 && $0.text.contains("sleep cannot wait now: with this chunk's output so far (0 bytes) and its request")
        }
        #expect(asleep == min(67, count - busy), "\(asleep) asleep, \(busy) busy")
        #expect(refused.count == count - busy - asleep)
        #expect(busy + refused.count == answered.count)
        #expect(try stack.eval("return held_bodies").text == "\(count - busy)")
        // Reset ends the sleepers at once.
        #expect(try stack.request("/api/v1/admin/reset", method: "POST", token: stack.adminToken).status == 200)
        flight.wait()
    }
}
