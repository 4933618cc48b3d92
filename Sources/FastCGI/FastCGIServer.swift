import CFastCGI
import HTTPCore
import Logging
import Synchronization
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// Serves FastCGI from one epoll loop that owns every connection, and answers inline.
///
/// One thread at a time is the *poller*: it waits in `epoll_wait`, reads, parses records
/// (`FastCGIParser`), hands each complete request to the responder in arrival order, then lends
/// the responder its thread for the work it deferred (`Responder.runDeferred`), before it polls
/// again: no thread hand-off and no wake-up per request, which is what held the libfcgi
/// transport to half the event-loop floor (docs/architecture.md). The server knows nothing of
/// what answering takes: whether a request waits for something (the Lua state, in luaexecd) is
/// the responder's business, and its answer may come later from another thread (`Work.send`).
///
/// Deferred work can run long and would stop the loop, so the other threads of the small pool
/// stand by: one of them looks every 10 ms, and once the poller has served for longer than that,
/// it takes the poller role and goes on accepting, reading and handing over requests (the admin
/// status and interrupt are answered at once). Every thread may run the responder's work, so
/// each has a 16 MiB stack.
///
/// `@unchecked Sendable`: every mutable property, and every `Connection` and `Work`, is guarded
/// by `lock`; the responder is Sendable and called without it.
public final class FastCGIServer: @unchecked Sendable {
    public struct Options: Sendable {
        /// Threads in the pool: one polls, one may be in a long chunk, one stands by.
        public var threads: Int
        public var threadStackSize: Int
        /// Most open connections; past it the oldest idle kept connection is closed.
        public var maxConnections: Int
        /// A peer that stops in the middle of a record or a request for this long is closed.
        public var readTimeout: Duration
        /// Most bytes of one request's CGI params.
        public var paramsLimit: Int

        /// Each thread may run Lua, so it gets the large stack Lua's C-stack checks assume; the
        /// memory is reserved, and only touched pages are used.
        public init(
            threads: Int = 3, threadStackSize: Int = 16 << 20, maxConnections: Int = 1024,
            readTimeout: Duration = .seconds(30), paramsLimit: Int = 64 << 10
        ) {
            self.threads = threads
            self.threadStackSize = threadStackSize
            self.maxConnections = maxConnections
            self.readTimeout = readTimeout
            self.paramsLimit = paramsLimit
        }
    }

    /// One accepted connection. Guarded by the server's lock.
    final class Connection {
        /// Where the connection is in its life; each later case wins over the earlier ones.
        enum Lifecycle: Comparable {
            /// Requests are read and answered.
            case open
            /// The peer closed its side: nothing more is read, and the connection closes once
            /// what it asked is answered (a client that half-closes waits for it).
            case inputEnded
            /// Closes once the output is written (a refusal, or a request without keep-alive).
            case closeAfterWrite
            /// The peer is gone or broke the protocol: no longer polled. The descriptor is closed
            /// once no request of it is being served, so its number cannot be reused under one.
            case dead
        }

        let fd: Int32
        var parser: FastCGIParser
        var output: [UInt8] = []
        var written = 0
        /// The epoll events watched now.
        var events: UInt32 = 0
        var lifecycle = Lifecycle.open
        /// A request of it is with the responder.
        var busy = false
        /// Its output holds an answer whose audit line may still be held (`HeldLines`): it is
        /// sent by `release`, after the lines.
        var held = false
        var midRequestSince: MonotonicInstant?
        var lastActive: MonotonicInstant
        /// The request of it that is with the responder (`busy`), to tell the responder when the
        /// peer goes while it is served. Strong, and cleared when the request is answered
        /// (`complete`) or its peer goes: a `weak` one gave every request's `Work` a side table,
        /// an allocation and a slow release per request (bench/NOTES.md).
        var serving: Work?
        /// A streamed answer of it has started and what it wrote is not all sent yet: its unsent
        /// bytes count toward `streamBacklogLimit` (`streamBacklog`, as last counted).
        var streaming = false
        var streamBacklog = 0
        /// Since when its stream has had bytes unsent without a break (nil: all sent): a reader
        /// that keeps up empties it now and then, a slow one never does.
        var backlogSince: MonotonicInstant?

