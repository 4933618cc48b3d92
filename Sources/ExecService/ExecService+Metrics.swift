import AccessControl
import CoreMetrics
import HTTPCore
import LuaRuntime
import Synchronization
import SystemSupport

/// Metrics (SPEC M5) through swift-metrics: the daemon bootstraps the Prometheus backend and
/// hands ExecService the exporter; without one (tests), the metrics go nowhere. The three
/// histograms are luaexec's own (`LatencyHistogram`: two are recorded on every request), written
/// after the exporter's lines.
///
///   luaexec_requests_total{endpoint,status}   every request, by route and status
///   luaexec_evaluation_seconds                histogram of evaluation time (chunks, endpoints, actions)
///   luaexec_queue_wait_seconds                histogram of the wait for the state
///   luaexec_state_memory_bytes                the state's memory after the last job
///   luaexec_auth_failures_total{reason}       refused credentials and scopes
///   luaexec_timer_runs_total                  timer callbacks run (SPEC V9)
///   luaexec_timer_errors_total                timer callbacks that failed
///   luaexec_timer_lateness_seconds            histogram of how late timers started
///
/// No label holds a token, a token's name or a secret, and `endpoint` takes only known names
/// (a registered endpoint, or `unknown`), so a scanner cannot grow the label set.
extension ExecService {
    static let metricsPath = "/api/v1/metrics"

    /// Histogram buckets for the three histograms, from 50 µs to 10 s.
    static let durationBuckets: [Duration] = [
        .microseconds(50), .microseconds(100), .microseconds(250), .microseconds(500), .milliseconds(1),
        .milliseconds(2), .milliseconds(5), .milliseconds(10), .milliseconds(25), .milliseconds(50),
        .milliseconds(100), .milliseconds(250), .milliseconds(500), .seconds(1), .seconds(2.5), .seconds(5),
        .seconds(10),
    ]

    func metrics(_ call: Call) -> Response {
        guard let exportMetrics else { return Self.plain(404, "no metrics in this build\n", json: call.json) }
        metricsHandles?.memory.record(executor.status.memoryInUse)
        return Response(
            status: 200,
            headers: [("Content-Type", "text/plain; version=0.0.4; charset=utf-8"), ("Cache-Control", "no-store")],
            body: Self.addingHelp(to: exportMetrics() + (metricsHandles?.histogramLines() ?? [])))
    }

    /// What each metric measures, for its `# HELP` line.
    static let help = [
        "luaexec_requests_total": "Requests answered, by route and HTTP status.",
        "luaexec_evaluation_seconds": "Time spent evaluating chunks, endpoint handlers and actions.",
        "luaexec_queue_wait_seconds": "Time requests waited for the Lua state.",
        "luaexec_state_memory_bytes": "Bytes the Lua state held after the last job.",
        "luaexec_auth_failures_total": "Refused credentials and scopes, by RFC 6750 error code.",
        "luaexec_timer_runs_total": "Timer callbacks run.",
        "luaexec_timer_errors_total": "Timer callbacks that ended with an error (a timeout or memory error too).",
        "luaexec_timer_lateness_seconds": "How long after its due time each timer callback started.",
    ]

    /// swift-metrics has no help texts (its factory registers every metric with none), and
    /// promtool wants one per metric: each `# TYPE name` line gets a `# HELP name` line before it.
    static func addingHelp(to exported: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(exported.count + 512)
        for line in exported.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
            if line.starts(with: "# TYPE ".utf8) {
                let name = String(decoding: line.dropFirst(7).prefix { $0 != UInt8(ascii: " ") }, as: UTF8.self)
                if let text = help[name] { out += Array("# HELP \(name) \(text)\n".utf8) }
            }
            out += line
            out.append(UInt8(ascii: "\n"))
        }
        if exported.last == UInt8(ascii: "\n") || exported.isEmpty { out.removeLast() }
        return out
    }

    /// Counts a finished request under its route's label.
    func countRequest(label: String, status: Int) {
        guard let handles = metricsHandles else { return }
        handles.requestCounter(endpoint: label, status: status).increment()
    }

    func countAuthFailure(_ reason: String) {
        metricsHandles?.counter("luaexec_auth_failures_total", [("reason", reason)]).increment()
    }

    func recordEvaluation(nanoseconds: Int64) {
        metricsHandles?.evaluation.record(nanoseconds: nanoseconds)
    }

    /// How long a job waited for the state, from its arrival to its start.
    func recordQueueWait(since arrived: MonotonicInstant) {
        metricsHandles?.queueWait.record(nanoseconds: MonotonicInstant.now().nanoseconds(since: arrived))
    }

    /// The label of the endpoint `name`: its name when a script registered it, else `unknown`,
    /// so that a scanner cannot grow the label set.
    func endpointLabel(_ name: String) -> String {
        executor.registry.entry(.endpoint, name) != nil ? name : "unknown"
    }
}

