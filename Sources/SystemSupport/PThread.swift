#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Starts a detached POSIX thread named `name` running `body`.
///
/// The name (its first 15 bytes, the kernel's limit) is what `top -H`, `ps -L` and
/// `/proc/PID/task/TID/comm` show, so that an administrator (or a benchmark) can tell the
/// request threads from the audit writer.
///
/// Used where the thread's stack size matters: the Lua state runs on a thread with a large
/// stack because Lua's C-stack checks (LUAI_MAXCCALLS) assume the usual 8 MiB main stack.
public func startThread(name: String, stackSize: Int, _ body: @escaping @Sendable () -> Void) {
    final class Box {
        let name: String
        let body: @Sendable () -> Void
        init(name: String, body: @escaping @Sendable () -> Void) {
            self.name = name
            self.body = body
        }
    }
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    pthread_attr_setstacksize(&attributes, stackSize)
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    let context = Unmanaged.passRetained(Box(name: name, body: body)).toOpaque()
    var thread = pthread_t()
    let rc = pthread_create(
        &thread, &attributes,
        { raw in
            let box = Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue()
            nameThisThread(box.name)
            box.body()
            return nil
        }, context)
    precondition(rc == 0, "pthread_create failed for \(name): error \(rc)")
}

/// Names the calling thread (Linux: its `comm`, the first 15 bytes). Through /proc because
/// Glibc's module hides `pthread_setname_np` (`_GNU_SOURCE`) and Swift cannot call `prctl`
/// (variadic); a name is a convenience, so a failure is ignored.
private func nameThisThread(_ name: String) {
    #if os(Linux)
    let fd = open("/proc/thread-self/comm", O_WRONLY | O_CLOEXEC)
    guard fd >= 0 else { return }
    let bytes = Array(name.utf8.prefix(15))
    _ = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
    close(fd)
    #endif
}

/// Blocks the calling thread for `duration` (a background loop's interval; never a way to wait
/// for another thread).
public func pauseThread(for duration: Duration) {
    let (seconds, attoseconds) = duration.components
    var request = timespec(tv_sec: Int(seconds), tv_nsec: Int(attoseconds / 1_000_000_000))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}

/// Runs `body` on a new thread with the given stack size and returns when it has finished: for
/// work that may end up running Lua (which assumes a large C stack) from a thread whose stack
/// is not known to be large, such as the main thread.
public func runOnNewThread(stackSize: Int, _ body: @escaping @Sendable () -> Void) {
    final class Done: @unchecked Sendable {  // `flag` is guarded by `lock`
        let lock = ConditionLock()
        var flag = false
    }
    let done = Done()
    startThread(name: "worker", stackSize: stackSize) {
        body()
        done.lock.withLock {
            done.flag = true
            done.lock.signal()
        }
    }
    done.lock.withLock {
        while !done.flag { done.lock.wait() }
    }
}
