import Logging
import Synchronization
import SystemSupport
import Testing

@testable import LuaRuntime

@Suite("LuaExecutor: one state, one thread, limits")
struct LuaExecutorTests {
    static func executor(timeLimit: Duration = .milliseconds(200), queueTimeout: Duration = .seconds(10), memory: Int = 64 << 20)
        throws -> LuaExecutor
    {
        try LuaExecutor(
            options: .init(timeLimit: timeLimit, queueTimeout: queueTimeout), logger: Logger(label: "test")
        ) { try LuaVM(limits: .init(memory: memory)) }
    }

    static func eval(_ executor: LuaExecutor, _ chunk: String) throws -> Evaluation {
        try Thread.onLargeStack {
            Result { () throws(LuaExecutor.Refusal) in
                try executor.perform { vm in vm.evaluate(Array(chunk.utf8), chunkName: "interactive.lua", rendering: .text) }
            }
        }.get()
    }

    @Test(
        "a chunk that runs past the time limit ends as timeout and the state survives",
        arguments: [
            "while true do end",
            "debug.sethook() while true do debug.sethook() end",
            "while true do pcall(function() while true do end end) end",
            "coroutine.wrap(function() while true do end end)()",
            "local co = coroutine.create(function() while true do end end) coroutine.resume(co)",
            "local co = coroutine.create(function() while true do debug.sethook() end end) while true do coroutine.resume(co) end",
            "setmetatable({}, {__index = function() while true do end end}).x = nil local _ = setmetatable({}, {__index = function() while true do end end}).y",
            "local function f() return f() end f()",
            "setmetatable({}, {__gc = function() while true do end end}) collectgarbage()",
            "setmetatable({}, {__gc = function() while true do end end}) local t = {} for i = 1, 1e8 do t[i % 1000] = {} end",
            "string.rep('x', 1 << 20):gsub('.', function() while true do end end)",
        ])
    func timeLimit(chunk: String) throws {
        let executor = try Self.executor()
        _ = try Self.eval(executor, "survivor = 'here'")
        let evaluation = try Self.eval(executor, chunk)
        guard case .failure(let failure) = evaluation.outcome else {
            Issue.record("the chunk completed")
            return
        }
        #expect(failure.kind == .timeout)
        #expect(try Self.eval(executor, "return survivor").outcome.get() == [.string(Array("here".utf8))])
    }

    @Test("endless recursion ends as an error, not a crash")
    func recursion() throws {
        let executor = try Self.executor(timeLimit: .seconds(30))
        let evaluation = try Self.eval(executor, "local function f() return 1 + f() end return f()")
        guard case .failure(let failure) = evaluation.outcome else { Issue.record("completed"); return }
        #expect(failure.kind == .runtime || failure.kind == .memory)
        #expect(failure.message.contains("stack overflow") || failure.kind == .memory)
        let cstack = try Self.eval(executor, "local t = setmetatable({}, {}) getmetatable(t).__index = function(t, k) return t[k] end return t.x")
        guard case .failure(let cfailure) = cstack.outcome else { Issue.record("completed"); return }
        #expect(cfailure.message.contains("stack overflow"))
        #expect(try Self.eval(executor, "return 1").outcome.get() == [.string(Array("1".utf8))])
    }

    @Test("over-allocation ends as memory and the state stays usable", arguments: [
        "return string.rep('x', 2^40)",
        "local s = 'xxxxxxxx' while true do s = s .. s end",
        "big = {} for i = 1, 1e9 do big[i] = i end",
    ])
    func memoryCap(chunk: String) throws {
        let executor = try Self.executor(timeLimit: .seconds(30), memory: 16 << 20)
        let evaluation = try Self.eval(executor, chunk)
        guard case .failure(let failure) = evaluation.outcome else { Issue.record("completed"); return }
        #expect(failure.kind == .memory)
        _ = try Self.eval(executor, "big = nil")
        #expect(try Self.eval(executor, "return #string.rep('y', 1000)").outcome.get() == [.string(Array("1000".utf8))])
    }

