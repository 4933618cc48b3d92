import Foundation
import Synchronization
import Testing

/// Stored scripts (SPEC V8, M6) through the real stack: the admin API installs, replaces,
/// disables, rolls back and removes scripts kept in SQLite; each version is compiled and run at
/// once under `limits.init_time`, kept only when its run succeeds, and its predecessor's
/// registrations are withdrawn or swapped; the scripts run again at restart and reset, after
/// the init directory's files.
@Suite("Stored scripts: the admin API, deploy semantics, start and reset")
struct ScriptTests {
    static let prefix = "/api/v1/admin/scripts/"

    // MARK: Helpers

    func put(_ stack: Stack, _ name: String, _ source: String, headers: [String] = []) throws -> Stack.HTTPResult {
        try stack.request(
            Self.prefix + name, method: "PUT", token: stack.adminToken, headers: headers, body: Array(source.utf8))
    }

    func post(_ stack: Stack, _ name: String, _ action: String, query: String = "") throws -> Stack.HTTPResult {
        try stack.request(Self.prefix + name + "/" + action + query, method: "POST", token: stack.adminToken)
    }

    func object(_ result: Stack.HTTPResult) throws -> [String: Any] {
        try #require(try JSONSerialization.jsonObject(with: Data(result.body)) as? [String: Any], "\(result.text)")
    }

    /// An endpoint's answer: its status and body.
    func call(_ stack: Stack, _ endpoint: String) throws -> String {
        let result = try stack.request("/api/v1/exec/" + endpoint, token: stack.adminToken)
        return "\(result.status) \(result.text)"
    }

    /// Ends the run of the stored script `name` that is current: "DELETE", "disable", "replace"
    /// (with a version that registers nothing), or "disable and enable" (the same version runs
    /// again).
    func endCurrentRun(_ stack: Stack, _ name: String, by change: String) throws {
        switch change {
        case "DELETE": #expect(try stack.request(Self.prefix + name, method: "DELETE", token: stack.adminToken).status == 200)
        case "disable": #expect(try post(stack, name, "disable").status == 200)
        case "replace": #expect(try put(stack, name, "-- registers nothing").status == 200)
        default:
            #expect(try post(stack, name, "disable").status == 200)
            #expect(try post(stack, name, "enable").status == 200)
        }
    }

    func record(_ stack: Stack, _ name: String) throws -> [String: Any] {
        let result = try stack.request(
            Self.prefix + name, token: stack.adminToken, headers: ["Accept: application/json"])
        #expect(result.status == 200, "\(result.text)")
        return try object(result)
    }

    func versions(_ stack: Stack, _ name: String) throws -> [Int] {
        let result = try stack.request(Self.prefix + name + "/versions", token: stack.adminToken)
        guard result.status == 200 else { return [] }
        return (try object(result)["versions"] as? [[String: Any]] ?? []).compactMap { $0["version"] as? Int }
    }

    func sha256(_ text: String) throws -> String {
        String(try Stack.run("/bin/sh", ["-c", "printf '%s' \"$0\" | sha256sum", text]).stdout.prefix(64))
    }

    func registrations(_ value: Any?) -> [String] {
        (value as? [[String: Any]] ?? []).map { "\($0["kind"] ?? "?"):\($0["name"] ?? "?")" }
    }

    /// `script:line:version` of a registry entry's `registered_by`.
    func origin(_ entry: [String: Any]?) -> String {
        let by = entry?["registered_by"] as? [String: Any] ?? [:]
        return "\(by["script"] ?? "-"):\(by["line"] ?? "-"):\(by["version"] ?? "-")"
    }

    /// Kills the supervised luaexecd with SIGKILL and waits for the next one to answer.
    func killAndWaitForRestart(_ stack: Stack) throws {
        let first = try Stack.waitForPIDFile(stack.supervisedPIDFile)
        kill(first, SIGKILL)
        try Stack.waitUntil(timeout: .seconds(20), "a new luaexecd") {
            (try? Stack.waitForPIDFile(stack.supervisedPIDFile)) != first
                && (try? stack.eval("return 'up'").text) == "up"
        }
    }

    func registry(_ stack: Stack) throws -> [String: [String: Any]] {
        let listing = try object(try stack.request("/api/v1/admin/endpoints", token: stack.adminToken))
        let entries = listing["endpoints"] as? [[String: Any]] ?? []
        return Dictionary(uniqueKeysWithValues: entries.map { ("\($0["kind"]!):\($0["name"]!)", $0) })
    }

    static let bell1 = """
        runs = (runs or 0) + 1
        http.listen('bell', function() return 'v1' end)
        http.listen('old', function() return 'old' end)
        http.action('ring', function() return 'rung' end)
        print('installed v1')
        return 'v1 ready'
        """

    // MARK: Install, replace, unchanged

