import Logging
import Synchronization
import SystemSupport

/// Owns the one `LuaVM` and lets callers use it one at a time, in arrival order (SPEC E8), with a
/// time limit per job (L1) and a bounded wait for the state (L4).
///
/// Jobs are queued in arrival order and run by a *combiner*: the caller that finds no combiner at
/// work becomes it and runs queued jobs, its own and those of callers that arrived meanwhile, back
/// to back, then wakes each caller with its result. Waking the next caller only after it got the
/// state (a turnstile) or handing every job to a dedicated Lua thread put a thread wake-up between
/// any two evaluations, which capped throughput far below the FastCGI floor; see BENCHMARKS.md.
/// A combiner hands the role on after `combineBatch` jobs or `combineBudget` so that its own
/// client is not kept waiting. Callers must run on threads with a large stack (8 MiB or more: Lua's C-stack checks
/// assume it); the FastCGI threads do.
///
/// `@unchecked Sendable`: every mutable property is guarded by `lock`, and the VM is used only by
/// the combiner, of which there is at most one at a time.
public final class LuaExecutor: @unchecked Sendable {
    public struct Options: Sendable {
        /// Wall-clock limit per job.
        public var timeLimit: Duration
        /// Longest a request waits for the state before it is refused as busy.
        public var queueTimeout: Duration
        /// Most requests that may wait for the state at once.
        public var queueCapacity: Int

        public init(timeLimit: Duration = .seconds(5), queueTimeout: Duration = .seconds(10), queueCapacity: Int = 1024) {
            self.timeLimit = timeLimit
            self.queueTimeout = queueTimeout
            self.queueCapacity = queueCapacity
        }
    }

    /// Why a job did not run.
    public enum Refusal: Error, Sendable, Equatable {
        /// The queue was full, or the job waited longer than the queue timeout.
        case busy
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

    /// One queued job and the caller waiting for it.
    private final class Job {
        enum State { case queued, running, done, abandoned, promoted }
        let label: String?
        /// A reset replaces the VM instead of running work.
        let isReset: Bool
        /// Subject to the queue's capacity and timeout; `ping` is not.
        var bounded = true
        /// Runs with the VM. Dropped once run or abandoned: `perform` lends a non-escaping closure.
        var work: ((LuaVM) -> Void)?
        var resetError: (any Error)?
        let signal = ConditionLock()
        var state = State.queued  // guarded by the executor's lock, and by `signal` for waking
        init(label: String?, work: ((LuaVM) -> Void)?) {
            self.label = label
            self.work = work
            isReset = work == nil
        }
    }

    /// A combiner hands the role to the next waiting caller after this many jobs, or once it
    /// has combined for `combineBudget`, whichever comes first: its own client waits for it.
    /// (One long job it has started still holds it, as it holds everyone behind it.)
    static let combineBatch = 32
    static let combineBudget = Duration.milliseconds(1)

    /// Lets `makeVM` run init scripts under a time limit of their own (SPEC V2, L1): the
    /// watchdog stops a script that overruns it, as it stops a request, and a script that has
    /// not started when luaexecd begins to stop never starts.
    public struct InitRunner: Sendable {
        let executor: LuaExecutor

        /// Runs `work` (an evaluation in `vm`, which need not be the executor's yet) with `limit`.
        /// Returns false, without running it, once `beginShutdown` was called.
        public func run(_ vm: LuaVM, limit: Duration, _ work: () -> Void) -> Bool {
            executor.runInit(vm, limit: limit, work)
        }
    }

    private let lock = ConditionLock()
    // Guarded by `lock`:
    private var currentOptions: Options {
        didSet { timeLimitNanoseconds = currentOptions.timeLimit.wholeNanoseconds }
    }
    /// `currentOptions.timeLimit`, converted once: every job's deadline adds it.
    private var timeLimitNanoseconds: Int64
    /// Set in `init` once the watchdog runs, so that the first state's init scripts are watched.
    private var vm: LuaVM!
    /// The registry of `vm`, readable without touching the VM.
    private var currentRegistry = EndpointRegistry()
    /// The init script running now (at start or in a reset), with its deadline.
    private var initRunning: (handle: StopHandle, deadline: MonotonicInstant)?
    private var shuttingDown = false
    private var queue: [Job] = []
    private var queueHead = 0
    private var combining = false
    private var running: (handle: StopHandle, deadline: MonotonicInstant, started: MonotonicInstant, label: String?)?
    private var memoryInUse = 0
    /// Requests a transport holds until the state is free (see `noteWaiting`).
    private let waitingElsewhere = Atomic(0)

    private let makeVM: @Sendable (InitRunner) throws -> LuaVM
    private let logger: Logger

