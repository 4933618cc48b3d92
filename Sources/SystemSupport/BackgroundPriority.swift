#if canImport(Glibc)
import Glibc
#endif

/// Work nobody waits for at the moment it is done, run at Linux's lowest priority
/// (`SCHED_IDLE`): it gets a CPU when one would otherwise idle, and gives way at once to every
/// other thread. The audit writer's batches are such work (their records wait up to a quarter
/// of a second by design): at normal priority, on two cores, the writer took a CPU from nginx
/// or the request thread in the middle of a request; at `SCHED_IDLE` it fills the gaps they
/// leave (bench/NOTES.md, "The audit writer at background priority").
///
/// A thread at `SCHED_IDLE` must never be what another waits for, or that other waits for
/// whatever else the CPUs are doing. So the thread is lowered only inside `background`, and
/// only while no `Reason` holds; a reason raises it back to normal priority at once, from any
/// thread: `holding`, raised by a thread that finds a lock taken by it (`SQLiteDatabase`'s
/// connection), and `behind`, raised when its work piles up (on a box whose CPUs are never
/// idle it would otherwise get almost nothing). Outside `background` (waiting for work, taking
/// the locks a request takes) it runs at normal priority.
///
/// Returning from `SCHED_IDLE` to normal priority needs `CAP_SYS_NICE` or an `RLIMIT_NICE` of at
/// least 20 (nice 0; systemd's `LimitNICE=+0`, which the shipped unit sets). Where neither
/// holds, `forCallingThread` answers nil and the thread stays at normal priority.
///
/// `@unchecked Sendable`: `reasons` and `inBackground` are touched only with `lock` held.
public final class BackgroundPriority: @unchecked Sendable {
    public struct Reason: OptionSet, Sendable {
        public let rawValue: UInt8
        public init(rawValue: UInt8) { self.rawValue = rawValue }
        /// Another thread waits for something the thread holds.
        public static let holding = Reason(rawValue: 1)
        /// The thread's work is piling up.
        public static let behind = Reason(rawValue: 2)
    }

    /// The thread's id (`/proc/self/task/ID`), which the scheduler's calls take.
    public let thread: pid_t
    private let lock = ConditionLock()
    private var reasons: Reason = []
    private var inBackground = false

    private init(thread: pid_t) {
        self.thread = thread
    }

    /// The calling thread's handle, made once (`ofCallingThread` finds it from then on); nil
    /// where a thread could not be raised back from `SCHED_IDLE`.
    public static func forCallingThread() -> BackgroundPriority? {
        if let made = ofCallingThread { return made }
        guard mayReturnFromIdle, let thread = callingThreadID() else { return nil }
        let priority = BackgroundPriority(thread: thread)
        // Kept for the thread's life (the audit writer's: the process's).
        pthread_setspecific(threadKey, Unmanaged.passRetained(priority).toOpaque())
        return priority
    }

    /// The handle `forCallingThread` made on this thread, if any: nil on every other thread.
    public static var ofCallingThread: BackgroundPriority? {
        pthread_getspecific(threadKey).map { Unmanaged<BackgroundPriority>.fromOpaque($0).takeUnretainedValue() }
    }

    /// Runs `body` (on the thread itself) at `SCHED_IDLE`, or at normal priority while a reason
    /// holds.
    public func background<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        lock.withLock {
            inBackground = true
            if reasons.isEmpty { _ = Self.setPolicy(of: thread, to: Self.schedIdle) }
        }
        defer {
            lock.withLock {
                inBackground = false
                if reasons.isEmpty { _ = Self.setPolicy(of: thread, to: SCHED_OTHER) }
            }
        }
        return try body()
    }

    /// Raises the thread to normal priority for `reason` (from any thread).
    public func raise(for reason: Reason) {
        lock.withLock {
            if reasons.isEmpty, inBackground { _ = Self.setPolicy(of: thread, to: SCHED_OTHER) }
            reasons.insert(reason)
        }
    }

    /// `reason` no longer holds: in `background`, the thread goes back to `SCHED_IDLE` when no
    /// other does.
    public func drop(_ reason: Reason) {
        lock.withLock {
            guard reasons.contains(reason) else { return }
            reasons.remove(reason)
            if reasons.isEmpty, inBackground { _ = Self.setPolicy(of: thread, to: Self.schedIdle) }
        }
    }

    /// The reasons that hold now.
    public var raisedFor: Reason { lock.withLock { reasons } }

    /// Whether the thread runs at `SCHED_IDLE` now, as the kernel says.
    public var isLowered: Bool { Self.policy(of: thread) == Self.schedIdle }

    /// The scheduling policy of thread `thread` (`SCHED_OTHER` 0, `SCHED_IDLE` 5), -1 if it is gone.
    public static func policy(of thread: pid_t) -> Int32 { sched_getscheduler(thread) }

    /// `SCHED_IDLE`, which Glibc's module hides with the other Linux-only policies.
    public static let schedIdle: Int32 = 5

    /// The calling thread's id, from `/proc/thread-self` ("PID/task/TID"): Glibc's module hides
    /// `gettid` (`_GNU_SOURCE`) and Swift cannot call `syscall` (variadic).
    public static func callingThreadID() -> pid_t? {
        var buffer = [CChar](repeating: 0, count: 64)
        let count = readlink("/proc/thread-self", &buffer, buffer.count - 1)
        guard count > 0 else { return nil }
        let link = String(decoding: buffer[..<count].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        return link.split(separator: "/").last.flatMap { pid_t($0) }
    }

    private static func setPolicy(of thread: pid_t, to policy: Int32) -> Bool {
        var parameters = sched_param(sched_priority: 0)
        return sched_setscheduler(thread, policy, &parameters) == 0
    }

    private static let threadKey: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "pthread_key_create failed")
        return key
    }()

    /// Whether a thread of this process can go back from `SCHED_IDLE` to normal priority: tried
    /// once, on a thread made for it, since a thread that could not would stay at `SCHED_IDLE`.
    public static let mayReturnFromIdle: Bool = {
        final class Outcome: @unchecked Sendable {  // written by the probe, read after it ended
            var permitted = false
        }
        let outcome = Outcome()
        runOnNewThread(stackSize: 64 << 10) {
            guard let thread = callingThreadID(), setPolicy(of: thread, to: schedIdle) else { return }
            outcome.permitted = setPolicy(of: thread, to: SCHED_OTHER)
        }
        return outcome.permitted
    }()
}