    @Test("an administrator can interrupt the running chunk")
    func interrupt() throws {
        let executor = try Self.executor(timeLimit: .seconds(60))
        let started = Mutex(false)
        Thread.detach {
            while !executor.interruptRunning() {}
            started.withLock { $0 = true }
        }
        let evaluation = try Self.eval(executor, "while true do end")
        #expect(started.withLock { $0 })
        guard case .failure(let failure) = evaluation.outcome else { Issue.record("completed"); return }
        #expect(failure.kind == .interrupted)
        #expect(try Self.eval(executor, "return 2").outcome.get() == [.string(Array("2".utf8))])
    }

    @Test("jobs from many threads run one at a time, each thread's in its order, none lost")
    func ordering() throws {
        let executor = try Self.executor(timeLimit: .seconds(30))
        _ = try Self.eval(executor, "running = false seen = {}")
        let clients = 16, perClient = 25
        let group = ThreadGroup()
        for client in 0..<clients {
            group.spawn {
                for step in 0..<perClient {
                    // Two jobs in the state at once would find `running` set (the evaluation
                    // yields to nothing, so only a second thread in the state could see it).
                    _ = try! Self.eval(executor, """
                        assert(not running, 'two jobs at once') running = true
                        seen[#seen + 1] = {\(client), \(step)} running = false
                        """)
                }
            }
        }
        group.wait()
        let check = """
            local last = {}
            for _, s in ipairs(seen) do
              local client, step = s[1], s[2]
              if step ~= (last[client] or -1) + 1 then return 'out of order: ' .. client .. ' ' .. step end
              last[client] = step
            end
            return #seen
            """
        #expect(try Self.eval(executor, check).outcome.get() == [.string(Array("\(clients * perClient)".utf8))])
    }

    /// A job that waits, and is interrupted by its key after it asked to wait and before its run
    /// has ended: the moment after `sleep` yields, when the chunk no longer runs.
    final class LateInterrupted: StateJob, @unchecked Sendable {
        let executor: LuaExecutor
        let seen = Mutex<[String]>([])
        init(_ executor: LuaExecutor) {
            self.executor = executor
            super.init(label: "t")
            interruptKey = "late"
        }
        override func run(_ vm: LuaVM) {
            if seen.withLock({ $0.isEmpty }) {
                executor.wait(self, until: MonotonicInstant.now().advanced(by: .seconds(60)))
                let found = executor.interrupt(key: "late")
                seen.withLock { $0.append("interrupt answered \(found)") }
            } else {
                seen.withLock { $0.append("ran again, interrupted: \(interruption.map { "\($0)" } ?? "no")") }
            }
        }
    }

    @Test("an interrupt that lands after a job yielded to wait, before its run ended, ends the wait at once; never lost")
    func interruptAfterYield() throws {
        let executor = try Self.executor(timeLimit: .seconds(30))
        let job = LateInterrupted(executor)
        Thread.onLargeStack {
            executor.submit(job)
            executor.runQueued()
        }
        #expect(job.seen.withLock { $0 } == ["interrupt answered true"])
        // Due now, not in 60 s: the interrupt said true, so the wait ends.
        let due = try #require(executor.nextDue)
        #expect(due <= MonotonicInstant.now())
        Thread.onLargeStack { executor.runDue() }
        #expect(job.seen.withLock { $0 } == ["interrupt answered true", "ran again, interrupted: administrator"])
        #expect(executor.nextDue == nil)
    }

    @Test("jobs submitted while the state is busy run in the order they were submitted, and are let go once run")
    func submittedOrder() throws {
        let executor = try Self.executor(timeLimit: .seconds(30))
        // Holds the state until the test has submitted every job.
        let blocker = Blocker(executor)
        let order = Mutex<[Int]>([])
        weak var firstJob: StateJob?
        do {
            let jobs = (0..<100).map { index in
                ClosureJob(label: nil, work: { _ in order.withLock { $0.append(index) } }, refused: {})
            }
            firstJob = jobs[0]
            for job in jobs { executor.submit(job) }
        }
        #expect(executor.status.queueLength == 100)
        blocker.release()
        // The blocker's thread ran them, behind its own job, in order.
        #expect(order.withLock { $0 } == Array(0..<100))
        #expect(executor.status.queueLength == 0)
        #expect(firstJob == nil)
    }