    /// Starts the watchdog, then creates the VM with `makeVM` on the calling thread, which must
    /// have a large stack. `makeVM` runs at every reset too; it runs init scripts through the
    /// `InitRunner` it is given.
    public init(
        options: Options = Options(), logger: Logger, makeVM: @escaping @Sendable (InitRunner) throws -> LuaVM
    ) throws {
        self.currentOptions = options
        self.timeLimitNanoseconds = options.timeLimit.wholeNanoseconds
        self.logger = logger
        self.makeVM = makeVM
        startThread(name: "lua-watchdog", stackSize: 256 << 10) { [self] in watch() }
        let first = try makeVM(InitRunner(executor: self))
        lock.withLock {
            vm = first
            currentRegistry = first.registry
            memoryInUse = first.memoryInUse
        }
    }

    /// For a `makeVM` that runs no init scripts.
    public convenience init(
        options: Options = Options(), logger: Logger, makeVM: @escaping @Sendable () throws -> LuaVM
    ) throws {
        try self.init(options: options, logger: logger) { (_: InitRunner) in try makeVM() }
    }

    /// What the current state's scripts registered (SPEC V4).
    public var registry: EndpointRegistry { lock.withLock { currentRegistry } }

    /// From now on no init script starts, and the one running is stopped: luaexecd is stopping
    /// and must not wait for a reset's scripts (SPEC O3).
    public func beginShutdown() {
        lock.withLock {
            shuttingDown = true
            initRunning?.handle.stop(.interrupt)
        }
    }

    fileprivate func runInit(_ vm: LuaVM, limit: Duration, _ work: () -> Void) -> Bool {
        let handle = vm.stopHandle
        let started: Bool = lock.withLock {
            guard !shuttingDown else { return false }
            initRunning = (handle, MonotonicInstant.now().advanced(by: limit))
            return true
        }
        guard started else { return false }
        work()
        lock.withLock {
            initRunning = nil
            handle.clear()
        }
        return true
    }

    /// The options in force. Setting them (a config reload) applies to jobs that start later.
    public var options: Options {
        get { lock.withLock { currentOptions } }
        set { lock.withLock { currentOptions = newValue } }
    }

    public var status: Status {
        lock.withLock {
            Status(
                queueLength: queue.count - queueHead + waitingElsewhere.load(ordering: .relaxed),
                memoryInUse: memoryInUse,
                running: running.map { ($0.label, MonotonicInstant.now().duration(since: $0.started)) })
        }
    }

    /// Runs `work` with the VM once every job queued before it is done, and returns its result.
    /// Waits at most the queue timeout for the job to start; the time limit applies to `work` as
    /// a whole. `label` names the job in `status` (the token name, for instance).
    public func perform<T>(label: String? = nil, _ work: (LuaVM) -> T) throws(Refusal) -> T {
        // The usual case on the event loop: nobody is combining and nothing waits. The caller
        // runs its job at once, without a queued Job and its condition variable.
        let vm: LuaVM? = lock.withLock {
            guard !combining, queueHead == queue.count else { return nil }
            combining = true
            startRunning(label)
            return self.vm
        }
        if let vm {
            let result = work(vm)
            runConfigCallbacks()
            let queued = lock.withLock {
                stopRunning()
                if queueHead < queue.count { return true }
                combining = false
                return false
            }
            // Jobs that queued meanwhile (the daemon's own, from other threads) run next.
            if queued { combineJobs() }
            return result
        }
        return try withoutActuallyEscaping(work) { work throws(Refusal) -> T in
            var result: T?
            try run(Job(label: label) { vm in result = work(vm) })
            return result!
        }
    }

    /// Returns once every job queued before this call has run: proof that the evaluation loop
    /// moves, for systemd's watchdog, and the way shutdown waits for the running evaluation.
    /// Unlike `perform`, it is never refused: it ignores the queue's capacity and timeout.
    public func ping() {
        runAfterQueued(label: "ping") { _ in }
    }

    /// Runs `work` with the VM once every job queued before it has run, like `perform`, but is
    /// never refused: the queue's capacity and timeout do not apply. For the daemon's own jobs
    /// (a config reload, the watchdog), which must not be crowded out by clients.
    public func runAfterQueued(label: String, _ work: (LuaVM) -> Void) {
        withoutActuallyEscaping(work) { work in
            let job = Job(label: label, work: work)
            job.bounded = false
            try? run(job)
        }
    }

    /// Replaces the state with a fresh one (running the init scripts again, as `makeVM` does),
    /// after every job queued before. Throws what `makeVM` threw; the old state then stays.
    public func reset() throws {
        let job = Job(label: "reset", work: nil)
        try run(job)
        if let error = job.resetError { throw error }
    }

    /// Counts requests a transport holds in its own queue until the state is free, so that
    /// `status.queueLength` reports every request waiting for the state.
    public func noteWaiting(_ delta: Int) {
        waitingElsewhere.add(delta, ordering: .relaxed)
    }

    /// Ends the running job's chunk as `interrupted`. Returns false when nothing was running.
    @discardableResult
    public func interruptRunning() -> Bool {
        lock.withLock {
            if let initRunning {
                // A reset's init script: what the administrator waits for now.
                initRunning.handle.stop(.interrupt)
                return true
            }
            guard let running else { return false }
            running.handle.stop(.interrupt)
            return true
        }
    }

    // MARK: Combining

