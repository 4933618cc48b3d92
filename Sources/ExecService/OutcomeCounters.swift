import Synchronization

/// Requests answered, by outcome: `ok`, an error kind, or `http_<status>`. The common outcomes
/// are lock-free atomics; the rare ones share a lock.
final class OutcomeCounters: Sendable {
    static let known = [
        "ok", "syntax", "runtime", "memory", "timeout", "interrupted", "busy", "auth", "throttled",
    ]

    private final class Counter: Sendable {
        let value = Atomic<Int>(0)
    }

    private let counters: [String: Counter] = Dictionary(uniqueKeysWithValues: known.map { ($0, Counter()) })
    private let others = Mutex<[String: Int]>([:])

    func increment(_ outcome: String) {
        if let counter = counters[outcome] {
            counter.value.add(1, ordering: .relaxed)
        } else {
            others.withLock { $0[outcome, default: 0] += 1 }
        }
    }

    /// Every outcome seen at least once.
    var snapshot: [String: Int] {
        var result = others.withLock { $0 }
        for (name, counter) in counters {
            let value = counter.value.load(ordering: .relaxed)
            if value > 0 { result[name] = value }
        }
        return result
    }
}