    @Test("the queued jobs' bodies together stay within queueBytes: one more is refused as busy, at once; a job alone always queues")
    func queueBytes() throws {
        let executor = try LuaExecutor(
            options: .init(timeLimit: .seconds(30), queueBytes: 100), logger: Logger(label: "test")
        ) { try LuaVM() }
        let blocker = Blocker(executor)
        let outcome = Mutex<[String]>([])
        func job(_ name: String, bytes: Int) -> ClosureJob {
            let job = ClosureJob(
                label: nil, work: { _ in outcome.withLock { $0.append("\(name) ran") } },
                refused: { outcome.withLock { $0.append("\(name) refused") } })
            job.bodyBytes = bytes
            return job
        }
        executor.submit(job("a", bytes: 60))
        executor.submit(job("b", bytes: 50))  // 110 > 100: refused, while the state is busy
        executor.submit(job("c", bytes: 40))  // 100: taken
        #expect(outcome.withLock { $0 } == ["b refused"])
        #expect(executor.status.queueLength == 2)
        blocker.release()
        #expect(outcome.withLock { $0 } == ["b refused", "a ran", "c ran"])
        // Nothing queued: a body past the limit still runs (it is the only one waiting).
        let alone = job("d", bytes: 500)
        Thread.onLargeStack {
            executor.submit(alone)
            executor.runQueued()
        }
        #expect(outcome.withLock { $0 }.last == "d ran")
    }

    @Test("a request that waits longer than the queue timeout is refused as busy")
    func busy() throws {
        let executor = try Self.executor(timeLimit: .seconds(2), queueTimeout: .milliseconds(50))
        let group = ThreadGroup()
        let blockerStarted = Mutex(false)
        group.spawn {
            _ = try? executor.perform { vm in
                blockerStarted.withLock { $0 = true }
                return vm.evaluate(Array("while true do end".utf8), chunkName: "x", rendering: .text)
            }
        }
        while !blockerStarted.withLock({ $0 }) {}
        #expect(throws: LuaExecutor.Refusal.busy) { try Self.eval(executor, "ran_while_busy = true") }
        group.wait()
        #expect(try Self.eval(executor, "return ran_while_busy").outcome.get() == [.nil])
    }
}

@Suite("LuaExecutor: options and ping")
struct LuaExecutorReloadTests {
    @Test("a changed time limit applies to the next job")
    func timeLimitChanges() throws {
        let executor = try LuaExecutorTests.executor(timeLimit: .seconds(600))
        executor.options.timeLimit = .milliseconds(100)
        let evaluation = try LuaExecutorTests.eval(executor, "while true do end")
        guard case .failure(let failure) = evaluation.outcome else { Issue.record("completed"); return }
        #expect(failure.kind == .timeout)
    }

    @Test("ping returns after the jobs queued before it, and is never refused")
    func pingWaitsForEarlierJobs() throws {
        let executor = try LuaExecutorTests.executor(timeLimit: .seconds(600))
        executor.options.queueCapacity = 1
        executor.options.queueTimeout = .milliseconds(1)
        let group = ThreadGroup()
        group.spawn { _ = try? LuaExecutorTests.eval(executor, "while true do end") }
        while executor.status.running == nil {}
        // The queue is full (capacity 1, the running job) and the wait limit is 1 ms: a job is
        // refused, but ping waits.
        #expect(throws: LuaExecutor.Refusal.busy) { try LuaExecutorTests.eval(executor, "return 1") }
        group.spawn { executor.interruptRunning() }
        Thread.onLargeStack { executor.ping() }
        // Had ping returned before the loop ended, the loop would still be running.
        #expect(executor.status.running == nil)
        group.wait()
    }
}

/// A gate a test opens once: `open` is guarded by `lock`.
final class Gate: @unchecked Sendable {
    let lock = ConditionLock()
    var open = false
}

/// A job that holds the state from when `init` returns until `release`: what the test submits
/// meanwhile waits in the queue.
final class Blocker {
    private let gate = Gate()
    private let group = ThreadGroup()

    init(_ executor: LuaExecutor) {
        let running = Mutex(false)
        group.spawn { [gate] in
            _ = try? executor.perform { _ in
                running.withLock { $0 = true }
                gate.lock.withLock { while !gate.open { gate.lock.wait() } }
            }
        }
        while !running.withLock({ $0 }) {}
    }

    /// Lets the state go, and returns once the blocker's thread has run what was queued.
    func release() {
        gate.lock.withLock {
            gate.open = true
            gate.lock.signal()
        }
        group.wait()
    }
}