/// The metrics' handles, made once: making a swift-metrics handle goes through the factory and
/// the Prometheus registry (a lock, name and label checks), too much for every request. Counters
/// are kept by name and labels; their label sets are bounded (a route's `label`, or
/// `endpointLabel`: a registered endpoint's name or `unknown`).
final class MetricsHandles: Sendable {
    let evaluation = LatencyHistogram(name: "luaexec_evaluation_seconds", buckets: ExecService.durationBuckets)
    let queueWait = LatencyHistogram(name: "luaexec_queue_wait_seconds", buckets: ExecService.durationBuckets)
    let memory = Gauge(label: "luaexec_state_memory_bytes")
    let timerRuns = Counter(label: "luaexec_timer_runs_total")
    let timerErrors = Counter(label: "luaexec_timer_errors_total")
    let timerLateness = LatencyHistogram(name: "luaexec_timer_lateness_seconds", buckets: ExecService.durationBuckets)
    private let counters = Mutex<[String: Counter]>([:])
    /// `luaexec_requests_total` by endpoint and status: counted for every request, so found by
    /// a key that needs no string built.
    let requestCounters = Mutex<[RequestKey: Counter]>([:])
    /// The series the last request counted in: most requests count in the one before's, found
    /// by comparing its key rather than hashing the endpoint's name (~600 instructions).
    let lastRequestCounter = Mutex<(key: RequestKey, counter: Counter)?>(nil)

    struct RequestKey: Hashable {
        var endpoint: String
        var status: Int
    }

    /// The histograms' lines, for the end of the exporter's.
    func histogramLines() -> [UInt8] {
        var out: [UInt8] = []
        for histogram in [evaluation, queueWait, timerLateness] { histogram.emit(into: &out) }
        return out
    }

    /// Most series of `luaexec_requests_total`: endpoints come and go (a script may register
    /// and withdraw names by the thousand, and a handler may answer any status), and each
    /// series stays in the exporter. Past this many, a new one is counted as endpoint `other`.
    static let maxRequestSeries = 2000

    /// The status as a label: the statuses HTTP clients meet, each its own; any other a
    /// handler answers by its class (`2xx`...), so that one endpoint cannot fill the series.
    /// Negative: a class.
    static func statusKey(_ status: Int) -> Int {
        switch status {
        case 200, 201, 202, 204, 206, 301, 302, 303, 304, 307, 308, 400, 401, 403, 404, 405, 406, 408, 409, 410, 413,
            415, 422, 429, 500, 501, 502, 503, 504:
            status
        default: -(status / 100)
        }
    }

    func requestCounter(endpoint: String, status: Int) -> Counter {
        let status = Self.statusKey(status)
        var key = RequestKey(endpoint: endpoint, status: status)
        if let counter = lastRequestCounter.withLock({ $0?.key == key ? $0?.counter : nil }) { return counter }
        if let counter = requestCounters.withLock({ $0[key] }) {
            lastRequestCounter.withLock { $0 = (key, counter) }
            return counter
        }
        if requestCounters.withLock({ $0.count }) >= Self.maxRequestSeries {
            key.endpoint = "other"
            if let counter = requestCounters.withLock({ $0[key] }) { return counter }
        }
        let label = status < 0 ? "\(-status)xx" : String(status)
        let counter = counter("luaexec_requests_total", [("endpoint", key.endpoint), ("status", label)])
        requestCounters.withLock { $0[key] = counter }
        return counter
    }

    func counter(_ label: String, _ dimensions: [(String, String)]) -> Counter {
        var key = label
        for (name, value) in dimensions { key += "\u{0}" + name + "\u{0}" + value }
        return counters.withLock { counters in
            if let counter = counters[key] { return counter }
            let counter = Counter(label: label, dimensions: dimensions)
            counters[key] = counter
            return counter
        }
    }
}