    @Test("PUT installs a new script: 201, the record and the run's result; it serves at once")
    func install() throws {
        let stack = try Stack(settings: ["exec.actions=true"])
        let result = try put(stack, "bell.lua", Self.bell1)
        #expect(result.status == 201, "\(result.text)")
        #expect(result.headers["content-type"] == "application/json")
        let sha = try sha256(Self.bell1)
        #expect(result.headers["etag"] == "\"\(sha)\"")
        let answer = try object(result)
        #expect(answer["ok"] as? Bool == true)
        #expect(answer["changed"] as? Bool == true)
        let run = try #require(answer["run"] as? [String: Any])
        #expect(run["ok"] as? Bool == true)
        #expect(run["results"] as? [String] == ["v1 ready"])
        #expect(run["output"] as? String == "installed v1\n")
        #expect(registrations(answer["withdrawn"]) == [])
        let script = try #require(answer["script"] as? [String: Any])
        #expect(script["name"] as? String == "bell.lua")
        #expect(script["version"] as? Int == 1)
        #expect(script["sha256"] as? String == sha)
        #expect(script["bytes"] as? Int == Self.bell1.utf8.count)
        #expect(script["enabled"] as? Bool == true)
        #expect(script["installed_by"] as? String == "admin")
        #expect((script["installed_at"] as? String)?.hasSuffix("Z") == true)
        #expect(registrations(script["registered"]) == ["action:ring", "endpoint:bell", "endpoint:old"])
        let lastRun = try #require(script["last_run"] as? [String: Any])
        #expect(lastRun["ok"] as? Bool == true)
        #expect(lastRun["version"] as? Int == 1)

        #expect(try call(stack, "bell") == "200 v1")
        #expect(try stack.request("/api/v1/exec/command?action=ring", token: stack.adminToken).text == "rung")

        // The source as text, byte for byte; the record with Accept: application/json.
        let source = try stack.request(Self.prefix + "bell.lua", token: stack.adminToken)
        #expect(source.status == 200)
        #expect(source.headers["content-type"] == "text/plain; charset=utf-8")
        #expect(source.headers["etag"] == "\"\(sha)\"")
        #expect(source.text == Self.bell1)
        let full = try record(stack, "bell.lua")
        #expect(full["source"] as? String == Self.bell1)
        #expect(full["version"] as? Int == 1)

        let listing = try object(try stack.request("/api/v1/admin/scripts", token: stack.adminToken))
        let listed = try #require((listing["scripts"] as? [[String: Any]])?.first)
        #expect((listing["scripts"] as? [Any])?.count == 1)
        #expect(listed["name"] as? String == "bell.lua")
        #expect(listed["sha256"] as? String == sha)
        #expect(listed["source"] == nil)
        #expect(registrations(listed["registered"]) == ["action:ring", "endpoint:bell", "endpoint:old"])
    }

    @Test("a script's record names the timers it set; a version that fails gives back the timers it cancelled")
    func timers() throws {
        let stack = try Stack()
        let first = try put(stack, "hb.lua", "HB = timer.every(60, function() end)")
        #expect(first.status == 201, "\(first.text)")
        let registered = registrations((try object(first)["script"] as? [String: Any])?["registered"])
        #expect(registered.count == 1 && registered.first?.hasPrefix("timer:timer ") == true, "\(registered)")
        let failed = try put(stack, "hb.lua", "timer.cancel(HB) error('v2 fails')")
        #expect(failed.status == 422, "\(failed.text)")
        #expect(registrations(try record(stack, "hb.lua")["registered"]) == registered)
        #expect(try stack.eval("return timer.cancel(HB)").text == "true")
    }

    @Test("POST …/check compiles the source under the script's own name: nothing runs, nothing is stored; a PUT that says Lua-Check is refused")
    func checkOnly() throws {
        let stack = try Stack()
        func check(_ source: String) throws -> Stack.HTTPResult {
            try stack.request(Self.prefix + "checked.lua/check", method: "POST", token: stack.adminToken, body: Array(source.utf8))
        }
        let broken = try check("checked_ran = true\nlocal = 3\n")
        #expect(broken.status == 400)
        #expect(broken.headers["x-lua-error"] == "syntax")
        #expect(broken.text.contains(#""message":"scripts/checked.lua:2: <name> expected near '='""#), "\(broken.text)")
        let fine = try check("checked_ran = true\nhttp.listen('checked', function() return 1 end)\n")
        #expect(fine.status == 200, "\(fine.text)")
        #expect(fine.text.hasPrefix(#"{"ok":true"#), "\(fine.text)")
        #expect(try check("x = 1").status == 200)
        #expect(try stack.request(Self.prefix + "../tokens/x/check", method: "POST", token: stack.adminToken, body: [0x31]).status != 200)
        // A client that means a dry run is never given an install.
        let put = try put(stack, "checked.lua", "checked_ran = true", headers: ["Lua-Check: syntax"])
        #expect(put.status == 400)
        #expect(put.text
            == #"{"ok":false,"error":{"kind":"http","message":"Lua-Check asks for a compile only: POST /api/v1/admin/scripts/checked.lua/check compiles the script; nothing ran"}}"#)
        #expect(try stack.request(Self.prefix + "checked.lua", token: stack.adminToken).status == 404)
        #expect(try stack.eval("return checked_ran").body == [])
        #expect(try stack.request("/api/v1/exec/checked", token: stack.adminToken).status == 404)
    }

    @Test("a source that starts with a UTF-8 byte-order mark checks, installs and runs as lua5.4 runs such a file; its bytes are kept as sent")
    func byteOrderMark() throws {
        let stack = try Stack()
        let source = [0xEF, 0xBB, 0xBF] + Array("bom_ran = 'yes'\nhttp.listen('bom', function() return 'marked' end)\n".utf8)
        let checked = try stack.request(Self.prefix + "bom.lua/check", method: "POST", token: stack.adminToken, body: source)
        #expect(checked.status == 200, "\(checked.text)")
        let installed = try stack.request(Self.prefix + "bom.lua", method: "PUT", token: stack.adminToken, body: source)
        #expect(installed.status == 201, "\(installed.text)")
        #expect(try stack.eval("return bom_ran").text == "yes")
        #expect(try stack.request("/api/v1/exec/bom", token: stack.adminToken).text == "marked")
        let stored = try stack.request(Self.prefix + "bom.lua", token: stack.adminToken)
        #expect(stored.body == source)
        // A byte-order mark elsewhere is Lua's to refuse, as lua5.4 does.
        let inside = try stack.request(
            Self.prefix + "inside.lua", method: "PUT", token: stack.adminToken,
            body: Array("x = 1\n".utf8) + [0xEF, 0xBB, 0xBF])
        #expect(inside.status == 400)
        #expect(inside.headers["x-lua-error"] == "syntax")
        // And at start-up, from the store.
        #expect(try stack.request("/api/v1/admin/reset", method: "POST", token: stack.adminToken).status == 200)
        #expect(try stack.request("/api/v1/exec/bom", token: stack.adminToken).text == "marked")
    }

