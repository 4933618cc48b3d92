import HTTPCore
import Logging
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
            audit.refused = true
            writer.send(finish(response, label: label, audit: &audit, start: start))
            return nil
        case .admitted(let label, let route, let call) where route.takesState:
            let reply = route.handler(self, call, &audit)
            if case .later(let make) = reply {
                return { [self, audit] in
                    var audit = audit
                    writer.send(finish(make(&audit), label: label, audit: &audit, start: start))
                }
            }
            answer(reply, label: label, json: call.json, head: call.head, audit: audit, start: start, writer: writer)
            return nil
        case .admitted(let label, let route, let call):
            return { [self, audit] in
                var audit = audit
                let reply = route.handler(self, call, &audit)
                answer(
                    reply, label: label, json: call.json, head: call.head, audit: audit, start: start, writer: writer)
            }
        }
    }

    /// Sends a handler's reply, or queues the job that makes it; an evaluation's answer as
    /// Server-Sent Events when the request (`head`) asks for them (SPEC E13).
    private func answer(
        _ reply: Reply, label: String, json: Bool, head: RequestHead, audit: consuming AuditRecord,
        start: MonotonicInstant, writer: any ResponseWriter
    ) {
        // Consumed, not copied: a copy of the record retains and releases each of its strings.
        var audit = audit
        switch reply {
        case .answer(let response):
            writer.send(finish(response, label: label, audit: &audit, start: start))
        case .later(let make):
            writer.send(finish(make(&audit), label: label, audit: &audit, start: start))
        case .onState(let jobLabel, let work):
            executor.submit(Exchange(
                service: self, label: label, jobLabel: jobLabel, start: start, json: json, audit: audit, writer: writer,
                work: .answer(work)))
        case .evaluating(let jobLabel, let work):
            let key = head.headers["lua-interrupt-key"]  // its form checked in `admit`
            let exchange = Exchange(
                service: self, label: label, jobLabel: jobLabel, start: start, json: json, audit: audit, writer: writer,
                work: .evaluate(work), events: EventStream.wanted(head) ? EventStream(writer: writer) : nil)
            exchange.interruptKey = key
            executor.submit(exchange)
        case .reset:
            let exchange = Exchange(
                service: self, label: label, jobLabel: "reset", start: start, json: true, audit: audit, writer: writer,
                work: nil)
            executor.submitReset(arrived: start, done: { error in exchange.resetDone(error) }, refused: { exchange.refuse() })
        }
    }

    /// A key a client names its evaluation by, to interrupt it (`POST
    /// /api/v1/admin/interrupt?key=K`) whether it runs or waits in `sleep`: the page and the
    /// REPL send a random one with each run.
    static func isInterruptKey(_ key: String) -> Bool {
        (1...64).contains(key.utf8.count)
            && key.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "_"):
                    true
                default: false
                }
            }
    }

    static let interruptKeyRule = "1 to 64 letters, digits, '-' and '_' (a UUID will do)"

    /// Runs the requests queued for the state on the transport's thread (see `Responder`).
    public func runDeferred() {
        executor.runQueued()
    }

    /// When a request waiting in `sleep` (SPEC V10) or a timer (V9) is due.
    public func nextDue() -> MonotonicInstant? {
        switch (executor.nextDue, executor.timers.nextDue) {
        case (let sleeper?, let timer?): min(sleeper, timer)
        case (let sleeper, let timer): sleeper ?? timer
        }
    }

    /// Queues the timers that are due and the requests whose `sleep` is over, and runs them, on
    /// the transport's thread.
    public func runDue() {
        let timers = executor.timers
        for due in timers.takeDue(.now()) {
            executor.submit(
                TimerRun(
                    service: self, timers: timers, id: due.id, due: due.due, origin: due.origin, ownWork: due.ownWork))
        }
        executor.runDue()
        executor.runQueued()
    }

    public func setWake(_ wake: @escaping @Sendable () -> Void) { executor.setWakeDriver(wake) }

    /// A client that went while its request waits its turn or its chunk sleeps: a request that
    /// never started leaves the queue and runs nothing; a sleeping chunk is ended now, not when
    /// it wakes, so that what it holds is let go (its answer goes nowhere). A running chunk
    /// runs on (`LuaExecutor.clientGone`).
    public func peerGone(_ writer: any ResponseWriter) {
        executor.clientGone { ($0 as? Exchange)?.writer === writer }
    }
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
    /// The answer as Server-Sent Events (SPEC E13), when the client asked for them: what the
    /// chunk prints goes out as it prints it.
    let events: EventStream?
    /// What the chunk printed last, not streamed yet: it goes with the final event.
    private var lastOutput: [UInt8] = []

    init(
        service: ExecService, label: String, jobLabel: String?, start: MonotonicInstant, json: Bool,
        audit: consuming AuditRecord, writer: any ResponseWriter, work: Work?, events: EventStream? = nil
    ) {
        self.service = service
        self.metricsLabel = label
        self.start = start
        self.json = json
        self.audit = audit
        self.writer = writer
        self.work = work
        self.events = events
        super.init(label: jobLabel, arrived: start)
        bodyBytes = self.audit.body?.count ?? 0
    }

    override func run(_ vm: LuaVM) {
        // For this run only (the state serves others while the chunk sleeps).
        if let events { vm.outputSink = { events.output($0) } }
        defer {
            vm.outputSink = nil
            vm.tracebackLocals = false
        }
        runOnState(vm)
    }

    private func runOnState(_ vm: LuaVM) {
        if let waiting {
            self.waiting = nil
            if let interruption {
                // Ended while it slept: by an administrator (SPEC M2) or its client, or because
                // luaexecd is stopping.
                let message =
                    switch interruption {
                    case .stopping: "luaexecd is stopping: the chunk was ended while it waited in sleep"
                    case .client: Self.interruptedByClient
                    case .administrator: "the chunk was interrupted by an administrator"
                    }
                return end(waiting, .interrupted, message, vm: vm)
            }
            if MonotonicInstant.now() < waiting.sleepEnds {
                // Woken before its sleep ends: `limits.wait` is over.
                let limit = vm.maxWaitSeconds.map { $0 == $0.rounded() ? "\(Int($0))" : "\($0)" } ?? "its"
                return end(
                    waiting, .timeout,
                    "the request waited in sleep past limits.wait (\(limit) seconds from its arrival)", vm: vm)
            }
            return go(on: vm.resume(waiting.suspension), output: waiting.output, then: waiting.then, vm: vm)
        }
        service.recordQueueWait(since: arrived)
        let work = self.work
        self.work = nil
        if interrupted {
            // Ended by its key while it waited its turn: it never ran.
            let evaluation = Evaluation(
                output: [],
                outcome: .failure(LuaFailure(kind: .interrupted, message: "the request was interrupted before it ran")),
                elapsedNanoseconds: 0)
            return send(service.render(evaluation, json: json, audit: &audit))
        }
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

    /// Ends the chunk where it sleeps, without resuming it, and answers with `kind` and
    /// `message` and the traceback of where it slept (SPEC O11).
    private func end(_ waiting: Waiting, _ kind: LuaFailure.Kind, _ message: String, vm: LuaVM) {
        let traceback = vm.traceback(of: waiting.suspension)
        vm.abandon(waiting.suspension)
        let failure = LuaFailure(kind: kind, message: message, traceback: traceback)
        let evaluation = Evaluation(output: waiting.output, outcome: .failure(failure), elapsedNanoseconds: 0)
        send(waiting.then(evaluation, vm, &audit))
    }

    /// Ended by `POST /api/v1/console/interrupt?key=K` from the token that sent it, not by an
    /// administrator: the answer, the log and the audit trail say which.
    static let interruptedByClient = "the chunk was interrupted by its client (Lua-Interrupt-Key)"

    /// Answers from an evaluation that ended, or waits again while it sleeps.
    private func go(
        on evaluation: Evaluation, output: [UInt8], then: @escaping (Evaluation, LuaVM, inout AuditRecord) -> Response,
        vm: LuaVM
    ) {
        var evaluation = evaluation
        if let events {
            // Streamed: what it printed before a sleep goes out now; what it printed last goes
            // with the final event, and the final event's `output` is empty.
            if evaluation.suspension != nil { events.output(evaluation.output) } else { lastOutput = evaluation.output }
            evaluation.output = []
        } else if !output.isEmpty {
            // What it printed before a sleep comes first; most chunks never slept (no copy).
            evaluation.output = output + evaluation.output
        }
        if case .failure(var failure) = evaluation.outcome, failure.kind == .interrupted,
            service.executor.runningInterruption == .client
        {
            failure.message = Self.interruptedByClient
            evaluation.outcome = .failure(failure)
        }
        guard let suspension = evaluation.suspension else { return send(then(evaluation, vm, &audit)) }
        let sleepEnds = service.executor.wait(self, sleeping: suspension, livingSince: start, vm: vm)
        waiting = Waiting(suspension: suspension, then: then, output: evaluation.output, sleepEnds: sleepEnds)
    }

    private func send(_ response: Response) {
        guard let events else { return writer.send(service.finish(response, label: metricsLabel, audit: &audit, start: start)) }
        let output = lastOutput
        lastOutput = []
        let answer = service.finish(
            events.end(response, output: output, audit: &audit), label: metricsLabel, audit: &audit, start: start)
        // Streamed: the rest has been written; the audit line goes out as the stream ends.
        if events.started { writer.finish() } else { writer.send(answer) }
    }

    /// The state was reset while the chunk waited in `sleep` (SPEC M3): it ended with it.
    override func stateWasReset() {
        guard let waiting else { return }
        self.waiting = nil
        let evaluation = Evaluation(
            output: waiting.output,
            outcome: .failure(
                LuaFailure(kind: .interrupted, message: "the Lua state was reset while the chunk waited in sleep")),
            elapsedNanoseconds: 0)
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

    /// Its client went while it waited its turn: it never ran. Its audit line says so (the
    /// answer goes to a closed connection).
    override func clientWent() {
        work = nil
        let evaluation = Evaluation(
            output: [],
            outcome: .failure(LuaFailure(kind: .interrupted, message: "the client went before the request ran")),
            elapsedNanoseconds: 0)
        send(service.render(evaluation, json: json, audit: &audit))
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

/// One run of a timer (SPEC V9): a job of the state, under the limits of a chunk, in due order
/// among what is queued. Its callback may wait in `sleep`, as a request's chunk may; the timer is
/// not run again until this run has ended.
final class TimerRun: StateJob, @unchecked Sendable {
    let service: ExecService
    /// The schedule of the state that set the timer: after a reset the run has nothing to do.
    let timers: TimerSchedule
    let timer: Int64
    let due: MonotonicInstant
    let origin: EndpointRegistry.Origin
    // Used by the thread running the job only.
    var waiting: (suspension: Suspension, sleepEnds: MonotonicInstant)?
    var started: MonotonicInstant?

    init(
        service: ExecService, timers: TimerSchedule, id: Int64, due: MonotonicInstant, origin: EndpointRegistry.Origin,
        ownWork: Bool
    ) {
        self.service = service
        self.timers = timers
        self.timer = id
        self.due = due
        self.origin = origin
        // Not bounded: a timer is never refused as busy. The box's own work when a script set
        // it (not a request, nor a handler a request called): its sleeps then wait in a room of
        // their own (StateJob.ownWork).
        super.init(label: "timer \(id)", bounded: false, ownWork: ownWork, yieldsToRequests: true)
    }

    override func run(_ vm: LuaVM) {
        guard vm.timers === timers else { return }
        let evaluation: Evaluation?
        if let waiting {
            self.waiting = nil
            if vm.outlivesItsRun(waiting.suspension) {
                // The stored script that set the timer was deleted, disabled or replaced while
                // the callback slept: nothing more of it runs, and the timer went with it (no
                // failure to count or log).
                vm.abandon(waiting.suspension)
                return ended(nil, vm: vm, cancelled: true)
            }
            if interrupted {
                vm.abandon(waiting.suspension)
                return ended(
                    LuaFailure(kind: .interrupted, message: "the chunk was interrupted by an administrator"), vm: vm)
            }
            if MonotonicInstant.now() < waiting.sleepEnds {
                vm.abandon(waiting.suspension)
                return ended(
                    LuaFailure(kind: .timeout, message: "the timer's callback waited in sleep past limits.wait"), vm: vm)
            }
            evaluation = vm.resume(waiting.suspension)
        } else {
            let now = MonotonicInstant.now()
            started = now
            service.metricsHandles?.timerLateness.record(nanoseconds: now.nanoseconds(since: due))
            evaluation = vm.runTimer(timer, origin: origin, ownWork: ownWork)
        }
        guard let evaluation else { return ended(nil, vm: vm, cancelled: true) }
        if let suspension = evaluation.suspension {
            let sleepEnds = service.executor.wait(self, sleeping: suspension, livingSince: started ?? .now(), vm: vm)
            waiting = (suspension, sleepEnds)
            return
        }
        // Once, when the callback has ended: its running time over all its runs.
        service.recordEvaluation(nanoseconds: evaluation.elapsedNanoseconds)
        if case .failure(let failure) = evaluation.outcome { return ended(failure, vm: vm) }
        ended(nil, vm: vm)
    }

    /// The run is over: counted, logged when it failed (at most a line a minute per timer), and
    /// the timer due again or, a `timer.after`, forgotten.
    private func ended(_ failure: LuaFailure?, vm: LuaVM, cancelled: Bool = false) {
        let finished = timers.finished(id: timer, failure: failure)
        if finished.drop { vm.dropTimer(timer) }
        guard !cancelled else { return }
        service.metricsHandles?.timerRuns.increment()
        guard let failure else { return }
        service.metricsHandles?.timerErrors.increment()
        if let unlogged = finished.logFailure {
            service.logger.error(
                "timer failed",
                metadata: [
                    "timer": "\(timer)", "origin": "\(origin.text)", "kind": "\(failure.kind.rawValue)",
                    "error": "\(failure.message)", "not_logged_before": "\(unlogged)",
                ])
        }
    }

    /// A reset ended the state the callback waited in: the timer went with it.
    override func stateWasReset() { waiting = nil }
}

extension LuaExecutor {
    /// `job`'s chunk waits in `sleep`: it runs again when its sleep ends, or sooner, once
    /// `limits.wait` has passed since `start` (then it is ended). Returns when its sleep ends,
    /// for the job to tell which it was when it runs.
    fileprivate func wait(
        _ job: StateJob, sleeping suspension: Suspension, livingSince start: MonotonicInstant, vm: LuaVM
    ) -> MonotonicInstant {
        // A sleep was refused beyond limits.wait; capped here only so that the nanoseconds fit.
        func after(_ instant: MonotonicInstant, _ seconds: Double) -> MonotonicInstant {
            instant.advanced(by: .nanoseconds(Int64(min(seconds, 1e7) * 1e9)))
        }
        let sleepEnds = after(.now(), suspension.seconds)
        // Counted as `sleep` counted it (LuaVM.waitRoom): all it printed, streamed output too.
        wait(job, until: min(sleepEnds, after(start, vm.maxWaitSeconds ?? 60)), holding: suspension.outputUsed)
        return sleepEnds
    }
}
