#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A value read by many threads at once and replaced rarely, behind a pthread read-write lock.
///
/// Readers never wait for each other, unlike with a mutex, where every request's short critical
/// section made the others spin (measured: a fifth of luaexecd's CPU under load).
///
/// `@unchecked Sendable`: `value` is only read under the read lock and only written under the
/// write lock; the lock lives in heap memory that never moves and is freed in `deinit`.
public final class ReadWriteLocked<Value: Sendable>: @unchecked Sendable {
    private let lock = UnsafeMutablePointer<pthread_rwlock_t>.allocate(capacity: 1)
    private var value: Value

    public init(_ value: Value) {
        self.value = value
        pthread_rwlock_init(lock, nil)
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    /// A copy of the current value.
    public func read() -> Value {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return value
    }

    public func write(_ newValue: Value) {
        pthread_rwlock_wrlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        value = newValue
    }
}
