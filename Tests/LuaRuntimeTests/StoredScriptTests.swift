import Logging
import Testing

@testable import LuaRuntime

/// A stored script's run as one transaction on the state's registrations (SPEC V8): a version
/// that fails leaves what was registered before; one that succeeds withdraws what its previous
/// version registered and did not register again.
@Suite("Stored scripts: each version's run, kept whole or undone whole")
struct StoredScriptTests {
    let vm = try! LuaVM()

    func run(_ name: String, _ version: Int, _ source: String, keep: () throws -> Void = {}) -> LuaVM.ScriptOutcome {
        vm.runStoredScript(
            StoredScriptSource(name: name, version: version, source: Array(source.utf8)),
            guarded: {
                $0()
                return true
            },
            keep: keep)
    }

    func call(_ name: String) -> String? {
        guard let evaluation = vm.invoke(.endpoint, name, arguments: [], rendering: .text) else { return nil }
        guard case .success(let values) = evaluation.outcome, case .string(let bytes)? = values.first else {
            return "error"
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    func global(_ name: String) -> LuaValue? {
        try? vm.evaluate(Array("return \(name)".utf8), chunkName: "t", rendering: .text).outcome.get().first
    }

    @Test("a version's registrations name the script, its version and the line of the call")
    func origin() throws {
        guard
            case .ran(_, let withdrawn) = run(
                "bell.lua", 1, "local x = 1\nhttp.listen('bell', function() return 'v1' end)")
        else {
            Issue.record("did not run")
            return
        }
        #expect(withdrawn == [])
        let entry = try #require(vm.registry.entry(.endpoint, "bell"))
        #expect(entry.origin == .storedScript(name: "bell.lua", version: 1, line: 2))
        #expect(vm.registry.registrations(ofStoredScript: "bell.lua") == [.init(.endpoint, "bell")])
        #expect(vm.registry.lastRun(ofStoredScript: "bell.lua")?.version == 1)
        #expect(vm.registry.lastRun(ofStoredScript: "bell.lua")?.failure == nil)
        #expect(call("bell") == "v1")
    }

    @Test("the next version swaps what it registers again and withdraws what it does not")
    func swapAndWithdraw() throws {
        _ = run(
            "bell.lua", 1,
            """
            http.listen('bell', function() return 'v1' end)
            http.listen('old', function() return 'old' end)
            http.action('ring', function() return 'rung' end)
            """)
        guard case .ran(_, let withdrawn) = run("bell.lua", 2, "http.listen('bell', function() return 'v2' end)") else {
            Issue.record("did not run")
            return
        }
        #expect(withdrawn == [.init(.action, "ring"), .init(.endpoint, "old")])
        #expect(call("bell") == "v2")
        #expect(call("old") == nil)
        #expect(vm.invoke(.action, "ring", arguments: [], rendering: .text) == nil)
        #expect(vm.registry.entries.map(\.name) == ["bell"])
        #expect(vm.registry.entry(.endpoint, "bell")?.origin == .storedScript(name: "bell.lua", version: 2, line: 1))
    }

    @Test("a version that fails leaves the previous one's registrations answering, and what it registered is gone")
    func failureUndoes() throws {
        _ = run("bell.lua", 1, "http.listen('bell', function() return 'v1' end)")
        #expect(
            try vm.evaluate(
                Array("http.listen('mine', function() return 'mine' end)".utf8), chunkName: "t", rendering: .text
            ).outcome.get() == [])
        let outcome = run(
            "bell.lua", 2,
            """
            http.listen('bell', function() return 'v2' end)
            http.listen('mine', function() return 'taken' end)
            http.listen('new', function() return 'new' end)
            half_done = true
            error('broken')
            """)
        guard case .failed(let evaluation) = outcome, case .failure(let failure) = evaluation.outcome else {
            Issue.record("not refused: \(outcome)")
            return
        }
        #expect(failure.kind == .runtime)
        #expect(failure.message == "scripts/bell.lua:5: broken")
        #expect(call("bell") == "v1")
        #expect(call("mine") == "mine")
        #expect(call("new") == nil)
        #expect(vm.registry.entries.map(\.name) == ["bell", "mine"])
        #expect(vm.registry.entry(.endpoint, "bell")?.origin == .storedScript(name: "bell.lua", version: 1, line: 1))
        #expect(vm.registry.entry(.endpoint, "mine")?.origin == .token(nil))
        #expect(vm.registry.lastRun(ofStoredScript: "bell.lua")?.version == 1)
        // What the run did besides registering stays, as after any chunk that fails half-way.
        #expect(global("half_done") == .string(Array("true".utf8)))
    }

    @Test("a version that fails sets again the timers it cancelled, its script's and others', as they were")
    func failureRestoresCancelledTimers() throws {
        _ = run("hb.lua", 1, "HB = timer.every(60, function() end)")
        #expect(try vm.evaluate(Array("MINE = timer.after(60, function() end)".utf8), chunkName: "t", rendering: .text).outcome.get() == [])
        let before = vm.timers.entries
        #expect(before.count == 2)
        let outcome = run("hb.lua", 2, "timer.cancel(HB) timer.cancel(MINE) timer.every(1, function() end) error('v2 fails')")
        guard case .failed = outcome else {
            Issue.record("not refused: \(outcome)")
            return
        }
        let after = vm.timers.entries
        #expect(after.map(\.id) == before.map(\.id))
        #expect(after.map(\.origin) == before.map(\.origin))
        #expect(after.map(\.due) == before.map(\.due))
        // Their functions are set again: cancelling them now finds them.
        #expect(
            try vm.evaluate(Array("return timer.cancel(HB), timer.cancel(MINE)".utf8), chunkName: "t", rendering: .text)
                .outcome.get() == [.string("true"), .string("true")])
        #expect(vm.timers.entries.isEmpty)
        // A version that runs keeps what it cancelled.
        _ = run("hb.lua", 3, "HB = timer.every(60, function() end) OTHER = timer.after(60, function() end)")
        _ = run("hb.lua", 4, "timer.cancel(OTHER) HB = timer.every(60, function() end)")
        #expect(vm.timers.entries.count == 1)
    }

