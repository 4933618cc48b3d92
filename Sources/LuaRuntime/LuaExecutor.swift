import Logging
import Synchronization
import SystemSupport

/// Work for the Lua state, queued in arrival order by `LuaExecutor.submit` (SPEC E8).
///
/// A class to subclass: the service's request is its own job, so that queueing one costs one
/// object, not a job and the closures it would hold. Exactly one of `run` and `refuse` is
/// called, once.
open class StateJob: @unchecked Sendable {
    /// Names the job in the status while it runs (the token's name, for instance).
    public let label: String?
    /// When the job was submitted: the queue timeout counts from here, and so does its wait.
    public let arrived: MonotonicInstant
    /// Subject to the queue's capacity and timeout; the daemon's own jobs are not.
    public let bounded: Bool
    /// The box's own work (a timer an init or stored script set), not a token's: what waits in
    /// `sleep` is counted in a room of its own (`limits.wait_capacity` and 64 MiB again), so
    /// that requests that fill theirs cannot keep the box's own scripts from waiting.
    public let ownWork: Bool
    /// A timer's run (SPEC V9: callbacks run between requests): when the job before it was one
    /// too, the first request waiting behind it goes first (`LuaExecutor.next`).
    public let yieldsToRequests: Bool

    enum State { case queued, running, waiting, done, refused }
    /// Guarded by the executor's lock.
    var state = State.queued
    /// Time the job has run so far, over its runs (a job that waits in `sleep` runs again):
    /// `limits.time` counts running time only. Guarded by the executor's lock.
    var ranNanoseconds: Int64 = 0
    /// It waited (`LuaExecutor.wait`) and was queued again: the queue timeout, which counts from
    /// its arrival, no longer applies to it.
    var hasWaited = false
    /// Set by `LuaExecutor.wait` during a run: when the job runs again. Guarded by the lock.
    var wakeAt: MonotonicInstant?
    /// What it holds while it waits: what it printed so far, and its request's body. Guarded
    /// by the lock.
    var heldBytes = 0
    /// The request body it holds while it is queued (`Options.queueBytes`); set before it is
    /// submitted.
    public var bodyBytes = 0
    /// Names the job in the status while it waits, for an interrupt that names it.
    public let id = StateJob.made.add(1, ordering: .relaxed).newValue
    private static let made = Atomic<UInt64>(0)
    /// It was ended while it waited (`LuaExecutor.interruptWaiting`): it runs at once, to end
    /// so. Guarded by the executor's lock until it runs.
    public internal(set) var interruption: Interruption?
    public var interrupted: Bool { interruption != nil }
    /// What its client named it by to interrupt it (`Lua-Interrupt-Key`), running or waiting:
    /// a client knows its request by this, never by the id the status gives it. Set before it
    /// is submitted.
    public var interruptKey: String?

    /// Why a job was ended.
    public enum Interruption: Sendable {
        /// `POST /api/v1/admin/interrupt` (`?id=N`, `?key=K`), or its client went.
        case administrator
        /// `POST /api/v1/console/interrupt?key=K` by the token that sent it.
        case client
        /// luaexecd is stopping (SIGTERM).
        case stopping
    }

    public init(
        label: String?, arrived: MonotonicInstant = .now(), bounded: Bool = true, ownWork: Bool = false,
        yieldsToRequests: Bool = false
    ) {
        self.label = label
        self.arrived = arrived
        self.bounded = bounded
        self.ownWork = ownWork
        self.yieldsToRequests = yieldsToRequests
    }

    /// Runs with the state, on the thread running the queue, under the time limit, after every
    /// job submitted before it.
    open func run(_ vm: LuaVM) {}

    /// Called instead of `run` when the job is refused as busy: the queue was full (on the
    /// submitting thread) or it waited past the queue timeout (on the watchdog's thread, whose
    /// stack is small: no Lua here).
    open func refuse() {}

