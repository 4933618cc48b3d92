import SystemSupport

/// What a transport hands each request to: luaexec's service, or a test's responder.
///
/// The contract between a transport (FastCGI today; any server that speaks HTTP's semantics)
/// and what answers: the transport parses, buffers the body within `maxBodySize`, calls
/// `respond` for each complete request in the order the requests arrived, and writes what the
/// writer is given. It knows nothing of what answering takes (Lua, tokens, a database).
public protocol Responder: Sendable {
    /// The largest request body taken now: a longer one reaches `respond` as `.tooLarge`.
    var maxBodySize: Int { get }

    /// Work a responder hands back to the transport's thread (see `respond`).
    typealias Work = () -> Void

    /// Takes one request, answers it through `writer` (before returning, or later from any
    /// thread: a request that waits for a shared resource), or returns the work that answers
    /// it. The transport calls it for one request at a time, in arrival order, across all its
    /// threads, and never with a lock of its own held; so it must return quickly: whatever
    /// takes time and need not keep arrival order is returned as `Work`, which the transport
    /// runs on the same thread right after it has handed over the requests read with this one.
    func respond(to head: RequestHead, body: BodyRead, writer: any ResponseWriter) -> Work?

    /// Runs, on the calling thread, the work `respond` deferred, until none is left or another
    /// thread is already running it. A transport calls it once it has handed over every request
    /// it read in one go, from a thread with a large stack, so that those requests keep their
    /// arrival order and the deferred work needs no thread of its own (no wake-up per request).
    func runDeferred()

    /// When the responder next has work of its own to run (a request waiting in `sleep` whose
    /// time is up, a timer), or nil. The transport waits for input no longer than that.
    func nextDue() -> MonotonicInstant?

    /// Runs what is due now (see `nextDue`) on the calling thread, which has a large stack.
    func runDue()

    /// Gives the responder the way to wake the transport when something becomes due earlier
    /// than the transport may be waiting for (it may be called from any thread).
    func setWake(_ wake: @escaping @Sendable () -> Void)

    /// The peer of a request not yet answered is gone: its answer would go nowhere, and the
    /// responder may stop what it does for it. Its writer still takes the answer, which is
    /// dropped.
    func peerGone(_ writer: any ResponseWriter)
}

extension Responder {
    public func runDeferred() {}
    public func nextDue() -> MonotonicInstant? { nil }
    public func runDue() {}
    public func setWake(_ wake: @escaping @Sendable () -> Void) {}
    public func peerGone(_ writer: any ResponseWriter) {}
}

/// Where one request's answer goes, given by the transport with the request. Either `send` once,
/// or `startStream`, any number of `write`, then `finish` (a streamed answer: Server-Sent
/// Events, a chunk's output as it is printed). Any thread may call it; calls for one request
/// must not overlap.
public protocol ResponseWriter: AnyObject, Sendable {
    /// The whole answer.
    func send(_ response: Response)

    /// The status and headers of an answer whose body follows in parts; `head.body` is ignored
    /// and no `Content-Length` is sent. The head leaves at once.
    func startStream(_ head: Response)

    /// Part of a streamed body, sent at once. False when the client is gone: stop producing.
    @discardableResult
    func write(_ bytes: [UInt8]) -> Bool

    /// Ends a streamed answer.
    func finish()
}
