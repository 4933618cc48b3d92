import Testing

@testable import ExecService

@Suite("Latency histogram")
struct LatencyHistogramTests {
    @Test("an observation counts in the first bucket whose bound is at or above it, and in every bucket after it")
    func cumulativeBuckets() {
        let histogram = LatencyHistogram(
            name: "t_seconds", buckets: [.microseconds(50), .milliseconds(1), .seconds(1), .seconds(2.5)])
        // On a bound (le is ≤), just above it, below the first, past the last, and a negative
        // elapsed time (a clock that stepped) counted as zero.
        for nanoseconds: Int64 in [50_000, 50_001, 7, 3_000_000_000, -5, 1_000_000_000] {
            histogram.record(nanoseconds: nanoseconds)
        }
        var out: [UInt8] = []
        histogram.emit(into: &out)
        #expect(
            String(decoding: out, as: UTF8.self) == """
                # TYPE t_seconds histogram
                t_seconds_bucket{le="0.00005"} 3
                t_seconds_bucket{le="0.001"} 4
                t_seconds_bucket{le="1.0"} 5
                t_seconds_bucket{le="2.5"} 5
                t_seconds_bucket{le="+Inf"} 6
                t_seconds_sum 4.000100008
                t_seconds_count 6

                """)
    }

    @Test("an empty histogram writes every bucket, a zero sum and a zero count")
    func empty() {
        var out: [UInt8] = []
        LatencyHistogram(name: "e_seconds", buckets: ExecService.durationBuckets).emit(into: &out)
        let lines = String(decoding: out, as: UTF8.self).split(separator: "\n")
        #expect(lines.count == 1 + ExecService.durationBuckets.count + 1 + 2)
        #expect(lines[1] == #"e_seconds_bucket{le="0.00005"} 0"#)
        #expect(lines[14] == #"e_seconds_bucket{le="1.0"} 0"#)
        #expect(lines.suffix(3) == [#"e_seconds_bucket{le="+Inf"} 0"#, "e_seconds_sum 0.0", "e_seconds_count 0"])
    }
}

@Suite("Metrics: the request counters' series stay bounded")
struct RequestSeriesTests {
    @Test("past maxRequestSeries a new endpoint's requests count as endpoint other; those seen before keep theirs")
    func bounded() {
        let handles = MetricsHandles()
        let first = handles.requestCounter(endpoint: "kept", status: 200)
        for index in 0..<(MetricsHandles.maxRequestSeries + 500) {
            _ = handles.requestCounter(endpoint: "name\(index)", status: 200)
        }
        // The 2,000 series, and one for other.
        #expect(handles.requestCounters.withLock { $0.count } == MetricsHandles.maxRequestSeries + 1)
        #expect(handles.requestCounters.withLock { $0[.init(endpoint: "other", status: 200)] } != nil)
        #expect(handles.requestCounter(endpoint: "kept", status: 200) === first)
        #expect(handles.requestCounter(endpoint: "new", status: 200) === handles.requestCounter(endpoint: "other", status: 200))
    }

    @Test("a status a handler makes up counts by its class: one endpoint cannot fill the series with statuses")
    func statusClasses() {
        let handles = MetricsHandles()
        for status in 200...599 { _ = handles.requestCounter(endpoint: "e", status: status) }
        // 29 statuses of their own, and 2xx, 3xx, 4xx, 5xx.
        #expect(handles.requestCounters.withLock { $0.count } == 33)
        #expect(handles.requestCounter(endpoint: "e", status: 299) === handles.requestCounter(endpoint: "e", status: 250))
        #expect(handles.requestCounter(endpoint: "e", status: 404) !== handles.requestCounter(endpoint: "e", status: 499))
    }
}