    @Test("a syntax error runs nothing")
    func syntax() {
        guard case .failed(let evaluation) = run("bell.lua", 1, "never_set = true\nreturn +") else {
            Issue.record("not refused")
            return
        }
        guard case .failure(let failure) = evaluation.outcome else { return }
        #expect(failure.kind == .syntax)
        #expect(failure.message == "scripts/bell.lua:2: unexpected symbol near '+'")
        #expect(global("never_set") == .nil)
    }

    @Test("a version the store does not keep is undone as a failed one is")
    func notKept() throws {
        _ = run("bell.lua", 1, "http.listen('bell', function() return 'v1' end)")
        struct Refused: Error {}
        guard
            case .notKept = run(
                "bell.lua", 2, "http.listen('bell', function() return 'v2' end) http.listen('x', print)",
                keep: { throw Refused() })
        else {
            Issue.record("kept")
            return
        }
        #expect(call("bell") == "v1")
        #expect(vm.registry.entries.map(\.name) == ["bell"])
    }

    @Test("a script that does not start changes nothing")
    func notStarted() {
        let outcome = vm.runStoredScript(
            StoredScriptSource(name: "bell.lua", version: 1, source: Array("http.listen('bell', print) ran = 1".utf8)),
            guarded: { _ in false })
        guard case .notStarted = outcome else {
            Issue.record("started")
            return
        }
        #expect(vm.registry.entries.isEmpty)
        #expect(global("ran") == .nil)
    }

    @Test("withdrawing a script removes what it registered and nothing of others")
    func withdrawAll() {
        _ = run("a.lua", 1, "http.listen('a1', print) http.action('a2', print)")
        _ = run("b.lua", 1, "http.listen('b1', print)")
        #expect(vm.withdrawStoredScript(named: "a.lua") == [.init(.action, "a2"), .init(.endpoint, "a1")])
        #expect(vm.registry.entries.map(\.name) == ["b1"])
        #expect(vm.registry.lastRun(ofStoredScript: "a.lua") == nil)
        #expect(vm.invoke(.endpoint, "a1", arguments: [], rendering: .text) == nil)
    }

    @Test("a name another script registered, taken by this one, is this one's from then on")
    func takenOver() {
        _ = run("a.lua", 1, "http.listen('shared', function() return 'a' end)")
        _ = run("b.lua", 1, "http.listen('shared', function() return 'b' end)")
        #expect(vm.registry.registrations(ofStoredScript: "a.lua") == [])
        // a.lua's next version does not register it: b.lua's stays.
        _ = run("a.lua", 2, "")
        #expect(call("shared") == "b")
    }

