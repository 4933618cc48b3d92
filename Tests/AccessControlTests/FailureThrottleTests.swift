import SystemSupport
import Testing

@testable import AccessControl

@Suite("FailureThrottle")
struct FailureThrottleTests {
    let start = MonotonicInstant(nanoseconds: 1_000_000_000_000)

    @Test("an address is blocked after `limit` failures within the window, for `blockFor`")
    func blocks() {
        let throttle = FailureThrottle(policy: .init(limit: 3, window: .seconds(60), blockFor: .seconds(30)))
        for second in 0..<2 { throttle.recordFailure("a", now: start.advanced(by: .seconds(second))) }
        #expect(throttle.blocked("a", now: start.advanced(by: .seconds(2))) == nil)
        throttle.recordFailure("a", now: start.advanced(by: .seconds(2)))
        #expect(throttle.blocked("a", now: start.advanced(by: .seconds(3))) == .seconds(29))
        #expect(throttle.blocked("b", now: start.advanced(by: .seconds(3))) == nil)
        #expect(throttle.blocked("a", now: start.advanced(by: .seconds(32))) == nil)
    }

    @Test("failures spread over more than the window do not block")
    func window() {
        let throttle = FailureThrottle(policy: .init(limit: 3, window: .seconds(10), blockFor: .seconds(30)))
        // One failure every 11 s, each just past the window of the one before: never blocked,
        // looked at right after each failure (a block lasts 30 s, so a later look could miss it).
        for index in 0..<10 {
            let now = start.advanced(by: .seconds(index * 11))
            throttle.recordFailure("a", now: now)
            #expect(throttle.blocked("a", now: now) == nil, "after failure \(index + 1)")
        }
        // The same address does get blocked once `limit` failures fall within one window.
        let last = start.advanced(by: .seconds(9 * 11))
        throttle.recordFailure("a", now: last.advanced(by: .seconds(1)))
        throttle.recordFailure("a", now: last.advanced(by: .seconds(2)))
        #expect(throttle.blocked("a", now: last.advanced(by: .seconds(2))) == .seconds(30))
    }

    @Test("a flood of addresses never grows past the capacity")
    func bounded() {
        let throttle = FailureThrottle(policy: .init(limit: 3, window: .seconds(60), blockFor: .seconds(60), capacity: 100))
        for index in 0..<10_000 { throttle.recordFailure("10.0.\(index / 256).\(index % 256)", now: start) }
        #expect(throttle.count == 100)
    }
}