    /// Called instead of `run` when its client went before it started (the transport saw the
    /// connection closed while the job was queued): nothing ran and no one waits for the answer,
    /// but the job may still account for it. By default, as a refusal. No Lua here.
    open func clientWent() { refuse() }

    /// Called instead of running again when the job waits (`LuaExecutor.wait`) and the state it
    /// waits in is replaced (a reset): what it waited in is gone. No Lua here.
    open func stateWasReset() {}

    /// After `run`, once the state is free of it (the status no longer shows it running).
    func didFinish() {}
}

/// A job made of closures, for callers that need no class of their own.
final class ClosureJob: StateJob, @unchecked Sendable {
    private var work: ((LuaVM) -> Void)?
    private var refused: (() -> Void)?

    init(label: String?, arrived: MonotonicInstant = .now(), bounded: Bool = true,
         work: @escaping (LuaVM) -> Void, refused: @escaping () -> Void) {
        self.work = work
        self.refused = refused
        super.init(label: label, arrived: arrived, bounded: bounded)
    }

    override func run(_ vm: LuaVM) {
        let work = self.work
        self.work = nil
        refused = nil
        work?(vm)
    }

    override func refuse() {
        let refused = self.refused
        self.refused = nil
        work = nil
        refused?()
    }
}

/// Replaces the state instead of running work in it (`LuaExecutor.reset`).
final class ResetJob: StateJob, @unchecked Sendable {
    let done: @Sendable ((any Error)?) -> Void
    let refused: @Sendable () -> Void

    init(arrived: MonotonicInstant, done: @escaping @Sendable ((any Error)?) -> Void, refused: @escaping @Sendable () -> Void) {
        self.done = done
        self.refused = refused
        super.init(label: "reset", arrived: arrived)
    }

    override func refuse() { refused() }
}

/// A job whose caller waits for it on a condition variable: the daemon's own (reload, systemd's
/// watchdog, shutdown) and tests.
private final class WaitedJob: StateJob, @unchecked Sendable {
    private var work: ((LuaVM) -> Void)?
    private let signal = ConditionLock()
    private var finished = false
    private var wasRefused = false

    init(label: String?, bounded: Bool, work: @escaping (LuaVM) -> Void) {
        self.work = work
        super.init(label: label, bounded: bounded)
    }

    override func run(_ vm: LuaVM) {
        work?(vm)
    }

    override func didFinish() { finish(refused: false) }

    override func refuse() { finish(refused: true) }

    private func finish(refused: Bool) {
        signal.withLock {
            // Let go of the caller's closure before it returns: `perform` lends a non-escaping one.
            work = nil
            wasRefused = refused
            finished = true
            signal.signal()
        }
    }

    /// Waits until the job ran (true) or was refused (false).
    func wait() -> Bool {
        signal.withLock {
            while !finished { signal.wait() }
            return !wasRefused
        }
    }
}