    @Test("the same source again answers 200 and changes nothing: no new version, no run")
    func unchanged() throws {
        let stack = try Stack()
        #expect(try put(stack, "bell.lua", Self.bell1).status == 201)
        let again = try put(stack, "bell.lua", Self.bell1)
        #expect(again.status == 200)
        let answer = try object(again)
        #expect(answer["changed"] as? Bool == false)
        #expect(answer["run"] is NSNull)
        #expect((answer["script"] as? [String: Any])?["version"] as? Int == 1)
        #expect(try versions(stack, "bell.lua") == [1])
        #expect(try stack.eval("return runs").text == "1")
    }

    @Test("a new version swaps what it registers again and withdraws what it does not")
    func newVersion() throws {
        let stack = try Stack(settings: ["exec.actions=true"])
        #expect(try put(stack, "bell.lua", Self.bell1).status == 201)
        let v2 = "http.listen('bell', function() return 'v2' end)"
        let result = try put(stack, "bell.lua", v2)
        #expect(result.status == 200, "\(result.text)")
        let answer = try object(result)
        #expect(answer["changed"] as? Bool == true)
        #expect(registrations(answer["withdrawn"]) == ["action:ring", "endpoint:old"])
        let script = try #require(answer["script"] as? [String: Any])
        #expect(script["version"] as? Int == 2)
        #expect(registrations(script["registered"]) == ["endpoint:bell"])
        #expect(try call(stack, "bell") == "200 v2")
        #expect(try call(stack, "old") == "404 no such endpoint: /api/v1/exec/old\n")
        #expect(try stack.request("/api/v1/exec/command?action=ring", token: stack.adminToken).status == 404)
        #expect(try versions(stack, "bell.lua") == [2, 1])
        let entries = try registry(stack)
        #expect(entries["endpoint:old"] == nil)
        #expect(entries["action:ring"] == nil)
    }

    // MARK: Refused versions

    @Test(
        "a timer's callback asleep in sleep when its script is deleted, disabled or replaced registers nothing when it wakes",
        arguments: ["DELETE", "disable", "replace"])
    func sleepingCallbackOfAWithdrawnScript(change: String) throws {
        let stack = try Stack()
        let source = """
            timer.after(0, function()
              asleep = true
              sleep(1)
              http.listen('ghost', function() return 'ghost alive' end)
              ghost_ran = true
            end)
            """
        #expect(try put(stack, "s.lua", source).status == 201)
        #expect(try stack.eval("for i = 1, 200 do if asleep then return 'asleep' end sleep(0.02) end").text == "asleep")
        try endCurrentRun(stack, "s.lua", by: change)
        // Past the callback's sleep: it woke, or would have.
        #expect(try stack.eval("sleep(1.5) return tostring(ghost_ran)").text == "nil")
        #expect(try call(stack, "ghost").hasPrefix("404 "))
        let listing = try stack.request("/api/v1/admin/endpoints", token: stack.adminToken).text
        #expect(!listing.contains("ghost"), "\(listing)")
    }

    @Test(
        "a stored script's handler asleep in sleep when the script is deleted, replaced, or disabled and enabled again ends there, its request answered so",
        arguments: ["DELETE", "replace", "disable and enable"])
    func sleepingHandlerOfADeletedScript(change: String) throws {
        let stack = try Stack()
        let source = """
            http.listen('napper', function()
              napping = true
              sleep(1)
              http.listen('ghost', function() return 'ghost alive' end)
              return 'woke'
            end)
            """
        #expect(try put(stack, "s.lua", source).status == 201)
        let answer = Mutex<String?>(nil)
        let caller = Thread { answer.withLock { $0 = try? self.call(stack, "napper") } }
        caller.start()
        #expect(try stack.eval("for i = 1, 200 do if napping then return 'asleep' end sleep(0.02) end").text == "asleep")
        try endCurrentRun(stack, "s.lua", by: change)
        try Stack.waitUntil(timeout: .seconds(10), "the napping request's answer") { answer.withLock { $0 != nil } }
        let text = answer.withLock { $0 } ?? ""
        #expect(text.hasPrefix("503 ") || text.hasPrefix("500 "), "\(text)")
        #expect(text.contains("the stored script s.lua v1 was withdrawn or replaced while this waited in sleep"), "\(text)")
        #expect(try call(stack, "ghost").hasPrefix("404 "))
    }

    @Test("config callbacks a stored script's timer callback or handler registered go with the script")
    func configCallbacksOfTimersAndHandlers() throws {
        let stack = try Stack()
        let source = """
            timer.after(0, function()
              config.register('door.code', function() from_timer = (from_timer or 0) + 1 end)
              timer_registered = true
            end)
            http.listen('hook', function()
              config.register('door.code', function() from_handler = (from_handler or 0) + 1 end)
              return 'hooked'
            end)
            """
        #expect(try put(stack, "s.lua", source).status == 201)
        #expect(try stack.eval("for i = 1, 200 do if timer_registered then return 'yes' end sleep(0.02) end").text == "yes")
        #expect(try call(stack, "hook") == "200 hooked")
        // The callbacks run once the chunk that set the path has ended.
        #expect(try stack.eval("config.set('door.code', 1)").status == 200)
        #expect(try stack.eval("return from_timer, from_handler").text == "1\t1")
        #expect(try stack.request(Self.prefix + "s.lua", method: "DELETE", token: stack.adminToken).status == 200)
        #expect(try stack.eval("config.set('door.code', 2)").status == 200)
        #expect(try stack.eval("return from_timer, from_handler").text == "1\t1")
    }

