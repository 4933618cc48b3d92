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
                work: .answer(work)))
        case .evaluating(let jobLabel, let work):
            executor.submit(Exchange(
                service: self, label: label, jobLabel: jobLabel, start: start, json: json, audit: audit, writer: writer,
                work: .evaluate(work)))
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

    /// When a request waiting in `sleep` is due again (SPEC V10).
    public func nextDue() -> MonotonicInstant? { executor.nextDue }

    /// Queues the requests whose `sleep` is over and runs them, on the transport's thread.
    public func runDue() { executor.runDue() }

    public func setWake(_ wake: @escaping @Sendable () -> Void) { executor.setWakeDriver(wake) }
}

/// A request that waits for the Lua state: the job the scheduler queues, holding what its
/// answer needs. One object a request, not a job and the closures around it. A request whose
/// chunk waits in `sleep` is the same job, run again when its time is up (SPEC V10).
final class Exchange: StateJob, @unchecked Sendable {
    /// What the job runs: a handler that answers, or one that evaluates.
    enum Work {
        case answer((LuaVM, inout AuditRecord) -> Response)
        case evaluate((LuaVM, inout AuditRecord) -> Evaluated)
    }

    /// A chunk waiting in `sleep`: how to go on, what it printed before, and when its sleep
    /// ends (it may be woken earlier, at `limits.wait`, to be ended).
    struct Waiting {
        var suspension: Suspension
        var then: (Evaluation, LuaVM, inout AuditRecord) -> Response
        var output: [UInt8]
        var sleepEnds: MonotonicInstant
    }

    let service: ExecService
    let metricsLabel: String
    let start: MonotonicInstant
    let json: Bool
    // Used by one thread at a time: the submitter's until it is queued, then the runner's or
    // the refuser's (the scheduler's lock orders them).
    var audit: AuditRecord
    let writer: any ResponseWriter
    var work: Work?
    var waiting: Waiting?

    init(
        service: ExecService, label: String, jobLabel: String?, start: MonotonicInstant, json: Bool, audit: AuditRecord,
        writer: any ResponseWriter, work: Work?
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
        if let waiting {
            self.waiting = nil
            if MonotonicInstant.now() < waiting.sleepEnds {
                // Woken before its sleep ends: `limits.wait` is over.
                vm.abandon(waiting.suspension)
                let limit = vm.maxWaitSeconds.map { $0 == $0.rounded() ? "\(Int($0))" : "\($0)" } ?? "its"
                var evaluation = Evaluation(
                    output: waiting.output,
                    outcome: .failure(
                        LuaFailure(
                            kind: .timeout,
                            message: "the request waited in sleep past limits.wait (\(limit) seconds from its arrival)")),
                    elapsedNanoseconds: 0)
                evaluation.suspension = nil
                return send(waiting.then(evaluation, vm, &audit))
            }
            return go(on: vm.resume(waiting.suspension), output: waiting.output, then: waiting.then, vm: vm)
        }
        service.recordQueueWait(since: arrived)
        let work = self.work
        self.work = nil
        switch work {
        case .answer(let answer): send(answer(vm, &audit))
        case .evaluate(let evaluate):
            switch evaluate(vm, &audit) {
            case .answer(let response): send(response)
            case .evaluation(let evaluation, let then): go(on: evaluation, output: [], then: then, vm: vm)
            }
        case nil: send(ExecService.plain(500, "nothing to run\n", json: json))
        }
    }

    /// Answers from an evaluation that ended, or waits again while it sleeps.
    private func go(
        on evaluation: Evaluation, output: [UInt8], then: @escaping (Evaluation, LuaVM, inout AuditRecord) -> Response,
        vm: LuaVM
    ) {
        var evaluation = evaluation
        evaluation.output = output + evaluation.output
        guard let suspension = evaluation.suspension else { return send(then(evaluation, vm, &audit)) }
        let now = MonotonicInstant.now()
        let sleepEnds = now.advanced(by: .nanoseconds(Int64(min(suspension.seconds, 1e7) * 1e9)))
        // At most `limits.wait` after its arrival: then it is ended as a timeout.
        let limit = start.advanced(by: .nanoseconds(Int64(min(vm.maxWaitSeconds ?? 60, 1e7) * 1e9)))
        waiting = Waiting(suspension: suspension, then: then, output: evaluation.output, sleepEnds: sleepEnds)
        service.executor.wait(self, until: min(sleepEnds, limit))
    }

    private func send(_ response: Response) {
        writer.send(service.finish(response, label: metricsLabel, audit: &audit, start: start))
    }

    /// The state was reset while the chunk waited in `sleep` (SPEC M3): it ended with it.
    override func stateWasReset() {
        guard let waiting else { return }
        self.waiting = nil
        var evaluation = Evaluation(
            output: waiting.output,
            outcome: .failure(
                LuaFailure(kind: .interrupted, message: "the Lua state was reset while the chunk waited in sleep")),
            elapsedNanoseconds: 0)
        evaluation.suspension = nil
        audit.errorKind = "interrupted"
        // The answer is made without the state: `then` must not touch the VM it is given, so
        // the renderer is called directly.
        send(service.render(evaluation, json: json, audit: &audit))
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
