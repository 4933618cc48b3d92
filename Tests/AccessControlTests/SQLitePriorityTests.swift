#if canImport(Glibc)
import Glibc
#endif
import Foundation
import SystemSupport
import Testing

@testable import AccessControl

/// The audit writer stores its batches at `SCHED_IDLE` (`BackgroundPriority`): a thread that
/// needs the database connection while the writer holds it must not wait for a thread that only
/// gets a CPU no one else wants, so it raises the writer to normal priority until it lets go.
@Suite("Database connection and background priority")
struct SQLitePriorityTests {
    let path = "/tmp/luaexec-priority-\(UUID().uuidString).db"

    /// What the two threads did, guarded by `lock`.
    final class Shared: @unchecked Sendable {
        let lock = ConditionLock()
        var holder: pid_t = 0
        var holding = false
        var release = false
        var heldDone = false
        var waiterDone = false
        var whileHeld: Int32 = -1
        var afterHeld: Int32 = -1
    }

    /// Waits (with a deadline) until `condition` holds; a poll, since what is awaited is the
    /// kernel's scheduling policy of another thread, which signals nothing.
    func eventually(_ condition: () -> Bool) -> Bool {
        let deadline = MonotonicInstant.now().advanced(by: .seconds(20))
        while !condition() {
            if MonotonicInstant.now() >= deadline { return false }
            pauseThread(for: .milliseconds(1))
        }
        return true
    }

    @Test("a thread that finds the connection held by a background thread raises it, and it goes back down once let go")
    func waiterRaisesHolder() throws {
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let database = try SQLiteDatabase(path: path)
        try database.query("CREATE TABLE t (n INTEGER)")
        let shared = Shared()
        startThread(name: "holder", stackSize: 256 << 10) {
            guard let priority = BackgroundPriority.forCallingThread() else {
                shared.lock.withLock {
                    shared.heldDone = true
                    shared.lock.broadcast()
                }
                return
            }
            priority.background {
                _ = try? database.write { db throws(StoreError) in
                    shared.lock.withLock {
                        shared.holder = priority.thread
                        shared.holding = true
                        shared.lock.broadcast()
                    }
                    shared.whileHeld = BackgroundPriority.policy(of: priority.thread)
                    shared.lock.withLock { while !shared.release { shared.lock.wait() } }
                    try db.query("INSERT INTO t (n) VALUES (1)")
                }
                shared.afterHeld = BackgroundPriority.policy(of: priority.thread)
            }
            shared.lock.withLock {
                shared.heldDone = true
                shared.lock.broadcast()
            }
        }
        shared.lock.withLock { while !shared.holding && !shared.heldDone { shared.lock.wait() } }
        #expect(shared.holding, "the holder thread could not be given background priority")
        let holder = shared.lock.withLock { shared.holder }
        #expect(BackgroundPriority.policy(of: holder) == BackgroundPriority.schedIdle)

        startThread(name: "waiter", stackSize: 256 << 10) {
            _ = try? database.query("INSERT INTO t (n) VALUES (2)")
            shared.lock.withLock {
                shared.waiterDone = true
                shared.lock.broadcast()
            }
        }
        // The waiter, blocked on the connection, has raised the holder.
        #expect(eventually { BackgroundPriority.policy(of: holder) == SCHED_OTHER })
        #expect(!shared.lock.withLock { shared.waiterDone })

        shared.lock.withLock {
            shared.release = true
            shared.lock.broadcast()
        }
        shared.lock.withLock { while !shared.heldDone || !shared.waiterDone { shared.lock.wait() } }
        #expect(shared.whileHeld == BackgroundPriority.schedIdle)
        // Let go of the connection, still in its background work: back at SCHED_IDLE.
        #expect(shared.afterHeld == BackgroundPriority.schedIdle)
        #expect(try database.query("SELECT n FROM t ORDER BY n") == [[.integer(1)], [.integer(2)]])
    }
}
