import CFastCGI
import ExecService
import Logging
import Synchronization
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// Serves FastCGI from one epoll loop that owns every connection, and evaluates inline.
///
/// One thread at a time is the *poller*: it waits in `epoll_wait`, reads, parses records
/// (`FastCGIParser`), and answers each complete request itself, on its own stack, before it
/// polls again: no thread hand-off and no wake-up per request, which is what held the libfcgi
/// transport to half the event-loop floor (docs/architecture.md). Requests that may need the Lua
/// state (`ExecService.needsState`) run one at a time in arrival order; while one runs, later
/// ones wait in a queue here (bounded by the queue capacity and timeout, SPEC L4) and the thread
/// that ran it runs them next, in order.
///
/// A chunk that runs long would stop the loop, so the other threads of the small pool stand by:
/// one of them looks every 10 ms, and once the poller has served for longer than that, it takes
/// the poller role and goes on accepting, reading, queueing, and answering what needs no state
/// (the admin status, interrupt) at once (M1, M2). The thread in the long chunk finishes it,
/// runs what queued up meanwhile, then stands by. Lua thus runs on whichever pool thread holds
/// the state, one at a time, each with a 16 MiB stack.
///
/// `@unchecked Sendable`: every mutable property, and every `Connection`, is guarded by `lock`;
/// the service is Sendable and called without it.
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
        let fd: Int32
        var parser: FastCGIParser
        var output: [UInt8] = []
        var written = 0
        /// The epoll events watched now.
        var events: UInt32 = 0
        /// Close once the output is written.
        var closeAfterWrite = false
        /// The peer closed its side: nothing more is read, and the connection closes once what
        /// it asked is answered.
        var inputEnded = false
        /// The peer is gone or broke the protocol: no longer polled. The descriptor is closed
        /// once no request of it is being served, so its number cannot be reused under one.
        var dead = false
        /// A request of it is being served or waits in the queue.
        var busy = false
        /// Its output holds an answer whose audit line may still be held (`HeldLines`): it is
        /// sent by `release`, after the lines.
        var held = false
        var midRequestSince: MonotonicInstant?
        var lastActive: MonotonicInstant

        init(fd: Int32, limits: FastCGIParser.Limits, now: MonotonicInstant) {
            self.fd = fd
            parser = FastCGIParser(limits: limits)
            lastActive = now
        }
    }

    /// A complete request and where its answer goes. A class: it moves between lists and the
    /// queue, and copying a struct of it retained every buffer and string it holds each time.
    /// Guarded by the server's lock like its connection.
    final class Work {
        enum Kind {
            /// Answered at once: it needs no Lua state.
            case now
            /// Needs the state: queued, or claimed, by `admit`.
            case state
            /// Needs the state, which the thread holding this request has claimed for it.
            case claimed
            /// Answered 503 busy: the queue was full.
            case refused
        }
        let connection: Connection
        let request: FastCGIParser.Request
        let head: RequestHead
        var kind: Kind
        let arrived: MonotonicInstant

        init(connection: Connection, request: FastCGIParser.Request, head: RequestHead, kind: Kind, arrived: MonotonicInstant) {
            self.connection = connection
            self.request = request
            self.head = head
            self.kind = kind
            self.arrived = arrived
        }
    }

    let listenFD: Int32
    let service: ExecService
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
    /// A request that needs the state is being answered.
    private var stateBusy = false
    /// Requests waiting for the state, in arrival order.
    private var waiting = Queue<Work>()
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

    public init(listenFD: Int32, service: ExecService, options: Options = Options(), logger: Logger) throws(TransportError) {
        self.listenFD = listenFD
        self.service = service
        self.options = options
        self.logger = logger
        epollFD = epoll_create1(Int32(EPOLL_CLOEXEC))
        guard epollFD >= 0 else { throw TransportError("epoll_create1 failed: \(String(cString: strerror(errno)))") }
    }

    deinit {
        readBuffer.deallocate()
    }

    /// Opens a unix socket at `path` (replacing a stale one) with the given permissions.
    public static func listen(path: String, mode: mode_t = 0o660, backlog: Int32 = 1024) throws(TransportError) -> Int32 {
        if unlink(path) != 0 && errno != ENOENT {
            throw TransportError("cannot remove the old socket \(path): \(String(cString: strerror(errno)))")
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
        guard fd >= 0 else { throw TransportError("cannot make a socket: \(String(cString: strerror(errno)))") }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard bound == 0, Glibc.listen(fd, backlog) == 0 else {
            let reason = String(cString: strerror(errno))
            close(fd)
            throw TransportError("cannot listen on \(path): \(reason)")
        }
        guard chmod(path, mode) == 0 else {
            throw TransportError("cannot set the mode of \(path): \(String(cString: strerror(errno)))")
        }
        return fd
    }

    /// Starts the pool; returns at once.
    public func start() throws(TransportError) {
        let flags = fcntl(listenFD, F_GETFL)
        guard flags >= 0, fcntl(listenFD, F_SETFL, flags | O_NONBLOCK) == 0 else {
            throw TransportError("cannot make the listening socket non-blocking: \(String(cString: strerror(errno)))")
        }
        var event = epoll_event(events: EPOLLIN.rawValue, data: epoll_data_t(fd: listenFD))
        guard epoll_ctl(epollFD, EPOLL_CTL_ADD, listenFD, &event) == 0 else {
            throw TransportError("cannot watch the listening socket: \(String(cString: strerror(errno)))")
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
                pollOnce(&events, into: &ready)
                if !ready.isEmpty {
                    serve(ready, epoch: epoch)
                    ready.removeAll(keepingCapacity: true)
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
    /// writable output; then the queue's timeouts and stalled peers.
    private func pollOnce(_ events: inout [epoll_event], into ready: inout [Work]) {
        let timeout: Int32 = lock.withLock { waiting.isEmpty ? 1000 : 20 }
        let count = events.withUnsafeMutableBufferPointer {
            epoll_wait(epollFD, $0.baseAddress, Int32($0.count), timeout)
        }
        var expired: [Work] = []
        lock.withLock {
            let now = MonotonicInstant.now()
            for index in 0..<max(0, Int(count)) {
                let event = events[index]
                let fd = event.data.fd
                if fd == listenFD {
                    acceptConnections(now: now)
                    continue
                }
                guard let connection = connections[fd] else { continue }
                if event.events & EPOLLOUT.rawValue != 0 { flush(connection) }
                if event.events & (EPOLLIN.rawValue | EPOLLHUP.rawValue | EPOLLERR.rawValue) != 0 {
                    read(connection, now: now, into: &ready)
                }
            }
            admit(&ready)
            expireWaiting(now: now, into: &expired)
            if now >= nextSweep {
                closeStalled(now: now)
                nextSweep = now.advanced(by: .milliseconds(250))
            }
            if !ready.isEmpty || !expired.isEmpty { pollerBusySince = now }
        }
        // What their connections send next may already be claimed: it is served with `ready`.
        for work in expired { ready += deliver(work, service.respondBusy(to: work.head)) }
    }

    /// Answers each request: those that need no state first, then the claimed one with the
    /// state, followed by whatever queued for it meanwhile, in order. Answering the others first
    /// matters: a status request read in the same batch as a long chunk must not wait behind it.
    private func serve(_ works: [Work], epoch: Int) {
        var pending = works
        while !pending.isEmpty {
            let index = pending.firstIndex { $0.kind == .now || $0.kind == .refused } ?? pending.startIndex
            let work = pending.remove(at: index)
            switch work.kind {
            case .now:
                pending += deliver(work, service.respond(to: work.head) { _ in work.request.body })
            case .refused:
                pending += deliver(work, service.respondBusy(to: work.head))
            case .claimed, .state:
                pending += deliver(work, service.respond(to: work.head) { _ in work.request.body })
                // The state passes to the next waiting request, on this thread.
                let next: Work? = lock.withLock {
                    // Relieved of the poller role during a long request: answer each at once from
                    // now on, as no round of polling on this thread will send them.
                    if pollerEpoch != epoch { release() }
                    guard let queued = waiting.popFirst() else {
                        stateBusy = false
                        return nil
                    }
                    service.noteQueued(-1)
                    queued.kind = .claimed
                    return queued
                }
                if let next { pending.append(next) }
            }
        }
    }

    /// Decides, with the lock held and in arrival order, what happens to each request that
    /// needs the state: queued behind the running one and those already waiting (503 busy when
    /// the queue is full), or claimed for this thread when the state is free. Deciding here,
    /// in the same critical section that read the requests, keeps arrival order (SPEC E8) even
    /// when another thread takes the poller role meanwhile.
    private func admit(_ works: inout [Work]) {
        guard works.contains(where: { $0.kind == .state }) else { return }
        var kept: [Work] = []
        for work in works {
            if work.kind == .state {
                if stateBusy || !waiting.isEmpty {
                    if waiting.count >= service.queueLimits.capacity {
                        work.kind = .refused
                        kept.append(work)
                    } else {
                        waiting.append(work)
                        service.noteQueued(1)
                    }
                    continue
                }
                stateBusy = true
                work.kind = .claimed
            }
            kept.append(work)
        }
        works = kept
    }

    /// Takes the requests that waited past the queue timeout off the queue. Called with the
    /// lock held; they are answered busy outside it.
    private func expireWaiting(now: MonotonicInstant, into expired: inout [Work]) {
        guard !waiting.isEmpty else { return }
        let timeout = service.queueLimits.timeout
        // One timeout for all, so the oldest are first.
        while let first = waiting.first, now.duration(since: first.arrived) >= timeout {
            expired.append(waiting.popFirst()!)
            service.noteQueued(-1)
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
                    epoll_ctl(epollFD, EPOLL_CTL_DEL, listenFD, &unused)
                    return
                }
            }
            if connections.count >= options.maxConnections, !closeOldestIdle() {
                logger.warning("connection refused: \(options.maxConnections) connections are open and none is idle")
                close(fd)
                continue
            }
            let limits = FastCGIParser.Limits(
                paramsBytes: options.paramsLimit, bodyBytes: service.options.maxBodySize,
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
        connection.events = events
        epoll_ctl(epollFD, operation, connection.fd, &event)
    }

    private func unwatch(_ connection: Connection) {
        guard !connection.dead, connection.events != 0 else { return }
        var unused = epoll_event()
        epoll_ctl(epollFD, EPOLL_CTL_DEL, connection.fd, &unused)
        connection.events = 0
    }

    /// Reads what the peer sent and parses it. Called with the lock held.
    private func read(_ connection: Connection, now: MonotonicInstant, into ready: inout [Work]) {
        guard !connection.dead, !connection.inputEnded else { return }
        connection.lastActive = now
        var sawEnd = false
        var failed = false
        let scratch = readBuffer
        // A few reads at most, so that one busy peer cannot starve the others.
        for _ in 0..<4 {
            let count = Glibc.read(connection.fd, scratch.baseAddress, scratch.count)
            if count > 0 {
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
            connection.inputEnded = true
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
            while !connection.closeAfterWrite, let event = try connection.parser.next() {
                switch event {
                case .request(let request):
                    connection.busy = true
                    inFlight.add(1, ordering: .relaxed)
                    let head = request.params.head()
                    ready.append(Work(
                        connection: connection, request: request, head: head,
                        kind: service.needsState(head) ? .state : .now, arrived: now))
                case .reply(let bytes, let close):
                    connection.output += bytes
                    if close { connection.closeAfterWrite = true }
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
        if connection.closeAfterWrite || (connection.inputEnded && !connection.busy) {
            drop(connection)
        } else if connection.events & EPOLLOUT.rawValue != 0 {
            watch(connection, connection.events & ~EPOLLOUT.rawValue)
        }
    }

    /// Stops polling a connection; closes it unless a request of it is being served.
    private func drop(_ connection: Connection) {
        unwatch(connection)
        connection.dead = true
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

    /// Writes `response` to the request's connection, and parses what the peer sent after the
    /// request; returns the requests that completes.
    private func deliver(_ work: Work, _ response: Response) -> [Work] {
        var more: [Work] = []
        lock.withLock {
            let connection = work.connection
            connection.busy = false
            if connection.dead {
                inFlight.subtract(1, ordering: .relaxed)
                drop(connection)
                return
            }
            // Straight into the connection's buffer, which keeps its capacity between answers.
            FastCGIEncoder.response(response, id: work.request.id, into: &connection.output)
            // Sent by `release`, with the others of this round, once their audit lines are written.
            if !connection.held {
                connection.held = true
                unsent.append(connection)
            }
            unsentAnswers += 1
            if !connection.parser.finish() { connection.closeAfterWrite = true }
            // A reload may have changed exec.max_body; it applies from the next request.
            connection.parser.limits.bodyBytes = service.options.maxBodySize
            let now = MonotonicInstant.now()
            connection.lastActive = now
            if !connection.inputEnded && connection.events & EPOLLIN.rawValue == 0 {
                watch(connection, connection.events | EPOLLIN.rawValue)
            }
            parse(connection, now: now, into: &more)
            admit(&more)
        }
        return more
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

/// A first-in first-out queue that lets go of each element as it is taken: the server's queue
/// may never empty under load, and a taken request must not keep its body alive.
struct Queue<Element> {
    private var items: [Element?] = []
    private var head = 0

    var isEmpty: Bool { head == items.count }
    var count: Int { items.count - head }
    var first: Element? { isEmpty ? nil : items[head] }

    mutating func append(_ element: Element) { items.append(element) }

    mutating func popFirst() -> Element? {
        guard !isEmpty else { return nil }
        let element = items[head]
        items[head] = nil
        head += 1
        if head == items.count {
            items.removeAll(keepingCapacity: true)
            head = 0
        } else if head >= 64 && head * 2 >= items.count {
            items.removeFirst(head)
            head = 0
        }
        return element
    }
}

/// A transport failure, with a message a person can act on.
public struct TransportError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
