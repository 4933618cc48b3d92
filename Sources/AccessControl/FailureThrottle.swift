import Synchronization
import SystemSupport

/// Counts failed authentications per client address and blocks an address that fails too
/// often (SPEC T6). Memory stays bounded under a flood of addresses: past `capacity` entries,
/// expired ones are dropped, then arbitrary ones.
public final class FailureThrottle: Sendable {
    public struct Policy: Sendable {
        /// Failures within `window` that block the address.
        public var limit: Int
        public var window: Duration
        /// How long a blocked address stays blocked.
        public var blockFor: Duration
        /// Most addresses remembered at once.
        public var capacity: Int

        public init(limit: Int = 10, window: Duration = .seconds(60), blockFor: Duration = .seconds(60), capacity: Int = 10_000) {
            self.limit = limit
            self.window = window
            self.blockFor = blockFor
            self.capacity = capacity
        }
    }

    private struct Entry {
        var windowStart: MonotonicInstant
        var failures: Int
        var blockedUntil: MonotonicInstant?
    }

    private struct State {
        var policy: Policy
        var entries: [String: Entry] = [:]
        var lastPurge = MonotonicInstant(nanoseconds: 0)
    }

    private let state: Mutex<State>

    public init(policy: Policy = Policy()) { state = Mutex(State(policy: policy)) }

    /// The policy in force; setting it (a config reload) keeps what addresses did so far.
    public var policy: Policy {
        get { state.withLock { $0.policy } }
        set { state.withLock { $0.policy = newValue } }
    }

    /// How long `address` must still wait, or nil when it is not blocked.
    public func blocked(_ address: String, now: MonotonicInstant = .now()) -> Duration? {
        state.withLock { state in
            guard let until = state.entries[address]?.blockedUntil, now < until else { return nil }
            return until.duration(since: now)
        }
    }

    /// Records a failure from `address`.
    public func recordFailure(_ address: String, now: MonotonicInstant = .now()) {
        state.withLock { state in
            let policy = state.policy
            var entry = state.entries[address] ?? Entry(windowStart: now, failures: 0, blockedUntil: nil)
            if now.duration(since: entry.windowStart) > policy.window {
                entry = Entry(windowStart: now, failures: 0, blockedUntil: entry.blockedUntil)
            }
            entry.failures += 1
            if entry.failures >= policy.limit {
                entry.blockedUntil = now.advanced(by: policy.blockFor)
                entry.failures = 0
                entry.windowStart = now
            }
            if state.entries[address] == nil, state.entries.count >= policy.capacity {
                evict(&state, now: now)
            }
            state.entries[address] = entry
        }
    }

    /// Number of addresses remembered (for tests and status).
    public var count: Int { state.withLock { $0.entries.count } }

    private func evict(_ state: inout State, now: MonotonicInstant) {
        let policy = state.policy
        // Dropping expired entries costs a pass over all of them: at most once a second.
        if now.duration(since: state.lastPurge) >= .seconds(1) {
            state.lastPurge = now
            state.entries = state.entries.filter { _, entry in
                if let until = entry.blockedUntil, now < until { return true }
                return now.duration(since: entry.windowStart) <= policy.window
            }
        }
        // Everything is live: forget an arbitrary address, so a flood cannot grow memory.
        if state.entries.count >= policy.capacity, let victim = state.entries.first?.key {
            state.entries.removeValue(forKey: victim)
        }
    }
}