    @Test("a syntax error is 400 under the name scripts/NAME, and nothing is stored, run or withdrawn")
    func syntaxError() throws {
        let stack = try Stack()
        #expect(try put(stack, "bell.lua", Self.bell1).status == 201)
        let broken = "never_set = true\nhttp.listen('bell', function() return 'v2' end)\nreturn +"
        let result = try put(stack, "bell.lua", broken)
        #expect(result.status == 400)
        #expect(result.headers["x-lua-error"] == "syntax")
        let answer = try object(result)
        #expect(answer["ok"] as? Bool == false)
        let error = try #require(answer["error"] as? [String: Any])
        #expect(error["kind"] as? String == "syntax")
        #expect(error["message"] as? String == "scripts/bell.lua:3: unexpected symbol near '+'")
        #expect(error["traceback"] is NSNull)
        #expect(answer["output"] as? String == "")
        #expect((answer["current"] as? [String: Any])?["version"] as? Int == 1)
        #expect(try versions(stack, "bell.lua") == [1])
        #expect(try stack.eval("return tostring(never_set)").text == "nil")
        #expect(try call(stack, "bell") == "200 v1")
        #expect(try call(stack, "old") == "200 old")
        #expect(try stack.request(Self.prefix + "bell.lua", token: stack.adminToken).text == Self.bell1)
    }

    @Test(
        "a version whose run fails is 422 with E6's error: nothing kept, what it registered undone, the old one answering",
        arguments: [
            ("error('broken')", "runtime", "scripts/bell.lua:5: broken"),
            ("while true do end", "timeout", "the chunk exceeded its time limit (0.5 seconds)"),
            ("big = string.rep('x', 64 << 20)", "memory", "not enough memory: the state's limit is 33554432 bytes"),
        ])
    func failedRun(failing: String, kind: String, message: String) throws {
        let stack = try Stack(settings: ["limits.init_time=0.5", "limits.time=60", "limits.memory=32"])
        #expect(try put(stack, "bell.lua", Self.bell1).status == 201)
        let v2 = """
            http.listen('bell', function() return 'v2' end)
            http.listen('fresh', function() return 'fresh' end)
            half_done = 'yes'
            print('partial output')
            \(failing)
            """
        let started = ContinuousClock.now
        let result = try put(stack, "bell.lua", v2)
        #expect(result.status == 422, "\(result.text)")
        #expect(result.headers["x-lua-error"] == kind)
        let answer = try object(result)
        #expect(answer["ok"] as? Bool == false)
        let error = try #require(answer["error"] as? [String: Any])
        #expect(error["kind"] as? String == kind)
        #expect(error["message"] as? String == message)
        if kind == "runtime" {
            #expect((error["traceback"] as? String)?.contains("scripts/bell.lua:5: in main chunk") == true)
        }
        if kind == "timeout" {
            // limits.init_time (0.5 s), not limits.time (60 s).
            #expect(ContinuousClock.now - started < .seconds(30))
        }
        #expect(answer["output"] as? String == "partial output\n")
        let current = try #require(answer["current"] as? [String: Any])
        #expect(current["version"] as? Int == 1)
        #expect(registrations(current["registered"]) == ["action:ring", "endpoint:bell", "endpoint:old"])
        #expect((current["last_run"] as? [String: Any])?["version"] as? Int == 1)
        #expect((current["last_run"] as? [String: Any])?["ok"] as? Bool == true)

        // Nothing of it kept, what it registered gone, the old version's registrations answering.
        #expect(try versions(stack, "bell.lua") == [1])
        #expect(try stack.request(Self.prefix + "bell.lua", token: stack.adminToken).text == Self.bell1)
        #expect(try call(stack, "bell") == "200 v1")
        #expect(try call(stack, "old") == "200 old")
        #expect(try call(stack, "fresh") == "404 no such endpoint: /api/v1/exec/fresh\n")
        let entries = try registry(stack)
        #expect(entries["endpoint:fresh"] == nil)
        #expect(origin(entries["endpoint:bell"]) == "bell.lua:2:1")
        // What the run did besides registering stays, as after any chunk that fails (SPEC E6).
        #expect(try stack.eval("return half_done").text == "yes")
        #expect(try stack.eval("return 'alive'").text == "alive")

        // A new script whose run fails is not stored at all.
        let fresh = try put(stack, "other.lua", "http.listen('other', print)\n" + failing)
        #expect(fresh.status == 422)
        #expect(try object(fresh)["current"] is NSNull)
        #expect(try stack.request(Self.prefix + "other.lua", token: stack.adminToken).status == 404)
        #expect(try call(stack, "other") == "404 no such endpoint: /api/v1/exec/other\n")
    }

    @Test("a script runs under limits.init_time, not limits.time: longer than a request may take is fine")
    func initTime() throws {
        let stack = try Stack(settings: ["limits.time=0.2", "limits.init_time=30"])
        let slow =
            "local t = os.clock() while os.clock() - t < 0.6 do end http.listen('slow', function() return 'done' end)"
        let result = try put(stack, "slow.lua", slow)
        #expect(result.status == 201, "\(result.text)")
        #expect(try call(stack, "slow") == "200 done")
        #expect(try stack.eval("local t = os.clock() while os.clock() - t < 0.6 do end").status == 504)
    }

    // MARK: Concurrency

    /// Runs `body(0)` to `body(count - 1)` on threads of their own, all at once, and waits for
    /// them: the clients of a real server, not a pool that runs a few at a time.
    func concurrently(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
        let group = DispatchGroup()
        for index in 0..<count {
            group.enter()
            let thread = Thread {
                body(index)
                group.leave()
            }
            thread.start()
        }
        group.wait()
    }

    final class Answers: Sendable {
        let byClient: Mutex<[Int: [Stack.HTTPResult]]> = Mutex([:])
        let started = Atomic(0)

        func add(_ client: Int, _ result: Stack.HTTPResult?) {
            byClient.withLock { $0[client, default: []].append(result ?? .init(status: 0, headers: [:], body: [])) }
        }

        var all: [Int: [Stack.HTTPResult]] { byClient.withLock { $0 } }
    }

