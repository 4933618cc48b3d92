#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A point on CLOCK_MONOTONIC in nanoseconds: cheap to read, comparable across threads, and
/// usable as a pthread_cond_timedwait deadline.
public struct MonotonicInstant: Comparable, Hashable, Sendable {
    public var nanoseconds: UInt64

    public init(nanoseconds: UInt64) { self.nanoseconds = nanoseconds }

    public static func now() -> MonotonicInstant {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return MonotonicInstant(nanoseconds: UInt64(ts.tv_sec) * 1_000_000_000 + UInt64(ts.tv_nsec))
    }

    public static func < (a: MonotonicInstant, b: MonotonicInstant) -> Bool { a.nanoseconds < b.nanoseconds }

    public func advanced(by duration: Duration) -> MonotonicInstant {
        advanced(byNanoseconds: duration.wholeNanoseconds)
    }

    public func advanced(byNanoseconds delta: Int64) -> MonotonicInstant {
        MonotonicInstant(nanoseconds: UInt64(max(0, Int64(nanoseconds) + delta)))
    }

    /// Time from `earlier` to `self`; zero when `earlier` is later.
    public func duration(since earlier: MonotonicInstant) -> Duration {
        .nanoseconds(nanoseconds(since: earlier))
    }

    /// As `duration(since:)`, in nanoseconds: what every request measures is kept so, because
    /// each conversion between `Duration` and a count is 128-bit arithmetic (~200 instructions).
    public func nanoseconds(since earlier: MonotonicInstant) -> Int64 {
        nanoseconds >= earlier.nanoseconds ? Int64(nanoseconds - earlier.nanoseconds) : 0
    }

    var timespecValue: timespec {
        timespec(tv_sec: Int(nanoseconds / 1_000_000_000), tv_nsec: Int(nanoseconds % 1_000_000_000))
    }
}

extension Duration {
    /// The whole nanoseconds in the duration (toward zero).
    public var wholeNanoseconds: Int64 {
        let (seconds, attoseconds) = components
        return seconds * 1_000_000_000 + attoseconds / 1_000_000_000
    }

    /// The duration in milliseconds, as a floating-point number (for logs and headers).
    public var milliseconds: Double {
        let (seconds, attoseconds) = components
        return Double(seconds) * 1000 + Double(attoseconds) / 1e15
    }
}
