import Dispatch
import SystemSupport

/// Plain threads for tests that need real concurrency against the blocking executor.
final class ThreadGroup: Sendable {
    private let group = DispatchGroup()

    func spawn(_ body: @escaping @Sendable () -> Void) {
        group.enter()
        startThread(name: "test", stackSize: 1 << 20) { [group] in
            body()
            group.leave()
        }
    }

    func wait() { group.wait() }
}

enum Thread {
    static func detach(_ body: @escaping @Sendable () -> Void) {
        startThread(name: "test", stackSize: 1 << 20, body)
    }
}
