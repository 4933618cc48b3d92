import Dispatch
import Logging
import SystemSupport

/// Owns the one `LuaVM` on a dedicated thread and runs work on it one job at a time, in arrival
/// order (SPEC E8), with a time limit per job (L1) and a bounded wait for the state (L4).
///
/// Callers are the transport's blocking I/O threads: `perform` blocks until the job is done.
///
/// `@unchecked Sendable`: every mutable property is guarded by `lock`; the VM itself is touched
/// only by the executor's thread.
public final class LuaExecutor: @unchecked Sendable {
    public struct Options: Sendable {
        /// Wall-clock limit per job.
        public var timeLimit: Duration
        /// Longest a request waits for the state before it is refused as busy.
        public var queueTimeout: Duration
        /// Most requests that may wait for the state at once.
        public var queueCapacity: Int
        /// Stack of the Lua thread; Lua's C-stack checks assume at least 8 MiB.
        public var stackSize: Int

        public init(
            timeLimit: Duration = .seconds(5), queueTimeout: Duration = .seconds(10), queueCapacity: Int = 256,
            stackSize: Int = 16 << 20
        ) {
            self.timeLimit = timeLimit
            self.queueTimeout = queueTimeout
            self.queueCapacity = queueCapacity
            self.stackSize = stackSize
        }
    }

    /// Why a job did not run.
    public enum Refusal: Error, Sendable, Equatable {
        /// The queue was full, or the job waited longer than the queue timeout.
        case busy
    }

    private final class Job: @unchecked Sendable {
        // `state` is guarded by the executor's lock. The waiter reads what `work` wrote only
        // after `done` is signalled, which orders the two.
        enum State { case queued, running, abandoned }
        var state = State.queued
        let label: String?
        /// Runs on the Lua thread; a reset job has none and replaces the VM instead.
        let work: ((LuaVM) -> Void)?
        var resetError: (any Error)?
        let done = DispatchSemaphore(value: 0)
        init(label: String?, work: ((LuaVM) -> Void)?) {
            self.label = label
            self.work = work
        }
    }

    private final class ResultBox<T>: @unchecked Sendable {
        // Written on the Lua thread before `Job.done` is signalled, read after the wait.
        var value: T?
    }

    public let options: Options
    private let lock = ConditionLock()  // guards queue, running and the VM's stop handle
    private var queue: [Job] = []
    private var queueHead = 0
    private var running: (handle: StopHandle, deadline: MonotonicInstant, started: MonotonicInstant, label: String?)?
    private var memoryInUse = 0
    private let makeVM: @Sendable () throws -> LuaVM
    private let logger: Logger

    /// Starts the Lua thread and creates the VM on it with `makeVM`.
    public init(options: Options = Options(), logger: Logger, makeVM: @escaping @Sendable () throws -> LuaVM) throws {
        self.options = options
        self.logger = logger
        self.makeVM = makeVM
        let ready = ConditionLock()
        nonisolated(unsafe) var startError: (any Error)?
        nonisolated(unsafe) var started = false
        startThread(name: "lua", stackSize: options.stackSize) { [self] in
            let vm: LuaVM
            do {
                vm = try makeVM()
            } catch {
                ready.withLock {
                    startError = error
                    started = true
                    ready.signal()
                }
                return
            }
            ready.withLock {
                started = true
                ready.signal()
            }
            serve(vm)
        }
        startThread(name: "lua-watchdog", stackSize: 256 << 10) { [self] in watch() }
        ready.withLock {
            while !started { ready.wait() }
        }
        if let startError { throw startError }
    }

    /// A snapshot for the admin status page.
    public struct Status: Sendable {
        /// Jobs waiting for the state.
        public var queueLength: Int
        /// Bytes the state held after the last job.
        public var memoryInUse: Int
        /// The running job's label and how long it has run, if one runs.
        public var running: (label: String?, elapsed: Duration)?
    }

    public var status: Status {
        lock.withLock {
            Status(
                queueLength: queue.count - queueHead, memoryInUse: memoryInUse,
                running: running.map { ($0.label, MonotonicInstant.now().duration(since: $0.started)) })
        }
    }

