#if canImport(Glibc)
import Glibc
#endif
import SystemSupport
import Testing

/// A thread's background priority (the audit writer's): `SCHED_IDLE` inside `background` while
/// no reason holds, normal priority otherwise, as the kernel reports it.
@Suite("Background priority")
struct BackgroundPriorityTests {
    /// What a thread saw of its own policy at each step (written by it, read after it ended).
    final class Seen: @unchecked Sendable {
        var made = false
        var before: Int32 = -1, inside: Int32 = -1, raised: Int32 = -1, dropped: Int32 = -1
        var otherStillRaises: Int32 = -1, after: Int32 = -1
        var found = false
    }

    @Test("lowered only inside background; a reason raised from another thread lifts it, the last dropped lowers it again")
    func lowersAndRaises() {
        let seen = Seen()
        runOnNewThread(stackSize: 256 << 10) {
            guard let priority = BackgroundPriority.forCallingThread() else { return }
            seen.made = true
            seen.found = BackgroundPriority.ofCallingThread === priority
            let thread = priority.thread
            seen.before = BackgroundPriority.policy(of: thread)
            priority.background {
                seen.inside = BackgroundPriority.policy(of: thread)
                runOnNewThread(stackSize: 64 << 10) {
                    priority.raise(for: .holding)
                    priority.raise(for: .behind)
                }
                seen.raised = BackgroundPriority.policy(of: thread)
                runOnNewThread(stackSize: 64 << 10) { priority.drop(.holding) }
                seen.otherStillRaises = BackgroundPriority.policy(of: thread)
                runOnNewThread(stackSize: 64 << 10) { priority.drop(.behind) }
                seen.dropped = BackgroundPriority.policy(of: thread)
            }
            seen.after = BackgroundPriority.policy(of: thread)
        }
        // The test runs as root (make test, CI): a thread may return from SCHED_IDLE.
        #expect(BackgroundPriority.mayReturnFromIdle)
        #expect(seen.made)
        #expect(seen.found)
        #expect(seen.before == SCHED_OTHER)
        #expect(seen.inside == BackgroundPriority.schedIdle)
        #expect(seen.raised == SCHED_OTHER)
        #expect(seen.otherStillRaises == SCHED_OTHER)
        #expect(seen.dropped == BackgroundPriority.schedIdle)
        #expect(seen.after == SCHED_OTHER)
        // Only the thread that made it has a handle.
        #expect(BackgroundPriority.ofCallingThread == nil)
    }

    @Test("a reason raised before background keeps the thread at normal priority inside it")
    func reasonBeforeBackground() {
        let seen = Seen()
        runOnNewThread(stackSize: 256 << 10) {
            guard let priority = BackgroundPriority.forCallingThread() else { return }
            seen.made = true
            priority.raise(for: .behind)
            priority.background { seen.inside = BackgroundPriority.policy(of: priority.thread) }
            priority.drop(.behind)
            seen.after = BackgroundPriority.policy(of: priority.thread)
        }
        #expect(seen.made)
        #expect(seen.inside == SCHED_OTHER)
        #expect(seen.after == SCHED_OTHER)
    }
}
