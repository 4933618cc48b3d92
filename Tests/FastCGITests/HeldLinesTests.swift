import Glibc
import SystemSupport
import Testing

@Suite("Held log lines")
struct HeldLinesTests {
    /// What reached the read end of `pipe` so far, without blocking.
    static func drain(_ fd: Int32) -> String {
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = read(fd, &buffer, buffer.count)
            guard count > 0 else { break }
            bytes += buffer[..<count]
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    @Test("a holding thread's lines wait for flush and leave in order with one write; other threads are not held")
    func holdAndFlush() throws {
        var ends: [Int32] = [0, 0]
        try #require(pipe(&ends) == 0)
        _ = fcntl(ends[0], F_SETFL, O_NONBLOCK)
        defer { close(ends[0]); close(ends[1]) }
        let held = HeldLines(fd: ends[1])

        #expect(!HeldLines.appendIfHolding { $0 += Array("before\n".utf8) })
        #expect(HeldLines.current == nil)
        held.holdOnThisThread()
        #expect(HeldLines.current === held)
        #expect(HeldLines.appendIfHolding { $0 += Array("one\n".utf8) })
        #expect(HeldLines.appendIfHolding { $0 += Array("two\n".utf8) })
        // Another thread holds nothing unless it says so.
        let elsewhere = ConditionLock()
        nonisolated(unsafe) var otherHeld: Bool?
        startThread(name: "other", stackSize: 1 << 20) {
            let result = HeldLines.appendIfHolding { $0 += Array("other\n".utf8) }
            elsewhere.withLock {
                otherHeld = result
                elsewhere.signal()
            }
        }
        elsewhere.withLock { while otherHeld == nil { elsewhere.wait() } }
        #expect(otherHeld == false)
        #expect(Self.drain(ends[0]) == "")

        held.flush()
        #expect(Self.drain(ends[0]) == "one\ntwo\n")
        held.flush()
        #expect(Self.drain(ends[0]) == "")

        HeldLines.stopHoldingOnThisThread()
        #expect(!HeldLines.appendIfHolding { $0 += Array("after\n".utf8) })
        #expect(HeldLines.current == nil)
    }
}
