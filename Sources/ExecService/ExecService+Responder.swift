import HTTPCore
import LuaRuntime
import SystemSupport

/// How a request crosses the service: the transport calls `respond`; the route table admits or
/// refuses it (`admit`); an answer that needs no state leaves from the work `respond` hands
/// back, one that does is queued with the one scheduler (`LuaExecutor`) as an `Exchange`, and
/// leaves from the thread that ran it.
extension ExecService: Responder {
    public var maxBodySize: Int { bodyLimit.load(ordering: .relaxed) }

    /// Admits the request (route, token, scope, method) and, for a row that takes the state,
    /// runs its handler and queues the job: quick, and in the order the transport calls it,
    /// which is arrival order (SPEC E8). A row that does not take the state is answered by the
    /// work returned, which the transport runs right after the handover: such a handler may
    /// take time (the audit trail's verification, a token written to the database), and later
    /// requests must not wait for it to be queued.
    public func respond(to head: RequestHead, body: BodyRead, writer: any ResponseWriter) -> Responder.Work? {
        let start = MonotonicInstant.now()
        var audit = AuditRecord(head: head)
        switch admit(head, body: body, audit: &audit) {
        case .refused(let label, let response):
            writer.send(finish(response, label: label, audit: &audit, start: start))
            return nil
        case .admitted(let label, let route, let call) where route.takesState:
            answer(route.handler(self, call, &audit), label: label, json: call.json, audit: audit, start: start, writer: writer)
            return nil
        case .admitted(let label, let route, let call):
            return { [self, audit] in
                var audit = audit
                let reply = route.handler(self, call, &audit)
                answer(reply, label: label, json: call.json, audit: audit, start: start, writer: writer)
            }
        }
    }

    /// Sends a handler's reply, or queues the job that makes it.
    private func answer(
        _ reply: Reply, label: String, json: Bool, audit: AuditRecord, start: MonotonicInstant, writer: any ResponseWriter
    ) {
        var audit = audit
        switch reply {
        case .answer(let response):
            writer.send(finish(response, label: label, audit: &audit, start: start))
        case .onState(let jobLabel, let work):
            executor.submit(Exchange(
                service: self, label: label, jobLabel: jobLabel, start: start, json: json, audit: audit, writer: writer,
                work: work))
        case .reset:
            let exchange = Exchange(
                service: self, label: label, jobLabel: "reset", start: start, json: true, audit: audit, writer: writer,
                work: nil)
            executor.submitReset(arrived: start, done: { error in exchange.resetDone(error) }, refused: { exchange.refuse() })
        }
    }

    /// Runs the requests queued for the state on the transport's thread (see `Responder`).
    public func runDeferred() {
        executor.runQueued()
    }
}

/// A request that waits for the Lua state: the job the scheduler queues, holding what its
/// answer needs. One object a request, not a job and the closures around it.
final class Exchange: StateJob, @unchecked Sendable {
    let service: ExecService
    let metricsLabel: String
    let start: MonotonicInstant
    let json: Bool
    // Used by one thread at a time: the submitter's until it is queued, then the runner's or
    // the refuser's (the scheduler's lock orders them).
    var audit: AuditRecord
    let writer: any ResponseWriter
    var work: ((LuaVM, inout AuditRecord) -> Response)?

    init(
        service: ExecService, label: String, jobLabel: String?, start: MonotonicInstant, json: Bool, audit: AuditRecord,
        writer: any ResponseWriter, work: ((LuaVM, inout AuditRecord) -> Response)?
    ) {
        self.service = service
        self.metricsLabel = label
        self.start = start
        self.json = json
        self.audit = audit
        self.writer = writer
        self.work = work
        super.init(label: jobLabel, arrived: start)
    }

    override func run(_ vm: LuaVM) {
        service.recordQueueWait(since: arrived)
        let response = work.map { $0(vm, &audit) } ?? ExecService.plain(500, "nothing to run\n", json: json)
        work = nil
        writer.send(service.finish(response, label: metricsLabel, audit: &audit, start: start))
    }

    /// 503 busy: the queue was full or the wait passed `limits.queue_timeout` (SPEC L4);
    /// nothing ran.
    override func refuse() {
        work = nil
        audit.errorKind = "busy"
        writer.send(service.finish(service.busy(json: json), label: metricsLabel, audit: &audit, start: start))
    }

    /// The end of a reset (SPEC M3).
    func resetDone(_ error: (any Error)?) {
        let response: Response
        if let error {
            response = ExecService.plain(500, "reset failed: \(error)\n", json: true, kind: "reset")
        } else {
            response = ExecService.json(200, "{\"ok\":true}")
        }
        writer.send(service.finish(response, label: metricsLabel, audit: &audit, start: start))
    }
}
