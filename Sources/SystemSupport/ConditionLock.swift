#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A pthread mutex with one condition variable.
///
/// `@unchecked Sendable`: the mutex and condition live in heap memory that never moves and is
/// only freed in `deinit`, when no thread can hold a reference; every access to the state they
/// guard goes through `lock()`/`unlock()`, which is what makes sharing across threads safe.
public final class ConditionLock: @unchecked Sendable {
    // Visible to inlined code: `withLock` is inlined into its callers, most of them in other
    // modules and on the request path, where the unspecialized generic cost ~80 instructions
    // a call (bench/instructions.sh).
    @usableFromInline let mutex = UnsafeMutablePointer<pthread_mutex_t>.allocate(capacity: 1)
    private let condition = UnsafeMutablePointer<pthread_cond_t>.allocate(capacity: 1)

    public init() {
        pthread_mutex_init(mutex, nil)
        var attributes = pthread_condattr_t()
        pthread_condattr_init(&attributes)
        #if os(Linux)
        // Timed waits measure against the monotonic clock, immune to wall-clock changes.
        pthread_condattr_setclock(&attributes, CLOCK_MONOTONIC)
        #endif
        pthread_cond_init(condition, &attributes)
        pthread_condattr_destroy(&attributes)
    }

    deinit {
        pthread_cond_destroy(condition)
        pthread_mutex_destroy(mutex)
        condition.deallocate()
        mutex.deallocate()
    }

    @inlinable public func lock() { pthread_mutex_lock(mutex) }
    @inlinable public func unlock() { pthread_mutex_unlock(mutex) }

    @inlinable public func withLock<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        lock()
        defer { unlock() }
        return try body()
    }

    /// Waits for a signal; call with the lock held. Spurious wake-ups happen: re-check.
    public func wait() { pthread_cond_wait(condition, mutex) }

    /// Waits for a signal or until `deadline` (monotonic); call with the lock held.
    /// Returns false once the deadline has passed.
    @discardableResult
    public func wait(until deadline: MonotonicInstant) -> Bool {
        var ts = deadline.timespecValue
        return pthread_cond_timedwait(condition, mutex, &ts) == 0
    }

    public func signal() { pthread_cond_signal(condition) }

    /// Wakes every waiter; call with the lock held.
    public func broadcast() { pthread_cond_broadcast(condition) }
}