    /// Queues `job` and returns once it has run, on this thread or on a combiner's.
    private func run(_ job: Job) throws(Refusal) {
        let combine: Bool = try lock.withLock { () throws(Refusal) -> Bool in
            guard !job.bounded || queue.count - queueHead < currentOptions.queueCapacity else { throw .busy }
            queue.append(job)
            if combining { return false }
            combining = true
            return true
        }
        if combine {
            combineJobs()
        } else if try waitForTurnOrResult(job) {
            combineJobs()
        }
    }

    /// Waits until `job` is done (false) or this thread must take over as combiner (true).
    private func waitForTurnOrResult(_ job: Job) throws(Refusal) -> Bool {
        let deadline = MonotonicInstant.now().advanced(by: job.bounded ? options.queueTimeout : .seconds(86_400 * 365))
        while true {
            let state: Job.State = job.signal.withLock {
                while job.state == .queued || job.state == .running {
                    if job.state == .running {
                        job.signal.wait()  // the job's own time limit bounds this wait
                    } else if !job.signal.wait(until: deadline), job.state == .queued {
                        break
                    }
                }
                return job.state
            }
            switch state {
            case .done: return false
            case .promoted: return true
            case .queued:
                let abandoned = lock.withLock {
                    job.signal.withLock {
                        guard job.state == .queued else { return false }
                        job.state = .abandoned
                        job.work = nil
                        return true
                    }
                }
                if abandoned { throw .busy }
            case .running, .abandoned:
                continue
            }
        }
    }

    /// Runs queued jobs in order until the queue is empty, or hands the role on after a batch.
    private func combineJobs() {
        var ran = 0
        let started = MonotonicInstant.now()
        while true {
            let next: Job? = lock.withLock {
                while queueHead < queue.count {
                    let job = queue[queueHead]
                    queueHead += 1
                    let state = job.signal.withLock { job.state }
                    guard state == .queued || state == .promoted else { continue }  // abandoned
                    let spent = ran >= Self.combineBatch
                        || (ran > 0 && MonotonicInstant.now().duration(since: started) > Self.combineBudget)
                    if spent, state == .queued {
                        // Hand the role to this job's caller; it runs its own job first.
                        queueHead -= 1
                        job.signal.withLock {
                            job.state = .promoted
                            job.signal.signal()
                        }
                        return nil
                    }
                    job.signal.withLock { job.state = .running }
                    startRunning(job.label)
                    return job
                }
                queue.removeAll(keepingCapacity: true)
                queueHead = 0
                combining = false
                return nil
            }
            guard let job = next else { return }
            execute(job)
            ran += 1
            job.signal.withLock {
                job.work = nil
                job.state = .done
                job.signal.signal()
            }
        }
    }

    /// The state starts a job: the watchdog's deadline runs from now. Called with the lock held.
    private func startRunning(_ label: String?) {
        let now = MonotonicInstant.now()
        running = (vm.stopHandle, now.advanced(byNanoseconds: timeLimitNanoseconds), now, label)
    }

    /// The job is done: no stop left armed, and the state's size for the status. Called with
    /// the lock held.
    private func stopRunning() {
        running?.handle.clear()
        running = nil
        memoryInUse = vm.memoryInUse
    }

    private func execute(_ job: Job) {
        if !job.isReset {
            job.work?(vm)
            runConfigCallbacks()
        } else {
            do {
                let fresh = try makeVM(InitRunner(executor: self))
                // The old state closes when the last reference goes, after the swap and out of
                // the watchdog's reach; lx_runtime_free keeps its Lua finalizers from running.
                let old = lock.withLock {
                    let old = vm
                    running?.handle.clear()
                    vm = fresh
                    currentRegistry = fresh.registry
                    running?.handle = fresh.stopHandle
                    return old
                }
                withExtendedLifetime(old) {}
                logger.notice("the Lua state was reset")
            } catch {
                job.resetError = error
                logger.error("reset failed; the old state stays", metadata: ["error": "\(error)"])
            }
        }
        lock.withLock {
            stopRunning()
            if queueHead > 1024 {
                queue.removeFirst(queueHead)
                queueHead = 0
            }
        }
    }

    /// Runs config callbacks a job queued and did not run itself (a change from outside the
    /// state, applied without saving): under the job's own limit, as `LuaVM.runConfigCallbacks`
    /// runs them for a request; a failure is logged.
    private func runConfigCallbacks() {
        if let failure = vm.runConfigCallbacks() {
            logger.error("config callback failed", metadata: ["kind": "\(failure.kind.rawValue)", "error": "\(failure.message)"])
        }
    }

    // MARK: The watchdog

    /// Arms the stop hook once the running job passes its deadline, and keeps re-arming it every
    /// tick until the job ends: a chunk may clear hooks with `debug.sethook()`.
    private func watch() {
        while true {
            pauseThread(for: .milliseconds(10))
            lock.withLock {
                let now = MonotonicInstant.now()
                if let running, now >= running.deadline {
                    running.handle.stop(.timeout)
                }
                if let initRunning, now >= initRunning.deadline {
                    initRunning.handle.stop(.timeout)
                }
            }
        }
    }
}