/// Owns the one `LuaVM` and is the one scheduler of the state: it decides who runs on it next
/// (first come, first served: SPEC E8), runs each job under the time limit (L1), and refuses a
/// job that finds the queue full or waits past the queue timeout (L4: 503 busy), and counts
/// what waits. Nothing else queues for the state: the transport hands every request to the
/// service at once, and the service submits here what needs the state. `sleep` and timers will
/// suspend and resume jobs here too.
///
/// Jobs are run by whichever thread calls `runQueued` while nobody else runs them: it runs them
/// back to back, in order, until the queue is empty. The event loop's thread that submitted a
/// round of requests runs them itself, so a request costs no thread hand-off and no wake-up:
/// handing every job to a dedicated Lua thread, or waking the next caller only once the state
/// was free, put a wake-up between any two evaluations and capped throughput far below the
/// FastCGI floor (docs/architecture.md). A job's answer leaves from the job itself
/// (`StateJob.run`), so nobody waits on a condition variable for it, except the daemon's own
/// synchronous callers (`perform`, `ping`, `reset`). Whoever calls `runQueued`, `perform` or
/// `reset` must run on a thread with a large stack (8 MiB or more: Lua's C-stack checks assume
/// it); the FastCGI threads do.
///
/// `@unchecked Sendable`: every mutable property is guarded by `lock`, and the VM is used only by
/// the thread running the queue, of which there is at most one at a time.
public final class LuaExecutor: @unchecked Sendable {
    public struct Options: Sendable {
        /// Wall-clock limit per job.
        public var timeLimit: Duration
        /// Longest a request waits for the state before it is refused as busy.
        public var queueTimeout: Duration
        /// Most requests that may wait for the state at once.
        public var queueCapacity: Int
        /// Most jobs that may wait in `sleep` at once (`limits.wait_capacity`): each keeps its
        /// client's connection, and nginx's to luaexecd, open.
        public var waitCapacity: Int
        /// Most output the jobs waiting in `sleep` may hold together, their requests' bodies
        /// included, in bytes.
        public var waitOutputLimit: Int
        /// Most request body bytes the queued jobs may hold together: past it a job is refused
        /// as busy, as past `queueCapacity` (a job alone in the queue is always taken).
        public var queueBytes: Int

        public init(
            timeLimit: Duration = .seconds(5), queueTimeout: Duration = .seconds(10), queueCapacity: Int = 1024,
            waitCapacity: Int = 1024, waitOutputLimit: Int = 64 << 20, queueBytes: Int = 64 << 20
        ) {
            self.queueBytes = queueBytes
            self.timeLimit = timeLimit
            self.queueTimeout = queueTimeout
            self.queueCapacity = queueCapacity
            self.waitCapacity = waitCapacity
            self.waitOutputLimit = waitOutputLimit
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
        /// Jobs waiting in `sleep`: their labels, how long since they arrived, and how long
        /// until they run again, earliest first.
        public var waiting: [(id: UInt64, label: String?, since: Duration, until: Duration)] = []
    }

    /// Lets `makeVM` run init scripts under a time limit of their own (SPEC V2, L1): the
    /// watchdog stops a script that overruns it, as it stops a request, and a script that has
    /// not started when luaexecd begins to stop never starts. A job runs a stored script it
    /// installs the same way (SPEC V8): `limits.init_time` in place of its own time limit.
    public struct InitRunner: Sendable {
        let executor: LuaExecutor

        /// Runs `work` (an evaluation in `vm`, which need not be the executor's yet) with `limit`.
        /// Returns false, without running it, once `beginShutdown` was called. Within a job, the
        /// job's own time limit is set aside meanwhile and starts afresh after `work`.
        public func run(_ vm: LuaVM, limit: Duration, _ work: () -> Void) -> Bool {
            executor.runInit(vm, limit: limit, work)
        }
    }

    /// Runs init scripts, and stored scripts within a job, under their own limit.
    public var initRunner: InitRunner { InitRunner(executor: self) }

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
    /// The timers of `vm`, readable without touching the VM.
    private var currentTimers = TimerSchedule()
    /// The init script running now (at start or in a reset), with its deadline.
    private var initRunning: (handle: StopHandle, deadline: MonotonicInstant)?
    private var shuttingDown = false
    /// Jobs in arrival order; taken and refused ones are let go (nil) as they leave, so that a
    /// queue that never empties under load does not keep their requests alive.
    private var queue: [StateJob?] = []
    private var queueHead = 0
    /// Jobs in `queue` still waiting (neither taken nor refused).
    private var waiting = 0
    /// The request bodies those jobs hold (`StateJob.bodyBytes`).
    private var queuedBytes = 0
    /// A thread is running the queue.
    private var draining = false
    /// The last job taken from the queue was a timer's run (`StateJob.yieldsToRequests`).
    private var lastRanYielding = false
    /// Jobs that wait (`wait(until:)`), by the time they run again, earliest first.
    private var sleepers: [(due: MonotonicInstant, job: StateJob)] = []
    /// Wakes the thread that runs what is due (the transport's poller), when something becomes
    /// due earlier than before.
    private var wakeDriver: (@Sendable () -> Void)?
    private var running: (handle: StopHandle, deadline: MonotonicInstant, started: MonotonicInstant, label: String?)?
    /// The running job's `interruptKey`, and who interrupted it.
    private var runningKey: String?
    private var runningStoppedBy: StateJob.Interruption?
    private var memoryInUse = 0

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
            currentTimers = first.timers
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