    @Test("two admins installing the same name at once: one after the other, each whole, each told the version")
    func twoAdmins() throws {
        let stack = try Stack()
        let letters = ["a", "b"]
        let sources = letters.map { letter in
            "http.listen('race', function() return '\(letter)' end) http.listen('only-\(letter)', function() return '\(letter)' end)"
        }
        let answers = Answers()
        concurrently(2) { index in answers.add(index, try? put(stack, "race.lua", sources[index])) }
        let results = answers.all.mapValues { $0[0] }
        #expect((0...1).map { results[$0]?.status ?? 0 }.sorted() == [200, 201])
        let first = try #require((0...1).first { results[$0]?.status == 201 })
        let second = 1 - first
        let secondAnswer = try object(try #require(results[second]))
        #expect((secondAnswer["script"] as? [String: Any])?["version"] as? Int == 2)
        #expect(registrations(secondAnswer["withdrawn"]) == ["endpoint:only-\(letters[first])"])
        // The later one is current, whole: its source, its endpoints, none of the other's.
        let (winner, loser) = (letters[second], letters[first])
        #expect(try stack.request(Self.prefix + "race.lua", token: stack.adminToken).text == sources[second])
        #expect(try call(stack, "race") == "200 \(winner)")
        #expect(try call(stack, "only-\(winner)") == "200 \(winner)")
        #expect(try call(stack, "only-\(loser)") == "404 no such endpoint: /api/v1/exec/only-\(loser)\n")

        // With If-None-Match: * (install only if new), the one that comes second is refused and
        // told which version is current.
        let created = Answers()
        concurrently(2) { index in
            created.add(0, try? put(stack, "once.lua", sources[index], headers: ["If-None-Match: *"]))
        }
        let onceResults = created.all[0] ?? []
        #expect(onceResults.map(\.status).sorted() == [201, 412])
        let refused = try object(try #require(onceResults.first { $0.status == 412 }))
        let current = try #require(refused["current"] as? [String: Any])
        #expect(current["version"] as? Int == 1)
        let currentSHA = try #require(current["sha256"] as? String)
        #expect(
            (refused["error"] as? [String: Any])?["message"] as? String
                == "once.lua exists, at version 1 (sha256 \(currentSHA)), and If-None-Match refuses it; nothing changed"
        )
        #expect(try versions(stack, "once.lua") == [1])

        // If-Match: the SHA-256 of the version the change was made from.
        let stale = try put(stack, "once.lua", "-- v2", headers: ["If-Match: \"\(String(repeating: "0", count: 64))\""])
        #expect(stale.status == 412)
        #expect(try versions(stack, "once.lua") == [1])
        let fresh = try put(stack, "once.lua", "-- v2", headers: ["If-Match: \"\(currentSHA)\""])
        #expect(fresh.status == 200)
        #expect(try versions(stack, "once.lua") == [2, 1])
    }

    @Test("a new version while 32 clients call its endpoint: every answer the old or the new, none lost, never back")
    func swapUnderLoad() throws {
        let stack = try Stack()
        #expect(try put(stack, "swap.lua", "http.listen('swap', function() return 'v1' end)").status == 201)
        let clients = 32
        let perClient = 12
        let answers = Answers()
        concurrently(clients + 1) { index in
            if index == clients {
                // The new version, once every client is calling.
                try? Stack.waitUntil(timeout: .seconds(60), "the clients to start") {
                    answers.started.load(ordering: .relaxed) >= clients
                }
                answers.add(index, try? put(stack, "swap.lua", "http.listen('swap', function() return 'v2' end)"))
                return
            }
            for request in 0..<perClient {
                if request == 1 { answers.started.add(1, ordering: .relaxed) }
                answers.add(index, try? stack.request("/api/v1/exec/swap", token: stack.adminToken))
            }
        }
        let all = answers.all
        #expect(all[clients]?.first?.status == 200)
        let seen = (0..<clients).map { client in (all[client] ?? []).map { "\($0.status) \($0.text)" } }
        #expect(seen.map(\.count) == Array(repeating: perClient, count: clients))
        let flat = seen.flatMap { $0 }
        #expect(flat.allSatisfy { $0 == "200 v1" || $0 == "200 v2" }, "\(Set(flat))")
        // Once a client has had the new version, it never gets the old one again.
        for (client, answers) in seen.enumerated() {
            if let firstNew = answers.firstIndex(of: "200 v2") {
                #expect(!answers[firstNew...].contains("200 v1"), "client \(client): \(answers)")
            }
        }
        #expect(try call(stack, "swap") == "200 v2")
    }

    // MARK: Start, restart, reset, safe mode

    @Test("at restart and at reset the enabled scripts run after init.d, in name order; one that fails is skipped")
    func startOrder() throws {
        let initDirectory = NSTemporaryDirectory() + "luaexec-init-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: initDirectory, withIntermediateDirectories: true)
        try "order = {'init.d'}\n".write(toFile: initDirectory + "/10-first.lua", atomically: true, encoding: .utf8)
        let stack = try Stack(initDirectory: initDirectory, launch: .supervisedSocketActivation)
        for name in ["b.lua", "a.lua", "c.lua"] {
            let source = "order[#order + 1] = '\(name)' http.listen('from-\(name)', function() return '\(name)' end)"
            #expect(try put(stack, name, source).status == 201)
        }
        #expect(
            try put(
                stack, "0-fails-at-start.lua",
                "if persisted.fail then error('failing at start') end http.listen('never', print)"
            ).status == 201)
        #expect(try stack.eval("persisted.fail = true").status == 200)
        #expect(try post(stack, "c.lua", "disable").status == 200)
        #expect(try stack.eval("return table.concat(order, ',')").text == "init.d,b.lua,a.lua,c.lua")

        try killAndWaitForRestart(stack)
        #expect(try stack.eval("return table.concat(order, ',')").text == "init.d,a.lua,b.lua")
        #expect(try call(stack, "from-a.lua") == "200 a.lua")
        #expect(try call(stack, "from-c.lua") == "404 no such endpoint: /api/v1/exec/from-c.lua\n")
        #expect(try call(stack, "never") == "404 no such endpoint: /api/v1/exec/never\n")
        #expect(stack.luaexecdLog().contains("stored script failed"))
        let failed = try record(stack, "0-fails-at-start.lua")
        let lastRun = try #require(failed["last_run"] as? [String: Any])
        #expect(lastRun["ok"] as? Bool == false)
        #expect(
            (lastRun["error"] as? [String: Any])?["message"] as? String
                == "scripts/0-fails-at-start.lua:1: failing at start")
        #expect(registrations(failed["registered"]) == [])
        #expect(try record(stack, "c.lua")["last_run"] is NSNull)

