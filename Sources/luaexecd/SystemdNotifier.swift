import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// systemd's service notification protocol (`sd_notify(3)`): datagrams such as `READY=1` to the
/// socket in `$NOTIFY_SOCKET`. Written here rather than linking libsystemd: the protocol is one
/// `sendto`, and an appliance image may not carry libsystemd.
///
/// Without `$NOTIFY_SOCKET` (not started by systemd, or `Type=simple`), every call does nothing.
struct SystemdNotifier: Sendable {
    private let address: [UInt8]?
    /// Half of `WatchdogSec=`, the interval `sd_watchdog_enabled(3)` recommends; nil when systemd
    /// watches nothing.
    let watchdogInterval: Duration?

    /// Reads the variables and removes them, so that no process a chunk starts takes them for
    /// its own.
    init() {
        let path = getenv("NOTIFY_SOCKET").map { String(cString: $0) }
        let watchdogUSec = getenv("WATCHDOG_USEC").flatMap { Int64(String(cString: $0)) }
        let watchdogPID = getenv("WATCHDOG_PID").flatMap { Int32(String(cString: $0)) }
        unsetenv("NOTIFY_SOCKET")
        unsetenv("WATCHDOG_USEC")
        unsetenv("WATCHDOG_PID")
        if let path, path.hasPrefix("/") || path.hasPrefix("@") {
            var bytes = Array(path.utf8)
            if bytes[0] == UInt8(ascii: "@") { bytes[0] = 0 }  // an abstract socket
            address = bytes
        } else {
            address = nil
        }
        if let watchdogUSec, watchdogUSec > 0, watchdogPID == nil || watchdogPID == getpid() {
            watchdogInterval = .microseconds(watchdogUSec / 2)
        } else {
            watchdogInterval = nil
        }
    }

    /// Sends `state` (`READY=1`, `STOPPING=1`, `WATCHDOG=1`, `STATUS=...`, lines joined by
    /// newlines). Failures are ignored, as `sd_notify` callers do: systemd may be gone.
    func send(_ state: String) {
        guard let address else { return }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return }
        defer { close(fd) }
        var socketAddress = sockaddr_un()
        socketAddress.sun_family = sa_family_t(AF_UNIX)
        let capacity = MemoryLayout.size(ofValue: socketAddress.sun_path)
        guard address.count < capacity else { return }
        withUnsafeMutableBytes(of: &socketAddress.sun_path) { path in
            path.copyBytes(from: address)
        }
        let length = socklen_t(MemoryLayout<sa_family_t>.size + address.count)
        var message = Array(state.utf8)
        _ = withUnsafePointer(to: &socketAddress) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { generic in
                sendto(fd, &message, message.count, Int32(MSG_NOSIGNAL), generic, length)
            }
        }
    }
}