        init(fd: Int32, limits: FastCGIParser.Limits, now: MonotonicInstant) {
            self.fd = fd
            parser = FastCGIParser(limits: limits)
            lastActive = now
        }

        var dead: Bool { lifecycle == .dead }

        /// Moves on in its life, never back.
        func advance(to next: Lifecycle) {
            lifecycle = max(lifecycle, next)
        }
    }

    /// A complete request, and the writer of its answer (`ResponseWriter`), which the responder
    /// may call from any thread. A class: it moves between lists, and copying a struct of it
    /// retained every buffer and string it holds each time.
    final class Work: ResponseWriter, @unchecked Sendable {
        unowned let server: FastCGIServer
        let connection: Connection
        let request: FastCGIParser.Request
        let head: RequestHead
        /// A streamed answer has started (`startStream`). Guarded by the server's lock.
        var streaming = false

        init(server: FastCGIServer, connection: Connection, request: FastCGIParser.Request, head: RequestHead) {
            self.server = server
            self.connection = connection
            self.request = request
            self.head = head
        }

        func send(_ response: Response) {
            server.complete(self) { out in FastCGIEncoder.response(response, id: request.id, into: &out) }
        }

        func startStream(_ head: Response) {
            _ = server.stream(self) { out in
                streaming = true
                connection.streaming = true
                FastCGIEncoder.streamHead(head, id: request.id, into: &out)
            }
        }

        @discardableResult
        func write(_ bytes: [UInt8]) -> Bool {
            server.stream(self) { out in FastCGIEncoder.stdout(bytes, id: request.id, into: &out) }
        }

        func finish() {
            server.complete(self) { out in FastCGIEncoder.endStream(id: request.id, into: &out) }
        }
    }

    let listenFD: Int32
    let responder: any Responder
    let options: Options
    let logger: Logger
    private let epollFD: Int32
    private let lock = ConditionLock()
    /// The audit lines of the answers being gathered; see `release`.
    private let heldLines = HeldLines()
    // Guarded by `lock`:
    private var connections: [Int32: Connection] = [:]
    private var listening = true
    /// Which poller holds the role; bumped when a stand-by thread takes it over.
    private var pollerEpoch = 0
    /// Since when the poller has been answering requests instead of polling.
    private var pollerBusySince: MonotonicInstant?
    /// A stand-by thread is looking at the clock (the others wait without a timeout).
    private var watcherPresent = false
    /// Requests read after an answer let their connection go on (`complete`), for the poller
    /// to hand to the responder.
    private var pending: [Work] = []
    /// Requests whose peer went while they were served, for the poller to tell the responder.
    private var gone: [Work] = []
    /// The thread in a round of serving as the poller (`serve`), and the poller epoch it serves
    /// in: an answer it sends waits for the round's `release`; any other thread's leaves at once.
    private var roundThread: pthread_t?
    private var roundEpoch = 0
    /// The next batch of requests to be read gets this number (`pollOnce`, `serve`), in the
    /// critical section that reads it: batches are handed to the responder in this order, one
    /// at a time (`turn`), whichever thread holds each, so that arrival order survives a
    /// poller relieved mid-batch (SPEC E8).
    private var nextTicket = 0
    /// Whose batch is handed over now; guarded by `turnstile`.
    private var turn = 0
    private let turnstile = ConditionLock()
    /// Connections with an answer held until `release`, and how many answers they hold.
    private var unsent: [Connection] = []
    private var unsentAnswers = 0
    /// An answer of more than `largeAnswer` bytes was written out and its buffer let go, since
    /// the poller last handed memory back. glibc serves a large block from a free region of its
    /// heap when it has one (after a chunk's many small objects were freed, say), and freed
    /// heap pages stay resident: 46 MiB after a 15 MiB answer, for good. So the poller calls
    /// `malloc_trim` after such a round, when the answer's other copies are gone too.
    private var releasedLargeAnswer = false
    private static let largeAnswer = 1 << 20
    private var nextSweep = MonotonicInstant.now()
    /// Requests accepted and not yet answered.
    private let inFlight = Atomic(0)
    /// Where reads land before the parser takes them; guarded by `lock` (only the poller
    /// reads). One for the server's life: a temporary buffer that large comes from malloc at
    /// every read.
    private let readBuffer = UnsafeMutableRawBufferPointer.allocate(byteCount: 65536, alignment: 16)