        #expect(try stack.eval("order = nil persisted.fail = nil").status == 200)
        #expect(try stack.request("/api/v1/admin/reset", method: "POST", token: stack.adminToken).status == 200)
        #expect(try stack.eval("return table.concat(order, ',')").text == "init.d,a.lua,b.lua")
        #expect(try call(stack, "never") == "200 ")
        #expect((try record(stack, "0-fails-at-start.lua")["last_run"] as? [String: Any])?["ok"] as? Bool == true)
    }

    @Test("safe mode runs no stored script at reset, and keeps them")
    func safeMode() throws {
        let stack = try Stack()
        #expect(
            try put(stack, "bell.lua", "ran_bell = true http.listen('bell', function() return 'v1' end)").status == 201)
        try "lua:\n  safe_mode: true\n".write(toFile: stack.configFile, atomically: true, encoding: .utf8)
        kill(stack.luaexecdPID, SIGHUP)
        try Stack.waitUntil(timeout: .seconds(10), "the reload") { stack.luaexecdLog().contains("config reloaded") }
        #expect(try stack.request("/api/v1/admin/reset", method: "POST", token: stack.adminToken).status == 200)
        #expect(try stack.eval("return tostring(ran_bell)").text == "nil")
        #expect(try call(stack, "bell") == "404 no such endpoint: /api/v1/exec/bell\n")
        #expect(try call(stack, "status.lua").hasPrefix("404"))
        #expect(stack.luaexecdLog().contains("safe mode: no init scripts and no stored scripts run"))
        let kept = try record(stack, "bell.lua")
        #expect(kept["enabled"] as? Bool == true)
        #expect(kept["last_run"] is NSNull)
    }

    @Test("under the restricted profile a stored script reaches at start what it reached when installed: no more")
    func restrictedProfile() throws {
        let stack = try Stack(settings: ["lua.profile=restricted"])
        #expect(try put(stack, "reach.lua", "reached = tostring(io) .. ' ' .. tostring(os.execute)").status == 201)
        #expect(try stack.eval("return reached").text == "nil nil")
        #expect(try stack.eval("reached = 'cleared'").status == 200)
        #expect(try stack.request("/api/v1/admin/reset", method: "POST", token: stack.adminToken).status == 200)
        #expect(try stack.eval("return reached").text == "nil nil")
    }

    // MARK: Disable, enable, delete, rollback

    @Test("disable withdraws and keeps; enable runs it again; an enable whose run fails is 422 and stays disabled")
    func disableEnable() throws {
        let stack = try Stack()
        let source = "if persisted.broken then error('not today') end http.listen('bell', function() return 'on' end)"
        #expect(try put(stack, "bell.lua", source).status == 201)
        let disabled = try post(stack, "bell.lua", "disable")
        #expect(disabled.status == 200)
        var answer = try object(disabled)
        #expect(answer["changed"] as? Bool == true)
        #expect(registrations(answer["withdrawn"]) == ["endpoint:bell"])
        #expect((answer["script"] as? [String: Any])?["enabled"] as? Bool == false)
        #expect(try call(stack, "bell") == "404 no such endpoint: /api/v1/exec/bell\n")
        #expect(try object(try post(stack, "bell.lua", "disable"))["changed"] as? Bool == false)
        #expect(try record(stack, "bell.lua")["source"] as? String == source)

        let enabled = try post(stack, "bell.lua", "enable")
        #expect(enabled.status == 200)
        answer = try object(enabled)
        #expect(answer["changed"] as? Bool == true)
        #expect((answer["run"] as? [String: Any])?["ok"] as? Bool == true)
        #expect(try call(stack, "bell") == "200 on")
        #expect(try object(try post(stack, "bell.lua", "enable"))["changed"] as? Bool == false)

        #expect(try post(stack, "bell.lua", "disable").status == 200)
        #expect(try stack.eval("persisted.broken = true").status == 200)
        let refused = try post(stack, "bell.lua", "enable")
        #expect(refused.status == 422)
        #expect(refused.headers["x-lua-error"] == "runtime")
        answer = try object(refused)
        #expect((answer["error"] as? [String: Any])?["message"] as? String == "scripts/bell.lua:1: not today")
        #expect((answer["current"] as? [String: Any])?["enabled"] as? Bool == false)
        #expect(try record(stack, "bell.lua")["enabled"] as? Bool == false)
        #expect(try call(stack, "bell") == "404 no such endpoint: /api/v1/exec/bell\n")
    }

    @Test("PUT ?enabled=false stores a version disabled without running it, and withdraws the version before")
    func putDisabled() throws {
        let stack = try Stack()
        func ran() throws -> String { try stack.eval("return tostring(off_runs)").text }
        let first = "off_runs = (off_runs or 0) + 1 http.listen('off', function() return 'v1' end)"
        // New: 201, stored disabled, nothing ran, nothing registered.
        let created = try put(stack, "off.lua?enabled=false", first)
        #expect(created.status == 201, "\(created.text)")
        var answer = try object(created)
        #expect(answer["changed"] as? Bool == true)
        #expect(answer["run"] is NSNull)
        #expect((answer["script"] as? [String: Any])?["enabled"] as? Bool == false)
        #expect((answer["script"] as? [String: Any])?["version"] as? Int == 1)
        #expect(try ran() == "nil")
        #expect(try call(stack, "off") == "404 no such endpoint: /api/v1/exec/off\n")
        // The same source disabled again: nothing changes.
        #expect(try object(try put(stack, "off.lua?enabled=false", first))["changed"] as? Bool == false)
        // Enabled: runs; a new source with ?enabled=false withdraws v1's endpoint and runs nothing.
        #expect(try post(stack, "off.lua", "enable").status == 200)
        #expect(try ran() == "1")
        #expect(try call(stack, "off") == "200 v1")
        let second = try put(stack, "off.lua?enabled=false", "off_runs = off_runs + 100")
        #expect(second.status == 200, "\(second.text)")
        answer = try object(second)
        #expect(registrations(answer["withdrawn"]) == ["endpoint:off"])
        #expect((answer["script"] as? [String: Any])?["version"] as? Int == 2)
        #expect(try ran() == "1")
        #expect(try call(stack, "off") == "404 no such endpoint: /api/v1/exec/off\n")
        #expect(try versions(stack, "off.lua") == [2, 1])
        // The current, enabled source with ?enabled=false: that version disabled, no new one.
        #expect(try put(stack, "off.lua", first).status == 200)
        #expect(try call(stack, "off") == "200 v1")
        let disabling = try object(try put(stack, "off.lua?enabled=false", first))
        #expect(disabling["changed"] as? Bool == true)
        #expect((disabling["script"] as? [String: Any])?["version"] as? Int == 3)
        #expect(registrations(disabling["withdrawn"]) == ["endpoint:off"])
        #expect(try versions(stack, "off.lua") == [3, 2, 1])
        // A syntax error stores nothing; a bad value or a misspelt parameter runs and stores nothing.
        let broken = try put(stack, "off.lua?enabled=false", "off_runs = = 1")
        #expect(broken.status == 400)
        #expect(broken.headers["x-lua-error"] == "syntax")
        #expect(try put(stack, "off.lua?enabled=no", "off_runs = 7").text
            == #"{"ok":false,"error":{"kind":"http","message":"enabled: expected one value, true or false (false stores the script disabled, without running it), got 'no'"}}"#)
        // Given twice, whichever way: which one was meant? Refused, nothing stored or run.
        for query in ["enabled=false&enabled=true", "enabled=true&enabled=false"] {
            let twice = try put(stack, "off.lua?" + query, "off_runs = 7")
            #expect(twice.status == 400)
            #expect(twice.text.contains("enabled: expected one value"))
        }
        let misspelt = try put(stack, "off.lua?enable=false", "off_runs = 7")
        #expect(misspelt.status == 400)
        #expect(misspelt.text.contains("unknown parameter 'enable'"))
        #expect(try versions(stack, "off.lua") == [3, 2, 1])
        #expect(try record(stack, "off.lua")["enabled"] as? Bool == false)
        #expect(try ran() == "2")
        // A disabled script does not run at reset either.
        #expect(try stack.request("/api/v1/admin/reset", method: "POST", token: stack.adminToken).status == 200)
        #expect(try ran() == "nil")
    }

    @Test("DELETE withdraws what the script registered and removes it with its history")
    func delete() throws {
        let stack = try Stack(settings: ["exec.actions=true"])
        #expect(try put(stack, "bell.lua", Self.bell1).status == 201)
        #expect(try put(stack, "bell.lua", "http.listen('bell', function() return 'v2' end)").status == 200)
        let deleted = try stack.request(Self.prefix + "bell.lua", method: "DELETE", token: stack.adminToken)
        #expect(deleted.status == 200)
        let answer = try object(deleted)
        #expect(answer["deleted"] as? String == "bell.lua")
        #expect(answer["version"] as? Int == 2)
        #expect(registrations(answer["withdrawn"]) == ["endpoint:bell"])
        #expect(try call(stack, "bell") == "404 no such endpoint: /api/v1/exec/bell\n")
        let gone = try stack.request(Self.prefix + "bell.lua", token: stack.adminToken)
        #expect(gone.status == 404)
        #expect(
            try object(gone)["error"] as? [String: String] == ["kind": "http", "message": "no script named 'bell.lua'"])
        #expect(try stack.request(Self.prefix + "bell.lua/versions", token: stack.adminToken).status == 404)
        #expect(try stack.request(Self.prefix + "bell.lua", method: "DELETE", token: stack.adminToken).status == 404)
        let again = try put(stack, "bell.lua", Self.bell1)
        #expect(again.status == 201)
        #expect(try versions(stack, "bell.lua") == [1])
    }

    @Test("rollback runs the kept version before the current one, or ?version=N; past the oldest is 409")
    func rollback() throws {
        let stack = try Stack(settings: ["scripts.keep_versions=2"])
        for version in 1...4 {
            #expect(
                try put(stack, "v.lua", "http.listen('v', function() return 'v\(version)' end)").status
                    == (version == 1 ? 201 : 200))
        }
        #expect(try versions(stack, "v.lua") == [4, 3, 2])
        let back = try post(stack, "v.lua", "rollback")
        #expect(back.status == 200)
        let answer = try object(back)
        #expect((answer["script"] as? [String: Any])?["version"] as? Int == 3)
        #expect((answer["run"] as? [String: Any])?["ok"] as? Bool == true)
        #expect(try call(stack, "v") == "200 v3")
        #expect(
            try stack.request(Self.prefix + "v.lua", token: stack.adminToken).text
                == "http.listen('v', function() return 'v3' end)")
        #expect(try post(stack, "v.lua", "rollback").status == 200)
        #expect(try call(stack, "v") == "200 v2")
        let oldest = try post(stack, "v.lua", "rollback")
        #expect(oldest.status == 409)
        #expect(
            try object(oldest)["error"] as? [String: String] == [
                "kind": "http",
                "message": "v.lua is at version 2, the oldest version kept: there is nothing to roll back to",
            ])
        #expect(try call(stack, "v") == "200 v2")
        #expect(try post(stack, "v.lua", "rollback", query: "?version=4").status == 200)
        #expect(try call(stack, "v") == "200 v4")
        let unknown = try post(stack, "v.lua", "rollback", query: "?version=1")
        #expect(unknown.status == 404)
        #expect(
            (try object(unknown)["error"] as? [String: String])?["message"]
                == "version 1 of v.lua is not kept (kept: 2, 3, 4)")
        #expect(try post(stack, "v.lua", "rollback", query: "?version=x").status == 400)
        // A rollback whose run fails is refused like any version, and changes nothing.
        #expect(try stack.eval("http = nil").status == 200)
        let refused = try post(stack, "v.lua", "rollback", query: "?version=3")
        #expect(refused.status == 422)
        #expect(try record(stack, "v.lua")["version"] as? Int == 4)
        let kept = try object(try stack.request(Self.prefix + "v.lua/versions", token: stack.adminToken))
        #expect(kept["current"] as? Int == 4)
        #expect((kept["versions"] as? [[String: Any]])?.map { $0["current"] as? Bool } == [true, false, false])
        let old = try stack.request(Self.prefix + "v.lua?version=2", token: stack.adminToken)
        #expect(old.text == "http.listen('v', function() return 'v2' end)")
    }

    // MARK: Names, bodies, routes

    @Test("names, bodies, methods and scopes are checked before anything runs")
    func refusals() throws {
        let stack = try Stack(settings: ["exec.max_body=64"])
        let rule =
            "use 1 to 128 bytes of letters, digits, '.', '_' and '-', ending in '.lua', not starting with '.' or holding '..'"
        for name in ["bell.txt", "a/b.lua", ".hidden.lua", "a..b.lua", String(repeating: "a", count: 125) + ".lua"] {
            let result = try put(stack, name, "x = 1")
            #expect(result.status == 400, "\(name)")
            #expect(
                try object(result)["error"] as? [String: String] == [
                    "kind": "http", "message": "bad script name '\(name)': \(rule)",
                ])
        }
        let empty = try put(stack, "bell.lua", "")
        #expect(empty.status == 400)
        #expect(
            (try object(empty)["error"] as? [String: String])?["message"]
                == "send the script's Lua source as the body (DELETE removes a script)")
        #expect(try put(stack, "bell.lua", String(repeating: "-", count: 65)).status == 413)
        #expect(try stack.eval("return tostring(x)").text == "nil")
        #expect(try stack.request("/api/v1/admin/scripts", token: stack.adminToken).text == "{\"scripts\":[]}")

        let wrongMethod = try stack.request(Self.prefix + "bell.lua", method: "POST", token: stack.adminToken)
        #expect(wrongMethod.status == 405)
        #expect(wrongMethod.headers["allow"] == "GET, PUT, DELETE")
        let wrongOnVersions = try stack.request(
            Self.prefix + "bell.lua/versions", method: "PUT", token: stack.adminToken)
        #expect(wrongOnVersions.status == 405)
        #expect(wrongOnVersions.headers["allow"] == "GET")
        #expect(try stack.request(Self.prefix + "bell.lua/enable", token: stack.adminToken).headers["allow"] == "POST")

        let exec = try stack.makeToken("runner", scopes: ["exec"])
        let forbidden = try stack.request(
            Self.prefix + "bell.lua", method: "PUT", token: exec, body: Array("x = 1".utf8))
        #expect(forbidden.status == 403)
        #expect(try stack.eval("return tostring(x)").text == "nil")
    }

    // MARK: The registry and the audit trail

    @Test("the registry and luaexec endpoints name the script and its version")
    func registryNamesIt() throws {
        let stack = try Stack()
        let source = "local n = 1\nhttp.listen('bell', function() return 'v1' end)"
        #expect(try put(stack, "bell.lua", source).status == 201)
        let entry = try #require(try registry(stack)["endpoint:bell"])
        #expect(origin(entry) == "bell.lua:2:1")
        #expect(entry["source_sha256"] as? String == (try sha256(source)))
        var table = ""
        try Stack.waitUntil(timeout: .seconds(10), "luaexecd to publish the endpoint") {
            table =
                (try? Stack.run(Stack.binDirectory + "/luaexec", ["endpoints", "--database", stack.database]).stdout)
                ?? ""
            return table.contains("bell")
        }
        let line = try #require(table.split(separator: "\n").first { $0.hasPrefix("endpoint") && $0.contains("bell") })
        #expect(line.contains("script bell.lua v1:2"), "\(table)")
    }

    @Test("every change is an audit record naming the token, the script, its version and SHA-256")
    func audited() throws {
        let stack = try Stack()
        let v1 = "http.listen('bell', print)"
        let v2 = "error('no')"
        #expect(try put(stack, "bell.lua", v1).status == 201)
        #expect(try put(stack, "bell.lua", v1).status == 200)
        #expect(try put(stack, "bell.lua", v2).status == 422)
        #expect(try post(stack, "bell.lua", "disable").status == 200)
        #expect(try post(stack, "bell.lua", "enable").status == 200)
        #expect(try stack.request(Self.prefix + "bell.lua", method: "DELETE", token: stack.adminToken).status == 200)
        let (sha1, sha2) = (try sha256(v1), try sha256(v2))
        let expected = [
            "admin 201 - script put bell.lua version=1 sha256=\(sha1)",
            "admin 200 - script put bell.lua unchanged version=1 sha256=\(sha1)",
            "admin 422 runtime script put bell.lua version=2 sha256=\(sha2) refused=runtime",
            "admin 200 - script disable bell.lua version=1 sha256=\(sha1)",
            "admin 200 - script enable bell.lua version=1 sha256=\(sha1)",
            "admin 200 - script delete bell.lua version=1 sha256=\(sha1)",
        ]
        var found: [String] = []
        try Stack.waitUntil(timeout: .seconds(10), "six script records") {
            let result = try? stack.request("/api/v1/admin/audit?kind=admin&limit=100", token: stack.adminToken)
            let records =
                (result.flatMap { try? JSONSerialization.jsonObject(with: Data($0.body)) as? [String: Any] })?[
                    "records"] as? [[String: Any]] ?? []
            found = records.reversed().filter { ($0["path"] as? String)?.hasPrefix(Self.prefix) == true }.map {
                "\($0["token"] ?? "-") \($0["status"] ?? "-") \($0["error"] as? String ?? "-") \($0["detail"] as? String ?? "-")"
            }
            return found.count >= expected.count
        }
        #expect(found == expected)
    }
}