    @Test("within a job, a script runs under its own limit, not the job's: past it, it is stopped and undone")
    func limitsInAJob() throws {
        let executor = try LuaExecutor(
            options: .init(timeLimit: .milliseconds(100)), logger: Logger(label: "test"), makeVM: { try LuaVM() })
        let runner = executor.initRunner
        @Sendable func install(_ version: Int, _ source: String, limit: Duration) -> String {
            Thread.onLargeStack {
                let outcome = try? executor.perform { vm -> String in
                    let outcome = vm.runStoredScript(
                        StoredScriptSource(name: "slow.lua", version: version, source: Array(source.utf8)),
                        guarded: { runner.run(vm, limit: limit, $0) })
                    switch outcome {
                    case .ran: return "ran"
                    case .failed(let evaluation):
                        guard case .failure(let failure) = evaluation.outcome else { return "?" }
                        return failure.kind.rawValue
                            + (evaluation.elapsedNanoseconds >= 300_000_000 ? " after its limit" : " early")
                    case .notKept: return "not kept"
                    case .notStarted: return "not started"
                    }
                }
                return outcome ?? "refused"
            }
        }
        // Longer than the job's limit, within the script's.
        #expect(
            install(
                1,
                "local t = os.clock() while os.clock() - t < 0.3 do end http.listen('slow', function() return 'v1' end)",
                limit: .seconds(30)) == "ran")
        // Past the script's own limit.
        #expect(
            install(2, "http.listen('slow', function() return 'v2' end) while true do end", limit: .milliseconds(300))
                == "timeout after its limit")
        let answer: [LuaValue]? = Thread.onLargeStack {
            let outcome = try? executor.perform { vm in
                vm.invoke(.endpoint, "slow", arguments: [], rendering: .text)?.outcome
            }
            return try? outcome?.get()
        }
        #expect(answer == [.string(Array("v1".utf8))])
    }

    /// Sets `path` as a chunk would and runs the callbacks it queued; returns what they logged.
    func changeConfig(_ path: String, _ value: Int) -> String? {
        _ = try? vm.evaluate(Array("calls = '' config.set('\(path)', \(value))".utf8), chunkName: "t", rendering: .text)
        #expect(vm.runConfigCallbacks() == nil)
        guard case .string(let bytes)? = global("calls") else { return nil }
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test("config callbacks go with their script: replaced by the next version, undone with a failed one, withdrawn with it")
    func configCallbacks() throws {
        // Registered by a chunk (no script's): it stays through everything below.
        _ = try vm.evaluate(
            Array("config.register('door', function() calls = calls .. 'chunk;' end)".utf8), chunkName: "t",
            rendering: .text)
        _ = run("bell.lua", 1, "config.register('door', function() calls = calls .. 'v1;' end)")
        #expect(changeConfig("door", 1) == "chunk;v1;")
        // A new version's closure is a new function: the old one goes, not runs beside it.
        _ = run("bell.lua", 2, "config.register('door', function() calls = calls .. 'v2;' end)")
        #expect(changeConfig("door", 2) == "chunk;v2;")
        // A version that fails leaves the one before as it was, and what it registered is gone.
        guard case .failed = run("bell.lua", 3, "config.register('door', function() calls = calls .. 'v3;' end) error('no')")
        else {
            Issue.record("version 3 did not fail")
            return
        }
        #expect(changeConfig("door", 3) == "chunk;v2;")
        // A function registered again by the next version is kept, once; another script's stays.
        _ = run("knock.lua", 1, "function knock() calls = calls .. 'knock;' end config.register('door', knock)")
        _ = run("knock.lua", 2, "config.register('door', knock)")
        #expect(changeConfig("door", 4) == "chunk;v2;knock;")
        // Withdrawn with its script (disabled or deleted); the other script's and the chunk's stay.
        vm.withdrawStoredScript(named: "bell.lua")
        #expect(changeConfig("door", 5) == "chunk;knock;")
        vm.withdrawStoredScript(named: "knock.lua")
        #expect(changeConfig("door", 6) == "chunk;")
    }
}
