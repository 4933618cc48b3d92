import Dispatch
import SystemSupport

/// Plain threads for tests that need real concurrency against the blocking executor.
final class ThreadGroup: Sendable {
    private let group = DispatchGroup()

    func spawn(_ body: @escaping @Sendable () -> Void) {
        group.enter()
        startThread(name: "test", stackSize: 16 << 20) { [group] in
            body()
            group.leave()
        }
    }

    func wait() { group.wait() }
}

enum Thread {
    static func detach(_ body: @escaping @Sendable () -> Void) {
        startThread(name: "test", stackSize: 16 << 20, body)
    }

    /// Runs `body` on a thread with a 16 MiB stack, as luaexecd's threads have, and returns its
    /// result: the executor runs Lua on its caller's thread.
    static func onLargeStack<T: Sendable>(_ body: @escaping @Sendable () -> T) -> T {
        let box = ResultBox<T>()
        runOnNewThread(stackSize: 16 << 20) { box.value = body() }
        return box.value!
    }
}

/// Written by one thread before it finishes, read once it has (ThreadGroup's `wait()`,
/// `runOnNewThread`'s return).
final class ResultBox<T>: @unchecked Sendable {
    var value: T?
}