    /// Runs `work` on the Lua thread and returns its result, waiting at most the queue timeout
    /// for the state. The time limit applies to `work` as a whole. `label` names the job in
    /// `status` (the token name, for instance).
    public func perform<T: Sendable>(label: String? = nil, _ work: @escaping @Sendable (LuaVM) -> T) throws(Refusal) -> T {
        let box = ResultBox<T>()
        let job = Job(label: label) { vm in box.value = work(vm) }
        try enqueueAndWait(job)
        return box.value!
    }

    /// Replaces the state with a fresh one (running the init scripts again, as `makeVM` does),
    /// after every job queued before. Throws what `makeVM` threw; the old state then stays.
    public func reset() throws {
        let job = Job(label: "reset", work: nil)
        try enqueueAndWait(job)
        if let error = job.resetError { throw error }
    }

    private func enqueueAndWait(_ job: Job) throws(Refusal) {
        let accepted = lock.withLock {
            guard queue.count - queueHead < options.queueCapacity else { return false }
            queue.append(job)
            lock.signal()
            return true
        }
        guard accepted else { throw .busy }

        let (seconds, attoseconds) = options.queueTimeout.components
        let timeout = DispatchTime.now() + .nanoseconds(Int(seconds * 1_000_000_000 + attoseconds / 1_000_000_000))
        if job.done.wait(timeout: timeout) == .timedOut {
            let abandoned = lock.withLock {
                guard job.state == .queued else { return false }
                job.state = .abandoned
                return true
            }
            if abandoned { throw .busy }
            // It started just in time; its own time limit bounds the rest of the wait.
            job.done.wait()
        }
    }

    /// Ends the running job's chunk as `interrupted`. Returns false when nothing was running.
    @discardableResult
    public func interruptRunning() -> Bool {
        lock.withLock {
            guard let running else { return false }
            running.handle.stop(.interrupt)
            return true
        }
    }

    // MARK: The Lua thread

    private func serve(_ initial: LuaVM) {
        var vm = initial
        var handle = vm.stopHandle
        lock.withLock { memoryInUse = vm.memoryInUse }
        while true {
            let job: Job = lock.withLock {
                while true {
                    while queueHead == queue.count { lock.wait() }
                    let next = queue[queueHead]
                    queueHead += 1
                    if queueHead > 64, queueHead * 2 > queue.count {
                        queue.removeFirst(queueHead)
                        queueHead = 0
                    }
                    if next.state == .queued {
                        next.state = .running
                        let now = MonotonicInstant.now()
                        running = (handle, now.advanced(by: options.timeLimit), now, next.label)
                        return next
                    }
                }
            }
            if let work = job.work {
                work(vm)
            } else {
                do {
                    let fresh = try makeVM()
                    let old = vm
                    lock.withLock {
                        running = nil
                        handle.clear()
                        vm = fresh
                        handle = fresh.stopHandle
                    }
                    // The old state closes here, out of the watchdog's reach; lx_runtime_free
                    // keeps its Lua finalizers from running.
                    _ = consume old
                    logger.notice("the Lua state was reset")
                } catch {
                    job.resetError = error
                    logger.error("reset failed; the old state stays", metadata: ["error": "\(error)"])
                }
            }
            lock.withLock {
                running = nil
                handle.clear()
                memoryInUse = vm.memoryInUse
            }
            job.done.signal()
        }
    }

    // MARK: The watchdog

    /// Arms the stop hook once the running job passes its deadline, and keeps re-arming it every
    /// tick until the job ends: a chunk may clear hooks with `debug.sethook()`.
    private func watch() {
        let tick = ConditionLock()
        while true {
            tick.withLock { _ = tick.wait(until: MonotonicInstant.now().advanced(by: .milliseconds(10))) }
            lock.withLock {
                if let running, MonotonicInstant.now() >= running.deadline {
                    running.handle.stop(.timeout)
                }
            }
        }
    }
}