    /// The timers the current state's scripts set (SPEC V9).
    public var timers: TimerSchedule { lock.withLock { currentTimers } }

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
        let jobLimit = vm.timeLimit
        vm.timeLimit = limit
        work()
        vm.timeLimit = jobLimit
        lock.withLock {
            initRunning = nil
            handle.clear()
            // A job that ran a stored script goes on under a time limit of its own again (the
            // watchdog does not look at it while a script runs): what is left of it is the store
            // write and its answer.
            if running != nil { running!.deadline = MonotonicInstant.now().advanced(byNanoseconds: timeLimitNanoseconds) }
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
                queueLength: waiting,
                memoryInUse: memoryInUse,
                running: running.map { ($0.label, MonotonicInstant.now().duration(since: $0.started)) },
                waiting: sleepers.map { sleeper in
                    let now = MonotonicInstant.now()
                    return (
                        sleeper.job.id, sleeper.job.label, now.duration(since: sleeper.job.arrived),
                        sleeper.due > now ? sleeper.due.duration(since: now) : .zero
                    )
                })
        }
    }

    // MARK: Submitting

    /// Queues `job` behind every job submitted before it and returns at once; it runs when a
    /// thread calls `runQueued`. Refused at once (`job.refuse()`, on this thread) when the queue
    /// is full.
    public func submit(_ job: StateJob) {
        let accepted = lock.withLock {
            // What waits behind a running job: with none running, the first queued runs next
            // and waits for nothing (as when the queue counted only requests behind the state).
            let behind = draining ? waiting : max(0, waiting - 1)
            guard !job.bounded || behind < currentOptions.queueCapacity else { return false }
            // Bodies of up to exec.max_body each, a thousand queued, would be a gigabyte.
            guard !job.bounded || queuedBytes == 0 || queuedBytes + job.bodyBytes <= currentOptions.queueBytes else {
                return false
            }
            queue.append(job)
            waiting += 1
            queuedBytes += job.bodyBytes
            return true
        }
        if !accepted {
            lock.withLock { job.state = .refused }
            job.refuse()
        }
    }

    /// `submit` with closures: `work` runs with the state, or `refused` is called instead.
    public func submit(
        label: String?, arrived: MonotonicInstant = .now(), _ work: @escaping (LuaVM) -> Void,
        refused: @escaping () -> Void
    ) {
        submit(ClosureJob(label: label, arrived: arrived, work: work, refused: refused))
    }

    /// Queues a reset (see `reset()`); `done` gets `makeVM`'s error, or nil, on the thread that
    /// ran it.
    public func submitReset(
        arrived: MonotonicInstant = .now(), done: @escaping @Sendable ((any Error)?) -> Void,
        refused: @escaping @Sendable () -> Void
    ) {
        submit(ResetJob(arrived: arrived, done: done, refused: refused))
    }

    /// Runs queued jobs on this thread, in order, until none is left; returns at once when
    /// another thread is running them (it takes the new ones too).
    public func runQueued() {
        let claimed = lock.withLock {
            guard !draining, waiting > 0 else { return false }
            draining = true
            return true
        }
        guard claimed else { return }
        while let job = next() {
            execute(job)
        }
    }

    /// The next waiting job, marked running; nil, and the queue let go, when none is left.
    ///
    /// Arrival order (SPEC E8), but for timers' runs: after one, the first request waiting
    /// behind the next goes before it. Timers are never refused and each run may take
    /// `limits.time`, so three looping timers due again as they end held every request (an
    /// administrator's reset and the delete of the script that set them included) past
    /// `queue_timeout`; alternating, a request waits behind one timer's run at most, besides the
    /// requests before it and one run after each of them.
    private func next() -> StateJob? {
        lock.withLock {
            while queueHead < queue.count {
                var index = queueHead
                if lastRanYielding, let head = queue[queueHead], head.yieldsToRequests, head.state == .queued {
                    var later = queueHead + 1
                    while later < queue.count {
                        if let job = queue[later], job.state == .queued, !job.yieldsToRequests { break }
                        later += 1
                    }
                    if later < queue.count { index = later }
                }
                let job = queue[index]
                queue[index] = nil
                if index == queueHead { queueHead += 1 }
                guard let job, job.state == .queued else { continue }
                lastRanYielding = job.yieldsToRequests
                job.state = .running
                waiting -= 1
                queuedBytes -= job.bodyBytes
                if queueHead >= 1024 && queueHead * 2 >= queue.count {
                    queue.removeFirst(queueHead)
                    queueHead = 0
                }
                startRunning(job)
                return job
            }
            queue.removeAll(keepingCapacity: queue.capacity <= 4096)
            queueHead = 0
            draining = false
            return nil
        }
    }

    // MARK: Jobs that wait (SPEC V10)

    /// Called by a running job (from its `run`): it runs again, as a new arrival in the queue,
    /// once `due` has come; meanwhile the state runs other jobs. Its time limit goes on from
    /// what it has used.
    public func wait(_ job: StateJob, until due: MonotonicInstant, holding bytes: Int = 0) {
        // Kept with the job until its run has ended (`execute`): a job in `sleepers` may be
        // queued and run by another thread at once.
        lock.withLock {
            job.wakeAt = due
            job.heldBytes = bytes + job.bodyBytes
        }
    }

    /// After a run that asked to wait: the job joins the waiting ones. Called with the lock
    /// held; returns the way to wake the driver when the job is now the first due.
    private func keepWaiting(_ job: StateJob, until due: MonotonicInstant) -> (@Sendable () -> Void)? {
        job.wakeAt = nil
        job.state = .waiting
        job.hasWaited = true
        let index = sleepers.firstIndex { $0.due > due } ?? sleepers.count
        sleepers.insert((due, job), at: index)
        return index == 0 ? wakeDriver : nil
    }

    /// When the first waiting job runs again, if any waits.
    public var nextDue: MonotonicInstant? { lock.withLock { sleepers.first?.due } }

    /// Queues the waiting jobs whose time has come (arrival order among those ready: SPEC E8)
    /// and runs the queue on this thread (a large stack) unless another thread runs it.
    public func runDue() {
        let now = MonotonicInstant.now()
        let woken = lock.withLock {
            var count = 0
            while let first = sleepers.first, first.due <= now {
                sleepers.removeFirst()
                first.job.state = .queued
                queue.append(first.job)
                waiting += 1
                queuedBytes += first.job.bodyBytes
                count += 1
            }
            return count
        }
        if woken > 0 { runQueued() }
    }

    /// Ends the waiting job `id` (SPEC M2 with a name): it is queued at once, marked
    /// `interrupted`, and ends so when it runs. False when no job waits under that id.
    public func interruptWaiting(id: UInt64) -> Bool {
        interruptWaiting { $0.id == id }
    }

    /// Ends the first waiting job that `matches` picks, as `interruptWaiting(id:)`.
    @discardableResult
    public func interruptWaiting(where matches: (StateJob) -> Bool) -> Bool {
        let wake: (@Sendable () -> Void)?? = lock.withLock { endWaiting(where: matches) }
        guard let wake else { return false }
        wake?()
        return true
    }

    /// Ends the job its client named `key` (`Lua-Interrupt-Key`), whether it runs, waits in
    /// `sleep` or waits its turn in the queue: looked for in all three under one lock, so that a
    /// job going from one to another meanwhile is not missed. With `label`, only a job of that
    /// label (the name of the token that sent it: a token may end its own). False when no such
    /// job has the key (it ended, or never had it).
    public func interrupt(key: String, label: String? = nil) -> Bool {
        let matches = { (job: StateJob) in job.interruptKey == key && (label == nil || job.label == label) }
        let reason: StateJob.Interruption = label == nil ? .administrator : .client
        let wake: (@Sendable () -> Void)?? = lock.withLock {
            if let running, runningKey == key, label == nil || running.label == label {
                runningStoppedBy = reason
                running.handle.stop(.interrupt)
                return .some(nil)
            }
            // Queued: not started yet, or woken from `sleep` and waiting its turn. Marked, it
            // ends as interrupted when its turn comes (a woken chunk's coroutine is closed on the
            // state), without running any further.
            if let queued = queue[queueHead...].lazy.compactMap({ $0 }).first(where: { $0.state == .queued && matches($0) }) {
                queued.interruption = reason
                return .some(nil)
            }
            return endWaiting(where: matches, reason: reason)
        }
        guard let wake else { return false }
        wake?()
        return true
    }

    /// The client of the first job that `matches` picks has gone (its connection closed). Queued
    /// and never started, it leaves the queue at once and runs nothing (`clientWent`): a
    /// request nobody waits for any more is not started behind a long chunk. Waiting in `sleep`,
    /// or woken from it and waiting its turn, it is ended as an interrupt ends it (its coroutine
    /// is closed on the state, its `__close` handlers run). A running job runs on: what it does
    /// is not cut off halfway because a client stopped listening (`limits.time` bounds it).
    public func clientGone(where matches: (StateJob) -> Bool) {
        let (left, wake) = lock.withLock { () -> (StateJob?, (@Sendable () -> Void)??) in
            var index = queueHead
            while index < queue.count {
                defer { index += 1 }
                guard let job = queue[index], job.state == .queued, matches(job) else { continue }
                if job.hasWaited {
                    job.interruption = .administrator
                    return (nil, nil)
                }
                takeOut(job, at: index)
                return (job, nil)
            }
            return (nil, endWaiting(where: matches))
        }
        // Outside the lock, as a refusal: it answers (to no one) and writes its audit line.
        left?.clientWent()
        if let wake { wake?() }
    }

    /// Marks the first waiting job that `matches` picks as interrupted and due now; the driver
    /// to wake, nil when none matches. Called with the lock held.
    private func endWaiting(
        where matches: (StateJob) -> Bool, reason: StateJob.Interruption = .administrator
    ) -> (@Sendable () -> Void)?? {
        guard let index = sleepers.firstIndex(where: { matches($0.job) }) else { return nil }
        let job = sleepers.remove(at: index).job
        job.interruption = reason
        // First in line among the waiting: due now.
        sleepers.insert((MonotonicInstant(nanoseconds: 0), job), at: 0)
        return .some(wakeDriver)
    }

    /// Ends every waiting job at once (luaexecd is stopping): each runs now, to answer so, rather
    /// than keep its client waiting until the process is gone. Returns how many.
    @discardableResult
    public func endWaiting() -> Int {
        let (count, wake) = lock.withLock { () -> (Int, (@Sendable () -> Void)?) in
            for index in sleepers.indices {
                sleepers[index].job.interruption = .stopping
                sleepers[index].due = MonotonicInstant(nanoseconds: 0)
            }
            return (sleepers.count, wakeDriver)
        }
        if count > 0 { wake?() }
        return count
    }

    /// How to wake the thread that calls `runDue` when a job waits less than it sleeps.
    public func setWakeDriver(_ wake: @escaping @Sendable () -> Void) {
        lock.withLock {
            wakeDriver = wake
            currentTimers.setWake(wake)
        }
    }

    // MARK: Waiting for a job

    /// Runs `work` with the VM once every job queued before it is done, and returns its result.
    /// Waits at most the queue timeout for the job to start; the time limit applies to `work` as
    /// a whole. `label` names the job in `status` (the token name, for instance).
    public func perform<T>(label: String? = nil, _ work: (LuaVM) -> T) throws(Refusal) -> T {
        try withoutActuallyEscaping(work) { work throws(Refusal) -> T in
            var result: T?
            guard runAndWait(label: label, bounded: true, { vm in result = work(vm) }) else { throw .busy }
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
            _ = runAndWait(label: label, bounded: false, work)
        }
    }

    /// Replaces the state with a fresh one (running the init scripts again, as `makeVM` does),
    /// after every job queued before. Throws what `makeVM` threw; the old state then stays.
    public func reset() throws {
        let outcome = Mutex<Result<Void, any Error>?>(nil)
        let waiter = WaitedJob(label: "reset", bounded: false) { _ in }
        submit(ResetJob(
            arrived: .now(),
            done: { error in outcome.withLock { $0 = error.map { .failure($0) } ?? .success(()) } },
            refused: { outcome.withLock { $0 = .failure(Refusal.busy) } }))
        // Jobs run in order: once the job after the reset ran, the reset has.
        submit(waiter)
        runQueued()
        _ = waiter.wait()
        try outcome.withLock { $0 }?.get()
    }

    /// Submits a job for `work`, runs the queue if nobody does, and waits for the job. False:
    /// refused.
    private func runAndWait(label: String?, bounded: Bool, _ work: @escaping (LuaVM) -> Void) -> Bool {
        let job = WaitedJob(label: label, bounded: bounded, work: work)
        submit(job)
        runQueued()
        return job.wait()
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
            runningStoppedBy = .administrator
            running.handle.stop(.interrupt)
            return true
        }
    }

    /// Who interrupted the running job, if anyone did: read by the job on the state's thread
    /// once its evaluation has ended, to say so.
    public var runningInterruption: StateJob.Interruption? { lock.withLock { runningStoppedBy } }

    // MARK: Running

    /// The state starts a job: the watchdog's deadline runs from now. Called with the lock held.
    private func startRunning(_ job: StateJob) {
        let now = MonotonicInstant.now()
        let left = max(0, timeLimitNanoseconds - job.ranNanoseconds)
        running = (vm.stopHandle, now.advanced(byNanoseconds: left), now, job.label)
        runningKey = job.interruptKey
        runningStoppedBy = nil
        vm.timeLimit = currentOptions.timeLimit
        // What the job may still take among the waiting ones of its kind (requests, or the
        // box's own work: `StateJob.ownWork`): the sleepers change only between runs, so the
        // room holds for the whole run (the state's thread reads it).
        var held = 0
        var waiting = 0
        for sleeper in sleepers where sleeper.job.ownWork == job.ownWork {
            held += sleeper.job.heldBytes
            waiting += 1
        }
        vm.waitRoom = LuaVM.WaitRoom(
            waits: currentOptions.waitCapacity - waiting,
            outputBytes: currentOptions.waitOutputLimit - held - job.bodyBytes)
    }

    /// The job is done: no stop left armed, and the state's size for the status. Called with
    /// the lock held.
    private func stopRunning() {
        running?.handle.clear()
        running = nil
        runningKey = nil
        memoryInUse = vm.memoryInUse
    }

    private func execute(_ job: StateJob) {
        if let reset = job as? ResetJob {
            let error = replaceState()
            lock.withLock {
                stopRunning()
                job.state = .done
            }
            reset.done(error)
            return
        }
        job.run(vm)
        runConfigCallbacks()
        let (waits, wake) = lock.withLock { () -> (Bool, (@Sendable () -> Void)?) in
            if let running { job.ranNanoseconds += MonotonicInstant.now().nanoseconds(since: running.started) }
            let stoppedBy = running == nil ? nil : runningStoppedBy
            stopRunning()
            if let due = job.wakeAt {
                // An interrupt that came once the chunk had yielded to wait, before this: it
                // stopped a run that was over and answered true. It is the wait's: due now,
                // interrupted, as an interrupt of a waiting job makes it.
                if let stoppedBy, job.interruption == nil {
                    job.interruption = stoppedBy
                    return (true, keepWaiting(job, until: MonotonicInstant(nanoseconds: 0)))
                }
                return (true, keepWaiting(job, until: due))
            }
            job.state = .done
            return (false, nil)
        }
        // The driver (the transport's poller) may be asleep past the new first due time.
        wake?()
        if !waits { job.didFinish() }
    }

    /// Makes a fresh state and swaps it in; the error of `makeVM`, the old state then staying.
    private func replaceState() -> (any Error)? {
        do {
            let fresh = try makeVM(InitRunner(executor: self))
            // The old state closes when the last reference goes, after the swap and out of the
            // watchdog's reach; lx_runtime_free closes it with a stop in effect, so each pending
            // Lua finalizer ends at its first instruction (docs/limits.md).
            let (old, ended) = lock.withLock {
                let old = vm
                running?.handle.clear()
                vm = fresh
                currentRegistry = fresh.registry
                currentTimers = fresh.timers
                fresh.timers.setWake(wakeDriver)
                running?.handle = fresh.stopHandle
                // What waited in the old state cannot go on in the new one (SPEC M3).
                let ended = sleepers.map(\.job)
                sleepers.removeAll()
                for job in ended { job.state = .done }
                return (old, ended)
            }
            withExtendedLifetime(old) {}
            for job in ended { job.stateWasReset() }
            // The new state's scripts may have set timers while the driver slept.
            lock.withLock { wakeDriver }?()
            logger.notice("the Lua state was reset")
            return nil
        } catch {
            logger.error("reset failed; the old state stays", metadata: ["error": "\(error)"])
            return error
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
    /// tick until the job ends: a chunk may clear hooks with `debug.sethook()`. Refuses the jobs
    /// that have waited past the queue timeout: their requests get 503 busy within a tick of it,
    /// whatever runs meanwhile.
    private func watch() {
        var expired: [StateJob] = []
        while true {
            pauseThread(for: .milliseconds(10))
            lock.withLock {
                let now = MonotonicInstant.now()
                // While an init script runs (at start, in a reset, or a stored script a job
                // installs), its own deadline is the one that counts.
                if let running, initRunning == nil, now >= running.deadline {
                    running.handle.stop(.timeout)
                }
                if let initRunning, now >= initRunning.deadline {
                    initRunning.handle.stop(.timeout)
                }
                expire(now: now, into: &expired)
            }
            // Outside the lock: refusing answers a request.
            for job in expired { job.refuse() }
            expired.removeAll(keepingCapacity: true)
        }
    }

    /// Takes the bounded jobs that waited past the queue timeout out of the queue. Jobs are in
    /// arrival order and share one timeout, so the first that has not waited long enough ends
    /// the search. Called with the lock held.
    private func expire(now: MonotonicInstant, into expired: inout [StateJob]) {
        guard waiting > 0 else { return }
        let timeout = currentOptions.queueTimeout
        var index = queueHead
        while index < queue.count {
            defer { index += 1 }
            guard let job = queue[index], job.state == .queued, job.bounded, !job.hasWaited else { continue }
            guard now.duration(since: job.arrived) >= timeout else { break }
            takeOut(job, at: index)
            expired.append(job)
        }
    }

    /// Takes the queued `job` at `index` out of the queue, refused (the queue timeout, or its
    /// client went): it will not run. Called with the lock held.
    private func takeOut(_ job: StateJob, at index: Int) {
        job.state = .refused
        queue[index] = nil
        waiting -= 1
        queuedBytes -= job.bodyBytes
    }
}
