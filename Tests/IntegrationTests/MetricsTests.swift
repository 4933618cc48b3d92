import Foundation
import Testing

/// `GET /api/v1/metrics` (SPEC M5): Prometheus text, valid for promtool, readable with the
/// narrow `metrics` scope.
@Suite("Metrics")
struct MetricsTests {
    @Test(
        "requests by endpoint and status, latency and queue histograms, state memory and auth failures, as promtool accepts"
    )
    func prometheus() throws {
        let stack = try Stack()
        #expect(try stack.eval("return 1").status == 200)
        #expect(try stack.eval("x x").status == 400)
        #expect(try stack.request("/api/v1/exec/status.lua", token: stack.adminToken).status == 200)
        #expect(
            try stack.request("/api/v1/exec/probe-\(UInt32.random(in: 0...UInt32.max))", token: stack.adminToken).status
                == 404)
        #expect(try stack.request(token: "lxk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAA000000", body: []).status == 401)
        let scraper = try stack.makeToken("scraper", scopes: ["metrics"])
        let result = try stack.request("/api/v1/metrics", token: scraper)
        #expect(result.status == 200)
        #expect(result.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8")
        let text = result.text
        for line in [
            #"luaexec_requests_total{endpoint="interactive.lua",status="200"} 1"#,
            #"luaexec_requests_total{endpoint="interactive.lua",status="400"} 1"#,
            #"luaexec_requests_total{endpoint="status.lua",status="200"} 1"#,
            #"luaexec_requests_total{endpoint="unknown",status="404"} 1"#,
            #"luaexec_auth_failures_total{reason="invalid_token"} 1"#,
            "luaexec_evaluation_seconds_count 3",
            "luaexec_queue_wait_seconds_count 4",
        ] {
            #expect(text.contains(line + "\n"), "\(line) in\n\(text)")
        }
        #expect(text.contains(#"luaexec_evaluation_seconds_bucket{le="+Inf"} 3"#))
        let memory = text.split(separator: "\n").first { $0.hasPrefix("luaexec_state_memory_bytes ") }
        #expect((memory?.split(separator: " ").last).flatMap { Double($0) }.map { $0 > 0 } == true)
        // Neither secrets nor token names: the scraper's own name is nowhere.
        #expect(!text.contains("lxk_") && !text.contains("scraper") && !text.contains("admin\""))

        let file = stack.directory + "/metrics.txt"
        try Data(result.body).write(to: URL(fileURLWithPath: file))
        let check = try Stack.run("/bin/sh", ["-c", "promtool check metrics < \"$0\"", file])
        #expect(check.status == 0, "\(check.stdout)\(check.stderr)")

        // A scraper runs no Lua; an exec token reads no metrics.
        #expect(try stack.request(token: scraper, body: Array("return 1".utf8)).status == 403)
        let exec = try stack.makeToken("runner", scopes: ["exec"])
        #expect(try stack.request("/api/v1/metrics", token: exec).status == 403)
        #expect(try stack.request("/api/v1/metrics", token: stack.adminToken).status == 200)
        #expect(try stack.request("/api/v1/metrics").status == 401)
    }
}