    /// How long the poller may answer requests before a stand-by thread takes its role.
    static let relieveAfter = Duration.milliseconds(10)

    /// Wakes the poller from `epoll_wait` when another thread leaves it requests (`pending`).
    private let wakeFD: Int32

    public init(listenFD: Int32, responder: any Responder, options: Options = Options(), logger: Logger) throws(TransportError) {
        self.listenFD = listenFD
        self.responder = responder
        self.options = options
        self.logger = logger
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epollFD >= 0 else { throw TransportError("epoll_create1 failed: \(systemErrorText())") }
        wakeFD = eventfd(0, Int32(EFD_CLOEXEC | EFD_NONBLOCK))
        guard wakeFD >= 0 else { throw TransportError("eventfd failed: \(systemErrorText())") }
    }

    deinit {
        readBuffer.deallocate()
    }

    /// Opens a unix socket at `path` (replacing a stale one) with the given permissions.
    public static func listen(path: String, mode: mode_t = 0o660, backlog: Int32 = 1024) throws(TransportError) -> Int32 {
        if unlink(path) != 0 && errno != ENOENT {
            throw TransportError("cannot remove the old socket \(path): \(systemErrorText())")
        }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let pathBytes = Array(path.utf8)
        guard pathBytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw TransportError("the socket path \(path) is longer than a unix socket allows")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
            raw[pathBytes.count] = 0
        }
        let fd = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { throw TransportError("cannot make a socket: \(systemErrorText())") }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, backlog) == 0 else {
            let reason = systemErrorText()
            close(fd)
            throw TransportError("cannot listen on \(path): \(reason)")
        }
        guard chmod(path, mode) == 0 else {
            throw TransportError("cannot set the mode of \(path): \(systemErrorText())")
        }
        return fd
    }

    /// Starts the pool; returns at once.
    public func start() throws(TransportError) {
        let flags = fcntl(listenFD, F_GETFL)
        guard flags >= 0, fcntl(listenFD, F_SETFL, flags | O_NONBLOCK) == 0 else {
            throw TransportError("cannot make the listening socket non-blocking: \(systemErrorText())")
        }
        // The responder wakes the poller when it has work due sooner than the poller waits.
        let wakeFD = self.wakeFD
        responder.setWake { _ = eventfd_write(wakeFD, 1) }
        for fd in [listenFD, wakeFD] {
            var event = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(fd: fd))
            guard epoll_ctl(epollFD, EPOLL_CTL_ADD, fd, &event) == 0 else {
                throw TransportError("cannot watch the listening socket: \(systemErrorText())")
            }
        }
        lock.withLock { pollerEpoch = 1 }
        // The first thread starts as the poller; the others stand by.
        for index in 0..<max(2, options.threads) {
            startThread(name: "fcgi-\(index)", stackSize: options.threadStackSize) { [self] in
                run(poller: index == 0)
            }
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
        // Lines a pool thread logged after the last round (the listening socket closing) are
        // written before the process ends.
        lock.withLock { release() }
    }

    // MARK: Poller and stand-by

    private func run(poller startsAsPoller: Bool) {
        var isPoller = startsAsPoller
        var events = [epoll_event](repeating: epoll_event(), count: 64)
        var ready: [Work] = []
        heldLines.holdOnThisThread()
        while true {
            if !isPoller { standBy() }
            let epoch = lock.withLock { pollerEpoch }
            // Poll until a stand-by thread takes over while this one answers a long request.
            while true {
                let ticket = pollOnce(&events, into: &ready)
                if !ready.isEmpty {
                    serve(ready, ticket: ticket, epoch: epoch)
                    ready.removeAll(keepingCapacity: true)
                }
                // After the requests of the same poll are handed over: a request and its peer's
                // close read together find the request queued (it leaves the queue) instead of
                // not yet submitted (it would run, the close gone unheard).
                let left = lock.withLock { () -> [Work] in
                    defer { gone.removeAll() }
                    return gone
                }
                for work in left { responder.peerGone(work) }
                // What the responder has due (sleepers whose time is up, timers) runs on the
                // poller, as the requests do: the stand-by thread relieves it if that takes long.
                if let due = responder.nextDue(), due <= MonotonicInstant.now() {
                    lock.withLock { pollerBusySince = MonotonicInstant.now() }
                    responder.runDue()
                }
                let (stillPoller, handBack) = lock.withLock {
                    // The answers of this round go out, after their audit lines.
                    release()
                    defer { releasedLargeAnswer = false }
                    guard pollerEpoch == epoch else { return (false, releasedLargeAnswer) }
                    pollerBusySince = nil
                    return (true, releasedLargeAnswer)
                }
                if handBack { malloc_trim(0) }
                if !stillPoller { break }
            }
            isPoller = false
        }
    }

    /// Waits until this thread takes the poller role: the first stand-by thread looks every
    /// 10 ms whether the poller has been answering for too long; the others wait until then.
    private func standBy() {
        lock.withLock {
            while true {
                if watcherPresent {
                    lock.wait()
                    continue
                }
                watcherPresent = true
                _ = lock.wait(until: MonotonicInstant.now().advanced(by: Self.relieveAfter))
                watcherPresent = false
                if let since = pollerBusySince, MonotonicInstant.now().duration(since: since) >= Self.relieveAfter {
                    pollerEpoch += 1
                    pollerBusySince = nil
                    // What the busy poller answered before its long request must not wait for it.
                    release()
                    // Another stand-by thread becomes the watcher.
                    lock.signal()
                    return
                }
            }
        }
    }

    /// One `epoll_wait` and what it reports: new connections, input (parsed into `ready`),
    /// writable output, requests other threads left (`pending`); then stalled peers.
    private func pollOnce(_ events: inout [epoll_event], into ready: inout [Work]) -> Int {
        var timeout: Int32 = lock.withLock { pending.isEmpty ? 1000 : 0 }
        // No longer than until the responder's own work is due (a sleeping request, a timer).
        if timeout > 0, let due = responder.nextDue() {
            let now = MonotonicInstant.now()
            timeout = due <= now ? 0 : Int32(min(1000, (due.nanoseconds - now.nanoseconds + 999_999) / 1_000_000))
        }
        let count = events.withUnsafeMutableBufferPointer {
            epoll_wait(epollFD, $0.baseAddress, Int32($0.count), timeout)
        }
        return lock.withLock {
            let now = MonotonicInstant.now()
            for index in 0..<max(0, Int(count)) {
                let event = events[index]
                let fd = event.data.fd
                if fd == listenFD {
                    acceptConnections(now: now)
                    continue
                }
                if fd == wakeFD {
                    var value: eventfd_t = 0
                    _ = eventfd_read(wakeFD, &value)
                    continue
                }
                guard let connection = connections[fd] else { continue }
                if event.events & EPOLLOUT.rawValue != 0 { flush(connection) }
                if event.events & (EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 {
                    read(connection, now: now, into: &ready)
                }
                // Gone both ways (closed, not half-closed) while a request of it is served: the
                // responder may stop working for it (a chunk asleep in `sleep`).
                if event.events & (EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0, connection.busy,
                    let work = connection.serving
                {
                    connection.serving = nil
                    gone.append(work)
                }
            }
            if !pending.isEmpty {
                ready += pending
                pending.removeAll(keepingCapacity: true)
            }
            if now >= nextSweep {
                closeStalled(now: now)
                nextSweep = now.advanced(by: .milliseconds(250))
            }
            guard !ready.isEmpty else { return -1 }
            pollerBusySince = now
            defer { nextTicket += 1 }
            return nextTicket
        }
    }

    /// Hands each request of the batch numbered `ticket` to the responder in arrival order, once
    /// every earlier batch has been handed over, then runs what the responder gave back and
    /// what it deferred; then the requests their answers let in (`pending`), as a batch of
    /// their own, while this thread is still the poller. A relieved poller leaves those to the
    /// new one.
    private func serve(_ works: [Work], ticket first: Int, epoch: Int) {
        lock.withLock {
            roundThread = pthread_self()
            roundEpoch = epoch
        }
        var batch = works
        var ticket = first
        var later: [Responder.Work] = []
        while !batch.isEmpty {
            turnstile.withLock {
                while turn != ticket { turnstile.wait() }
            }
            for work in batch {
                if let rest = responder.respond(to: work.head, body: work.request.body, writer: work) {
                    later.append(rest)
                }
            }
            turnstile.withLock {
                turn += 1
                turnstile.broadcast()
            }
            if !later.isEmpty {
                for rest in later { rest() }
                later.removeAll(keepingCapacity: true)
            }
            responder.runDeferred()
            (batch, ticket) = lock.withLock {
                guard pollerEpoch == epoch, !pending.isEmpty else { return ([], 0) }
                defer {
                    pending.removeAll(keepingCapacity: true)
                    nextTicket += 1
                }
                return (pending, nextTicket)
            }
        }
        lock.withLock {
            // A thread relieved meanwhile leaves the new poller's round alone.
            if roundEpoch == epoch { roundThread = nil }
        }
    }

    // MARK: Connections

    private func acceptConnections(now: MonotonicInstant) {
        while listening {
            let fd = cfcgi_accept(listenFD)
            if fd < 0 {
                switch errno {
                case EAGAIN, EWOULDBLOCK: return
                case EINTR, ECONNABORTED: continue
                case EMFILE, ENFILE:
                    // Out of descriptors: make room by closing the oldest idle connection.
                    guard closeOldestIdle() else {
                        logger.error("cannot accept a connection: out of file descriptors")
                        return
                    }
                    continue
                default:
                    // The socket was shut down (SIGTERM) or broke: stop accepting.
                    logger.debug("the listening socket stops accepting", metadata: ["errno": "\(errno)"])
                    listening = false
                    var unused = epoll_event()
                    if epoll_ctl(epollFD, EPOLL_CTL_DEL, listenFD, &unused) != 0 {
                        logger.debug("cannot stop watching the listening socket", metadata: ["error": "\(systemErrorText())"])
                    }
                    return
                }
            }
            if connections.count >= options.maxConnections, !closeOldestIdle() {
                logger.warning("connection refused: \(options.maxConnections) connections are open and none is idle")
                close(fd)
                continue
            }
            let limits = FastCGIParser.Limits(
                paramsBytes: options.paramsLimit, bodyBytes: responder.maxBodySize,
                connections: options.maxConnections)
            let connection = Connection(fd: fd, limits: limits, now: now)
            connections[fd] = connection
            watch(connection, EPOLLIN.rawValue)
        }
    }

    /// Closes the kept connection that has been idle longest, to make room for a new one.
    private func closeOldestIdle() -> Bool {
        let oldest = connections.values
            .filter { !$0.busy && !$0.dead && !$0.parser.isMidRequest && $0.output.count == $0.written }
            .min { $0.lastActive < $1.lastActive }
        guard let oldest else { return false }
        logger.debug("closing the oldest idle connection to make room", metadata: ["fd": "\(oldest.fd)"])
        drop(oldest)
        return true
    }

    private func watch(_ connection: Connection, _ events: UInt32) {
        guard !connection.dead, connection.events != events else { return }
        guard events != 0 else { return unwatch(connection) }
        var event = epoll_event(events: events, data: epoll_data_t(fd: connection.fd))
        let operation = connection.events == 0 ? EPOLL_CTL_ADD : EPOLL_CTL_MOD
        guard epoll_ctl(epollFD, operation, connection.fd, &event) == 0 else {
            // Out of kernel memory or of epoll watches (fs.epoll.max_user_watches): a connection
            // that is not polled would hang its peer, so it is closed; the others go on.
            logger.error("closing a FastCGI connection that cannot be polled", metadata: ["error": "\(systemErrorText())"])
            connection.events = 0
            drop(connection)
            return
        }
        connection.events = events
    }

    private func unwatch(_ connection: Connection) {
        guard !connection.dead, connection.events != 0 else { return }
        var unused = epoll_event()
        if epoll_ctl(epollFD, EPOLL_CTL_DEL, connection.fd, &unused) != 0 {
            // Only if the descriptor is no longer watched or open: nothing to undo.
            logger.debug("epoll_ctl DEL failed", metadata: ["fd": "\(connection.fd)", "error": "\(systemErrorText())"])
        }
        connection.events = 0
    }

    /// Reads what the peer sent and parses it. Called with the lock held.
    private func read(_ connection: Connection, now: MonotonicInstant, into ready: inout [Work]) {
        guard connection.lifecycle == .open else { return }
        connection.lastActive = now
        var sawEnd = false
        var failed = false
        let scratch = readBuffer
        // A few reads at most, so that one busy peer cannot starve the others.
        for _ in 0..<4 {
            let count = Glibc.read(connection.fd, scratch.baseAddress, scratch.count)
            if count > 0 {
                // Bytes came: a request still being read is not stalled (the read timeout is
                // how long the peer sent nothing, not how long its request takes: Apache passes
                // a body on as its client uploads it).
                connection.midRequestSince = nil
                connection.parser.append(UnsafeRawBufferPointer(rebasing: scratch[..<count]))
                if count < scratch.count { break }
            } else if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                break
            } else if count < 0 && errno == EINTR {
                continue
            } else {
                sawEnd = true
                failed = count < 0
                break
            }
        }
        parse(connection, now: now, into: &ready)
        if failed {
            // Reset: what it had sent in full is still run, its answer goes nowhere.
            drop(connection)
        } else if sawEnd {
            // The peer closed its side: what it sent in full is still answered (a client that
            // half-closes waits for it), then the connection closes. Not polled meanwhile, or
            // the end would be reported again and again.
            connection.advance(to: .inputEnded)
            connection.midRequestSince = nil
            unwatch(connection)
            if !connection.busy && !connection.held { drop(connection) }
        } else if connection.parser.isServing && connection.parser.bufferedBytes > 2 << 20 {
            // Bytes keep coming while a request is served: stop reading until it is answered.
            watch(connection, connection.events & ~EPOLLIN.rawValue)
        }
    }

    /// Turns buffered bytes into requests and replies. Called with the lock held.
    private func parse(_ connection: Connection, now: MonotonicInstant, into ready: inout [Work]) {
        do {
            while connection.lifecycle < .closeAfterWrite, let event = try connection.parser.next() {
                switch event {
                case .request(let request):
                    connection.busy = true
                    inFlight.add(1, ordering: .relaxed)
                    let head = request.params.head()
                    let work = Work(server: self, connection: connection, request: request, head: head)
                    connection.serving = work
                    ready.append(work)
                case .reply(let bytes, let close):
                    connection.output += bytes
                    if close { connection.advance(to: .closeAfterWrite) }
                }
            }
        } catch {
            logger.notice("closing a FastCGI connection that broke the protocol", metadata: ["error": "\(error)"])
            drop(connection)
            return
        }
        connection.midRequestSince = connection.parser.isMidRequest ? (connection.midRequestSince ?? now) : nil
        flush(connection)
    }

    /// Writes what it can of the output; watches for writability if some is left. An answer
    /// held for its audit line waits for `release`.
    private func flush(_ connection: Connection) {
        defer { countStreamBacklog(connection) }
        guard !connection.dead, !connection.held else { return }
        while connection.written < connection.output.count {
            let count = connection.output.withUnsafeBytes { buffer in
                send(connection.fd, buffer.baseAddress! + connection.written, buffer.count - connection.written, Int32(MSG_NOSIGNAL))
            }
            if count > 0 {
                connection.written += count
            } else if count < 0 && errno == EINTR {
                continue
            } else if count < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) {
                watch(connection, connection.events | EPOLLOUT.rawValue)
                return
            } else {
                drop(connection)
                return
            }
        }
        if connection.output.capacity > Self.largeAnswer { releasedLargeAnswer = true }
        connection.output.removeAll(keepingCapacity: connection.output.capacity <= 1 << 17)
        connection.written = 0
        if connection.lifecycle == .closeAfterWrite || (connection.lifecycle == .inputEnded && !connection.busy) {
            drop(connection)
        } else if connection.events & EPOLLOUT.rawValue != 0 {
            watch(connection, connection.events & ~EPOLLOUT.rawValue)
        }
    }

    /// Stops polling a connection; closes it unless a request of it is being served.
    private func drop(_ connection: Connection) {
        unwatch(connection)
        connection.advance(to: .dead)
        countStreamBacklog(connection)
        guard !connection.busy, connections[connection.fd] === connection else { return }
        connections[connection.fd] = nil
        close(connection.fd)
    }

    /// Closes connections whose peer stopped mid-record or mid-request for the read timeout.
    private func closeStalled(now: MonotonicInstant) {
        for connection in connections.values {
            guard let since = connection.midRequestSince, !connection.busy,
                now.duration(since: since) >= options.readTimeout
            else { continue }
            logger.notice(
                "closing a FastCGI connection stalled mid-request",
                metadata: ["seconds": "\(options.readTimeout.components.seconds)"])
            drop(connection)
        }
    }

    /// Whether the calling thread is the poller in its round (`serve`): then an answer waits
    /// for the round's `release`, and the requests it lets in for the round's next batch.
    /// Called with the lock held.
    private var inRound: Bool {
        guard let roundThread else { return false }
        return pthread_equal(roundThread, pthread_self()) != 0 && roundEpoch == pollerEpoch
    }

    /// Ends `work`'s answer with what `encode` writes (a whole response, or the end of a stream),
    /// then reads on: what the peer sent after the request is parsed, and the requests it
    /// completes go to the poller (`pending`).
    fileprivate func complete(_ work: Work, _ encode: (inout [UInt8]) -> Void) {
        lock.withLock {
            let connection = work.connection
            connection.busy = false
            connection.serving = nil
            if connection.dead {
                inFlight.subtract(1, ordering: .relaxed)
                drop(connection)
                return
            }
            // Straight into the connection's buffer, which keeps its capacity between answers.
            encode(&connection.output)
            let inRound = inRound
            if !connection.parser.finish() { connection.advance(to: .closeAfterWrite) }
            if work.streaming {
                // What was streamed has gone already; the end follows at once, after the lines.
                inFlight.subtract(1, ordering: .relaxed)
                heldLines.flush()
                flush(connection)
            } else {
                // Sent by `release`, with the others of this round, once their audit lines are
                // written.
                if !connection.held {
                    connection.held = true
                    unsent.append(connection)
                }
                unsentAnswers += 1
            }
            // A reload may have changed exec.max_body; it applies from the next request.
            connection.parser.limits.bodyBytes = responder.maxBodySize
            let now = MonotonicInstant.now()
            connection.lastActive = now
            if connection.lifecycle == .open && connection.events & EPOLLIN.rawValue == 0 {
                watch(connection, connection.events | EPOLLIN.rawValue)
            }
            let before = pending.count
            parse(connection, now: now, into: &pending)
            if !inRound {
                // Nobody sends this thread's answers later: now, after their lines.
                release()
                if pending.count > before { wake() }
            }
        }
    }

    /// Most bytes the streamed answers may hold unsent, together. nginx passes a stream on as
    /// its client reads it (`X-Accel-Buffering: no`), so what a chunk prints faster than its
    /// client reads waits here: eighty clients reading at 1 KiB/s, each streaming a chunk that
    /// printed 15 MiB, held 950 MB. Past the budget the streams that have held bytes unsent the
    /// longest without a break are cut, until the rest fit: the slow readers, whose chunks may
    /// have ended long ago. Neither the stream being written (a fast reader behind slow ones was
    /// cut so) nor the one holding the most (a fast reader's fresh 15 MiB part is the most) is
    /// the one to cut. A chunk whose stream is cut goes on, audited `stream=dropped`.
    static let streamBacklogLimit = 64 << 20

    /// Unsent bytes of the streams, together (`Connection.streamBacklog`). Guarded by `lock`.
    private var streamBacklogTotal = 0

    /// Writes part of a streamed answer at once. False when the connection is gone, or was cut
    /// because the streams hold more than `streamBacklogLimit` unsent.
    fileprivate func stream(_ work: Work, _ encode: (inout [UInt8]) -> Void) -> Bool {
        lock.withLock {
            let connection = work.connection
            guard !connection.dead else { return false }
            encode(&connection.output)
            flush(connection)
            while streamBacklogTotal > Self.streamBacklogLimit {
                // Rare (only past the budget): a scan of the connections for the slowest.
                var slowest: Connection?
                for candidate in connections.values {
                    guard candidate.streamBacklog > 0, let since = candidate.backlogSince else { continue }
                    if slowest?.backlogSince.map({ since < $0 }) ?? true { slowest = candidate }
                }
                guard let slowest else { break }
                logger.notice(
                    "cutting a streamed answer: the streams' clients read too slowly",
                    metadata: [
                        "unsent_bytes": "\(slowest.streamBacklog)", "all_streams_unsent": "\(streamBacklogTotal)",
                    ])
                drop(slowest)
            }
            return !connection.dead
        }
    }

    /// Counts what `connection`'s stream holds unsent into `streamBacklogTotal`; a connection
    /// whose stream has ended and gone out counts no more. Called with the lock held.
    private func countStreamBacklog(_ connection: Connection) {
        guard connection.streaming else { return }
        let unsent = connection.dead ? 0 : connection.output.count - connection.written
        streamBacklogTotal += unsent - connection.streamBacklog
        connection.streamBacklog = unsent
        if unsent == 0 {
            connection.backlogSince = nil
        } else if connection.backlogSince == nil {
            connection.backlogSince = .now()
        }
        if unsent == 0 && (connection.dead || !connection.busy) { connection.streaming = false }
    }

    /// Wakes the poller from `epoll_wait`.
    private func wake() {
        _ = eventfd_write(wakeFD, 1)
    }

    /// Writes the held audit lines (one `write(2)` for the round), then sends the answers they
    /// belong to. Called with the lock held: an answer is queued under it after its line was
    /// held, so every answer sent here has its line written first.
    private func release() {
        heldLines.flush()
        guard !unsent.isEmpty else { return }
        for connection in unsent {
            connection.held = false
            flush(connection)
        }
        unsent.removeAll(keepingCapacity: true)
        // Only now: shutdown waits for this to reach zero, then the process ends.
        inFlight.subtract(unsentAnswers, ordering: .relaxed)
        unsentAnswers = 0
    }
}

/// A transport failure, with a message a person can act on.
public struct TransportError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
