import Synchronization

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Log lines held back while a thread answers a batch of requests, and written to standard
/// error with one `write(2)` just before the batch's answers are sent.
///
/// Every request logs its audit line (SPEC O2), and a `write(2)` per line was a tenth of
/// luaexecd's CPU under load, while the event loop answers five or six requests per wake-up
/// (bench/NOTES.md). The transport marks its threads as holding (`holdOnThisThread`), and a log
/// handler offers each line to `appendIfHolding` before writing it itself. The transport calls
/// `flush` before it sends answers, so a request's line is always written before its answer
/// leaves: a client that reads the log after its answer finds the line there.
public final class HeldLines: Sendable {
    private let buffer = Mutex<[UInt8]>([])
    private let fd: Int32

    /// Lines go to `fd`, standard error unless a test says otherwise.
    public init(fd: Int32 = 2) {
        self.fd = fd
    }

    /// From now on, lines this thread offers are held here, until `stopHoldingOnThisThread`.
    public func holdOnThisThread() {
        pthread_setspecific(Self.key, Unmanaged.passUnretained(self).toOpaque())
    }

    /// Lines this thread offers are written at once again; what is held stays until `flush`.
    public static func stopHoldingOnThisThread() {
        pthread_setspecific(key, nil)
    }

    /// Holds the line `write` appends, written where it is held (no array of its own), if the
    /// calling thread holds lines; false when it does not, and the caller writes it. `write` runs
    /// under the holder's lock: it only formats. The holder must outlive the threads that hold
    /// in it (the transport's does).
    public static func appendIfHolding(writing write: (inout [UInt8]) -> Void) -> Bool {
        guard let holder = current else { return false }
        holder.buffer.withLock { write(&$0) }
        return true
    }

    /// The holder of the calling thread, if it holds: a line that must not wait flushes it
    /// first, so that lines stay in the order they were logged.
    public static var current: HeldLines? {
        pthread_getspecific(key).map { Unmanaged<HeldLines>.fromOpaque($0).takeUnretainedValue() }
    }

    /// Writes what is held, with one `write(2)` unless the descriptor takes it in parts.
    public func flush() {
        buffer.withLock { held in
            guard !held.isEmpty else { return }
            writeAll(fd, held)
            held.removeAll(keepingCapacity: held.capacity <= 1 << 16)
        }
    }

    private static let key: pthread_key_t = {
        var key = pthread_key_t()
        precondition(pthread_key_create(&key, nil) == 0, "pthread_key_create failed")
        return key
    }()
}

/// Writes all of `bytes` to `fd`, retrying short and interrupted writes; gives up silently when
/// the descriptor is gone (standard error closed: there is nowhere to say so).
public func writeAll(_ fd: Int32, _ bytes: [UInt8]) {
    bytes.withUnsafeBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let written = write(fd, buffer.baseAddress! + offset, buffer.count - offset)
            if written < 0, errno == EINTR { continue }
            guard written > 0 else { return }
            offset += written
        }
    }
}
