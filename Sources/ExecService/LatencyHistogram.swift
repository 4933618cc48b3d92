import Synchronization
import SystemSupport

/// A histogram of durations for `/api/v1/metrics`, in Prometheus's text format: the two that
/// every request records (evaluation time, queue wait) and the timers' lateness.
///
/// Not a swift-metrics `Timer`: swift-prometheus's histogram takes a lock and compares the value
/// with every bucket's bound as a 128-bit `Duration`, incrementing each bucket at or above it,
/// ~900 instructions an observation, two a request (bench/NOTES.md). Here an observation is a
/// search over 64-bit nanoseconds and one bucket's increment under a `Mutex`; the buckets are
/// made cumulative when they are written out, in the same lines swift-prometheus wrote.
final class LatencyHistogram: Sendable {
    let name: String
    /// Upper bounds, in nanoseconds, ascending.
    private let bounds: [Int64]
    private let state: Mutex<State>

    private struct State {
        /// Observations per bucket, not cumulative; the last one is `+Inf`'s.
        var counts: [UInt64]
        var sumNanoseconds: Int64 = 0
    }

    init(name: String, buckets: [Duration]) {
        self.name = name
        bounds = buckets.map(\.wholeNanoseconds)
        state = Mutex(State(counts: [UInt64](repeating: 0, count: buckets.count + 1)))
    }

    func record(nanoseconds: Int64) {
        let value = max(0, nanoseconds)
        // The first bound at or above the value (Prometheus's `le`), by binary search.
        var low = 0
        var high = bounds.count
        while low < high {
            let middle = (low + high) / 2
            if bounds[middle] < value { low = middle + 1 } else { high = middle }
        }
        state.withLock { state in
            state.counts[low] &+= 1
            state.sumNanoseconds &+= value
        }
    }

    /// The histogram's lines: `# TYPE`, the cumulative buckets, `_sum` in seconds and `_count`.
    func emit(into out: inout [UInt8]) {
        let (counts, sum) = state.withLock { ($0.counts, $0.sumNanoseconds) }
        out += "# TYPE \(name) histogram\n".utf8
        var total: UInt64 = 0
        for (index, count) in counts.enumerated() {
            total += count
            // Formatted here, not at start-up: idle luaexecd touches no number formatting.
            let bound = index < bounds.count ? Self.seconds(bounds[index]) : "+Inf"
            out += "\(name)_bucket{le=\"\(bound)\"} \(total)\n".utf8
        }
        out += "\(name)_sum \(Self.seconds(sum))\n".utf8
        out += "\(name)_count \(total)\n".utf8
    }

    /// `nanoseconds` as decimal seconds without trailing zeros, one digit after the point at
    /// least: 0.00005, 1.0, 0.000039514.
    static func seconds(_ nanoseconds: Int64) -> String {
        var fraction = String(nanoseconds % 1_000_000_000)
        fraction = String(repeating: "0", count: 9 - fraction.count) + fraction
        while fraction.count > 1, fraction.last == "0" { fraction.removeLast() }
        return "\(nanoseconds / 1_000_000_000).\(fraction)"
    }
}
