import FastCGI

#if canImport(Glibc)
import Glibc
#endif

/// Signal handling by `sigwait` on the main thread.
///
/// The signals are blocked in every thread (threads inherit the mask) and taken with `sigwait`,
/// so that no handler interrupts a thread in the middle of Lua or of the event loop, and the
/// main thread can act on them with ordinary code: a reload, a graceful stop.
enum Signals {
    static let handled = [SIGTERM, SIGINT, SIGHUP]

    static func blockForSigwait() {
        signal(SIGPIPE, SIG_IGN)
        var set = sigset()
        pthread_sigmask(SIG_BLOCK, &set, nil)
    }

    static func wait() -> Int32 {
        var set = sigset()
        var received: Int32 = 0
        sigwait(&set, &received)
        return received
    }

    private static func sigset() -> sigset_t {
        var set = sigset_t()
        sigemptyset(&set)
        for signal in handled { sigaddset(&set, signal) }
        return set
    }

    /// The listening socket systemd passed by the `sd_listen_fds` protocol (`LISTEN_PID` is this
    /// process, `LISTEN_FDS` ≥ 1: the socket is fd 3), or nil when it passed none. The variables
    /// are removed so that no child process takes them for its own.
    static func takeSocketFromSystemd() -> Int32? {
        guard let pid = getenv("LISTEN_PID").flatMap({ Int32(String(cString: $0)) }), pid == getpid(),
            let count = getenv("LISTEN_FDS").flatMap({ Int(String(cString: $0)) }), count >= 1
        else { return nil }
        unsetenv("LISTEN_PID")
        unsetenv("LISTEN_FDS")
        unsetenv("LISTEN_FDNAMES")
        return 3  // SD_LISTEN_FDS_START
    }

    /// The listening socket a supervisor passed on fd 0, moved to another descriptor so that fd 0
    /// can become /dev/null: a chunk reading standard input must get EOF at once, and closing
    /// `io.stdin` must not close the listening socket.
    static func takeListeningSocketFromStandardInput() throws(TransportError) -> Int32 {
        var type: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        guard getsockopt(0, SOL_SOCKET, SO_TYPE, &type, &length) == 0 else {
            throw TransportError("no listen.socket set and standard input is not a socket: set listen.socket in the config (or --set listen.socket=PATH), or start luaexecd from its socket unit")
        }
        let fd = dup(0)
        guard fd >= 0 else { throw TransportError("cannot duplicate the listening socket") }
        let null = open("/dev/null", O_RDONLY)
        if null >= 0 {
            dup2(null, 0)
            close(null)
        }
        return fd
    }
}
