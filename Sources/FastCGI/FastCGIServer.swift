import CFastCGI
import ExecService
import Logging
import Synchronization
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// Serves FastCGI with libfcgi: a fixed pool of threads, each accepting on the shared listening
/// socket and serving one connection at a time.
///
/// libfcgi serves one connection per thread, and nginx with `fastcgi_keep_conn on` keeps each
/// upstream connection open between requests, pinning a thread. The pool is therefore sized
/// above nginx's upstream `keepalive` (the shipped site keeps 32; the default pool is 64), so a
/// request never waits for a thread. Evaluations still run one at a time, queued in the
/// LuaExecutor, which runs them on whichever of these threads is combining.
public final class FastCGIServer: Sendable {
    public struct Options: Sendable {
        public var threads: Int
        public var threadStackSize: Int

        /// Each thread may run Lua (as the LuaExecutor's combiner), so it gets the large stack
        /// Lua's C-stack checks assume; the memory is reserved, and only touched pages are used.
        public init(threads: Int = 64, threadStackSize: Int = 16 << 20) {
            self.threads = threads
            self.threadStackSize = threadStackSize
        }
    }

    let listenFD: Int32
    let service: ExecService
    let options: Options
    let logger: Logger
    /// Requests accepted and not yet finished.
    private let inFlight = Atomic(0)

    public init(listenFD: Int32, service: ExecService, options: Options = Options(), logger: Logger) {
        self.listenFD = listenFD
        self.service = service
        self.options = options
        self.logger = logger
    }

    /// Opens a unix socket at `path` (replacing a stale one) with the given permissions.
    public static func listen(path: String, mode: mode_t = 0o660, backlog: Int32 = 1024) throws(TransportError) -> Int32 {
        if unlink(path) != 0 && errno != ENOENT {
            throw TransportError("cannot remove the old socket \(path): \(String(cString: strerror(errno)))")
        }
        let fd = FCGX_OpenSocket(path, backlog)
        guard fd >= 0 else { throw TransportError("cannot listen on \(path): \(String(cString: strerror(errno)))") }
        guard chmod(path, mode) == 0 else {
            throw TransportError("cannot set the mode of \(path): \(String(cString: strerror(errno)))")
        }
        return fd
    }

    /// Starts the pool; returns at once.
    public func start() throws(TransportError) {
        guard FCGX_Init() == 0 else { throw TransportError("libfcgi failed to initialise") }
        for index in 0..<options.threads {
            startThread(name: "fcgi-\(index)", stackSize: options.threadStackSize) { [self] in serve() }
        }
    }

    /// Waits until no accepted request is unanswered, or `limit` has passed: at shutdown, so
    /// that the answers to the requests that ran are written before the process exits.
    public func waitUntilIdle(atMost limit: Duration) {
        let deadline = MonotonicInstant.now().advanced(by: limit)
        // A short poll: shutdown happens once, and a condition variable would cost every request.
        while inFlight.load(ordering: .relaxed) > 0 && MonotonicInstant.now() < deadline {
            pauseThread(for: .milliseconds(5))
        }
    }

    private func serve() {
        let request = UnsafeMutablePointer<FCGX_Request>.allocate(capacity: 1)
        defer { request.deallocate() }
        guard FCGX_InitRequest(request, listenFD, 0) == 0 else {
            logger.critical("FCGX_InitRequest failed")
            return
        }
        while FCGX_Accept_r(request) >= 0 {
            // libfcgi accepts without SOCK_CLOEXEC: a process a chunk starts (os.execute,
            // io.popen) would inherit every open connection. Per request, not per connection:
            // a new connection may get the number of the one closed before it (one system
            // call, a fraction of a microsecond).
            _ = fcntl(request.pointee.ipcFd, F_SETFD, FD_CLOEXEC)
            inFlight.add(1, ordering: .relaxed)
            defer { inFlight.subtract(1, ordering: .relaxed) }
            let connection = FastCGIRequest(request)
            let response = service.respond(to: connection.head()) { limit in connection.readBody(limit: limit) }
            connection.write(response)
            connection.discardUnreadBody(upTo: 1 << 20)
            FCGX_Finish_r(request)
        }
        // Accept fails when the listening socket is shut down (SIGTERM) or broken.
        logger.debug("FastCGI thread leaves its accept loop")
    }
}

/// A transport failure, with a message a person can act on.
public struct TransportError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
