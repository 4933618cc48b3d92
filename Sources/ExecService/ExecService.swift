import AccessControl
import Crypto
import HTTPCore
import Logging
import LuaRuntime
import Synchronization
import SystemSupport

/// Answers luaexec's HTTP API: authentication, routing, evaluation and rendering. It knows
/// nothing of FastCGI: the transport hands it a `RequestHead` and a way to read the body.
public final class ExecService: Sendable {
    public struct Options: Sendable {
        /// Largest request body accepted (SPEC E6: 413 above it).
        public var maxBodySize: Int
        /// Seconds a busy client is told to wait (`Retry-After`).
        public var retryAfterSeconds: Int
        /// Whether `/api/v1/exec/interactive.lua` answers (SPEC V4); 404 when it does not.
        public var interactive: Bool
        /// Whether Action URLs (`/api/v1/exec/command`) answer (SPEC V7); 404 when they do not.
        public var actions: Bool
        /// The time limit of a stored script's run as it is installed (SPEC V8:
        /// `limits.init_time`, as at start).
        public var scriptTimeLimit: Duration
        /// Versions of a stored script kept besides the current one (`scripts.keep_versions`).
        public var keepVersions: Int

        public init(
            maxBodySize: Int = 1 << 20, retryAfterSeconds: Int = 1, interactive: Bool = true, actions: Bool = false,
            scriptTimeLimit: Duration = .seconds(5), keepVersions: Int = 10
        ) {
            self.maxBodySize = maxBodySize
            self.retryAfterSeconds = retryAfterSeconds
            self.interactive = interactive
            self.actions = actions
            self.scriptTimeLimit = scriptTimeLimit
            self.keepVersions = keepVersions
        }
    }

    /// luaexec's version, reported by the admin status.
    public static let version = "0.1.0"

    static let execPrefix = "/api/v1/exec/"
    static let adminPrefix = "/api/v1/admin/"
    static let interactive = "interactive.lua"
    /// The path of nearly every request, compared whole before anything is split.
    static let interactivePath = execPrefix + interactive
    static let command = "command"
    static let whoamiPath = "/api/v1/whoami"

    let executor: LuaExecutor
    let authenticator: Authenticator
    /// `persisted` and the config store, for the admin config API; nil without a database.
    let stateStore: StateStore?
    /// The stored scripts (SPEC V8), for the admin scripts API; nil without a database.
    let scriptStore: ScriptStore?
    /// The metrics in the Prometheus text format (SPEC M5); nil: no metrics are kept.
    let exportMetrics: (@Sendable () -> [UInt8])?
    /// The handles the metrics are kept with, when there are metrics.
    let metricsHandles: MetricsHandles?
    public let throttle: FailureThrottle
    // Read by every request, written by a config reload: atomics, whose relaxed loads are plain
    // loads. A lock, even a read-write one, writes a shared cache line on every request.
    let bodyLimit: Atomic<Int>
    private let retryAfterSeconds: Atomic<Int>
    private let interactiveEnabled: Atomic<Bool>
    private let actionsEnabled: Atomic<Bool>
    private let scriptTimeLimitNanoseconds: Atomic<Int64>
    private let keepVersions: Atomic<Int>
    /// Set once SIGTERM arrives: every later request gets 503 (SPEC O3).
    private let stopping = Atomic(false)
    /// Compiles running now on the transport's threads: a `Lua-Check` (`compiling`), a script's
    /// `check` (`compilingScripts`, admin only). One of each at most: a compile may take
    /// `limits.time` (Lua's parser is quadratic in a long `or` chain), and a few at once from
    /// one `exec` token would otherwise hold every thread of the transport, status and
    /// interrupt included; an `exec` token's slow check does not take an administrator's slot.
    let compiling = Atomic(0)
    let compilingScripts = Atomic(0)
    let logger: Logger
    /// Where audit lines go as bytes, when the log handler can take them so (luaexecd's does):
    /// it makes the line and has the record write its fields into it. Nil: `logger.info`. Every
    /// request writes one: this skips a String, a log event and an array each.
    let auditLines: AuditLines?

    public typealias AuditLines = @Sendable (_ fields: (inout LogLine) -> Void) -> Void
    /// Where each request's record goes for the audit trail in the database (SPEC M7); nil:
    /// only the log line.
    let auditWriter: AuditWriter?
    let started = MonotonicInstant.now()
    let outcomes = OutcomeCounters()

    /// The options in force; setting them (a config reload) applies to the next request.
    public var options: Options {
        get {
            Options(
                maxBodySize: bodyLimit.load(ordering: .relaxed),
                retryAfterSeconds: retryAfterSeconds.load(ordering: .relaxed),
                interactive: interactiveEnabled.load(ordering: .relaxed),
                actions: actionsEnabled.load(ordering: .relaxed),
                scriptTimeLimit: .nanoseconds(scriptTimeLimitNanoseconds.load(ordering: .relaxed)),
                keepVersions: keepVersions.load(ordering: .relaxed))
        }
        set {
            bodyLimit.store(newValue.maxBodySize, ordering: .relaxed)
            retryAfterSeconds.store(newValue.retryAfterSeconds, ordering: .relaxed)
            interactiveEnabled.store(newValue.interactive, ordering: .relaxed)
            actionsEnabled.store(newValue.actions, ordering: .relaxed)
            scriptTimeLimitNanoseconds.store(newValue.scriptTimeLimit.wholeNanoseconds, ordering: .relaxed)
            keepVersions.store(newValue.keepVersions, ordering: .relaxed)
        }
    }

    /// Refuses every request from now on with 503 and `Retry-After`: luaexecd is stopping, and
    /// a client should retry against the instance that replaces it.
    public func stopTakingRequests() {
        stopping.store(true, ordering: .relaxed)
    }

    public init(
        executor: LuaExecutor, authenticator: Authenticator, stateStore: StateStore? = nil,
        scriptStore: ScriptStore? = nil, throttle: FailureThrottle = FailureThrottle(), options: Options = Options(),
        exportMetrics: (@Sendable () -> [UInt8])? = nil, logger: Logger,
        auditLines: AuditLines? = nil, auditWriter: AuditWriter? = nil
    ) {
        self.executor = executor
        self.authenticator = authenticator
        self.stateStore = stateStore
        self.scriptStore = scriptStore
        self.exportMetrics = exportMetrics
        // After the daemon bootstrapped the metrics system: handles made earlier would be no-ops.
        metricsHandles = exportMetrics == nil ? nil : MetricsHandles()
        self.throttle = throttle
        bodyLimit = Atomic(options.maxBodySize)
        retryAfterSeconds = Atomic(options.retryAfterSeconds)
        interactiveEnabled = Atomic(options.interactive)
        actionsEnabled = Atomic(options.actions)
        scriptTimeLimitNanoseconds = Atomic(options.scriptTimeLimit.wholeNanoseconds)
        keepVersions = Atomic(options.keepVersions)
        self.logger = logger
        self.auditLines = auditLines
        self.auditWriter = auditWriter
    }

    /// Every answer passes here, and leaves with `HeaderPolicy.securityLines`: whatever it holds, no
    /// browser runs it as script in the console's origin.
    func finish(_ answer: Response, label: String, audit: inout AuditRecord, start: MonotonicInstant) -> Response {
        var response = answer
        response.fixedLines = HeaderPolicy.securityLines
        let now = MonotonicInstant.now()
        audit.finish(response: response, nanoseconds: now.nanoseconds(since: start))
        audit.log(to: logger, through: auditLines)
        auditWriter?.enqueue(audit)
        countRequest(label: label, status: response.status)
        let outcome = audit.errorKind ?? (response.status == 200 ? "ok" : "http_\(response.status)")
        outcomes.increment(outcome)
        return response
    }

    /// What the route table decides of a request before any handler runs: the row and the call
    /// to hand its handler, or the answer that refuses it (stopping, no such path, a token or
    /// scope refused, a method not taken). Matched once: the label is the metrics'.
    enum Admission {
        case refused(label: String, Response)
        case admitted(label: String, route: Route, call: Call)
    }

    /// The request headers luaexec reads that hold one value: given twice, a request is refused.
    /// (`Content-Type` is not among them: nginx passes it twice itself, as `CONTENT_TYPE` and as
    /// `HTTP_CONTENT_TYPE`, both from the same header.)
    static let singleValued = ["Authorization", "Lua-Interrupt-Key", "Lua-Chunk-Name", "Lua-Check", "Lua-Traceback"]
    static let singleValuedNames = singleValued.map { $0.lowercased() }
    static let singleValuedBits = HeaderFields.bits(of: singleValuedNames)
    /// `Lua-Interrupt-Key` and `Lua-Check`, which `admit` looks for on every request.
    static let interruptKeyBits = HeaderFields.bits(of: ["lua-interrupt-key"])
    static let checkBits = HeaderFields.bits(of: ["lua-check"])

    /// Admits or refuses a request: quick (no handler runs), so that the transport can hand
    /// requests over one at a time in arrival order.
    func admit(_ head: RequestHead, body: BodyRead, audit: inout AuditRecord) -> Admission {
        let json = Self.wantsJSON(head)
        if stopping.load(ordering: .relaxed) {
            audit.errorKind = "stopping"
            return .refused(label: "other", busy(json: json, message: "luaexecd is stopping; retry in a moment\n"))
        }
        if let problem = head.pathProblem {
            // The web server's configuration, not the client, is usually at fault: say which variable.
            audit.errorKind = "path"
            return .refused(label: "other", Self.plain(400, problem + "\n", json: json))
        }
        if let name = head.headers.repeated(among: Self.singleValuedNames, bits: Self.singleValuedBits) {
            // Which of two tokens or two interrupt keys was meant? Whatever the answer, one
            // reader (a proxy, a log) could take the other: refused before anything is read.
            let spelt = Self.singleValued.first { $0.lowercased() == name } ?? name
            audit.errorKind = "header"
            return .refused(label: "other", Self.plain(400, "the \(spelt) header is given more than once; send it once\n", json: json))
        }
        if head.headers.mayHave(Self.interruptKeyBits), let key = head.headers["lua-interrupt-key"], !Self.isInterruptKey(key) {
            // Whatever the route: a request that names itself wrongly is told so, not answered
            // as if the key were fine because it did not come to be queued (a check, an admin call).
            audit.errorKind = "header"
            return .refused(label: "other", Self.plain(400, "the Lua-Interrupt-Key header must be \(Self.interruptKeyRule)\n", json: json))
        }
        guard let (route, rest, taking) = Self.match(head) else {
            return .refused(label: "other", Self.plain(404, "no such endpoint: \(head.shownPath)\n", json: json))
        }
        audit.kind = route.kind
        let identity: TokenIdentity
        switch identify(head, json: json, audit: &audit) {
        case .refused(let refusal): return .refused(label: route.label ?? "unknown", refusal)
        case .token(let found): identity = found
        }
        if case .scope(let scope) = route.access,
            let refusal = require(scope, of: identity, json: json, audit: &audit)
        {
            return .refused(label: route.label ?? "unknown", refusal)
        }
        let call = Call(head: head, body: body, identity: identity, rest: String(Substring(rest)), json: json)
        guard let taking else {
            return .refused(
                label: route.label ?? "unknown",
                Self.methodNotAllowed(head.method, allow: Self.allowed(route), json: json || route.answersJSON))
        }
        if head.headers.mayHave(Self.checkBits), head.headers.withValue(of: "lua-check", { $0 != nil }),
            let refusal = Self.nothingToCheck(taking, rest: call.rest, json: json || taking.answersJSON)
        {
            audit.errorKind = "header"
            return .refused(label: taking.label ?? endpointLabel(call.rest), refusal)
        }
        return .admitted(label: taking.label ?? endpointLabel(call.rest), route: taking, call: call)
    }

    /// The caller's token name and scopes, so that a client (the web page) shows only what the
    /// token may do: `{"name":"ops","scopes":["exec"]}`. Never the secret.
    func whoami(_ identity: TokenIdentity) -> Response {
        var json = JSONWriter()
        json.raw("{\"name\":")
        json.string(identity.name)
        json.raw(",\"scopes\":[")
        for (index, scope) in identity.scopes.sorted().enumerated() {
            if index > 0 { json.raw(",") }
            json.string(scope.rawValue)
        }
        json.raw("]}")
        return Self.json(200, String(decoding: json.bytes, as: UTF8.self))
    }

    func interactive(_ call: Call, audit: inout AuditRecord) -> Reply {
        guard options.interactive else {
            return .answer(Self.plain(404, "no such endpoint: \(call.head.shownPath)\n", json: call.json))
        }
        let body: [UInt8]
        switch wholeBody(call.body, json: call.json) {
        case .refused(let refusal): return .answer(refusal)
        case .read(let bytes): body = bytes
        }
        audit.body = body
        // SPEC E11: a chunk with arguments, and perhaps its name, in a JSON body.
        var (chunk, arguments, named): ([UInt8], [LuaValue]?, String?) = (body, nil, nil)
        if call.head.headers.withValue(of: "content-type", CallBody.isCall(contentType:)) {
            switch CallBody.parse(body) {
            case .failure(let error): return .answer(Self.plain(400, "\(error)\n", json: call.json))
            case .success(let parsed): (chunk, arguments, named) = (parsed.chunk, parsed.arguments, parsed.name)
            }
        }
        let given = named ?? call.head.headers["lua-chunk-name"]
        if let given, !Self.isChunkName(given) {
            return .answer(Self.plain(
                400, "the Lua-Chunk-Name header must be 1 to 256 printable characters (e.g. @tools/setup.lua)\n",
                json: call.json))
        }
        let chunkName = given ?? Self.interactive
        if let mode = call.head.headers["lua-check"] {
            let json = call.json
            return .later { [self] audit in check(mode, chunk: chunk, chunkName: chunkName, json: json, audit: &audit) }
        }
        let (json, tokenName) = (call.json, call.identity.name)
        // Streamed (SPEC E13), the final event's results are typed trees when the client takes
        // JSON too (`Accept: text/event-stream, application/json`: the REPL, the page), else as
        // `tostring` shows them (E4's text, in E5's shape: `luaexec eval`, curl).
        let typed = json && !(EventStream.wanted(call.head) && !Self.accepts(call.head, "application/json"))
        // SPEC O11: each frame's locals in the traceback.
        let traceback = call.head.headers["lua-traceback"]
        if let traceback, traceback.lowercased() != "locals" {
            // Said, not ignored: a client that asked for locals (or an nginx from 1.23 on, which
            // joins a header given twice into "locals, locals") would get a traceback without them.
            return .answer(Self.plain(
                400, "the Lua-Traceback header takes one value, locals (each frame's locals in the traceback)\n",
                json: call.json))
        }
        let locals = traceback != nil
        return .evaluating(label: tokenName) { [self] vm, audit in
            vm.caller = .request(token: tokenName)
            vm.tracebackLocals = locals
            let evaluation = vm.evaluate(chunk, chunkName: chunkName, rendering: typed ? .tree : .text, arguments: arguments)
            return .evaluation(evaluation) { [self] evaluation, _, audit in render(evaluation, json: json, audit: &audit) }
        }
    }

    /// SPEC E9: a name for error messages, tracebacks and `debug.getinfo().source`, never
    /// evaluated; `@file` and `=name` as Lua's own convention has them.
    static func isChunkName(_ name: String) -> Bool {
        (1...256).contains(name.utf8.count) && name.utf8.allSatisfy { $0 >= 0x20 && $0 != 0x7F }
    }

    /// The body, or the answer to send instead.
    enum Body {
        case read([UInt8])
        case refused(Response)
    }

    /// Reads the whole body within `exec.max_body`: 413 above it, 400 when it ends before its
    /// declared length (never run part of a chunk).
    func wholeBody(_ read: BodyRead, json: Bool) -> Body {
        let limit = options.maxBodySize
        switch read {
        case .tooLarge: return .refused(Self.plain(413, "the request body exceeds the limit of \(limit) bytes\n", json: json))
        case .incomplete: return .refused(Self.plain(400, "the request body ended before its declared length\n", json: json))
        case .complete(let bytes): return .read(bytes)
        }
    }

    /// The token of the request, or the refusal to send: 401/400 as RFC 6750 says, or 429 for
    /// an address that keeps failing (SPEC T6). A valid token is served whatever its address
    /// did, so that clients that authenticate correctly are never slowed.
    func identify(_ head: RequestHead, json: Bool, audit: inout AuditRecord) -> Identified {
        let failure: AuthFailure
        switch authenticate(head) {
        case .success(let identity):
            audit.tokenName = identity.name
            return .token(identity)
        case .failure(let denied):
            failure = denied
        }
        if let wait = throttle.blocked(head.clientAddress) {
            audit.errorKind = "throttled"
            countAuthFailure("throttled")
            let seconds = max(1, Int((wait.milliseconds / 1000).rounded(.up)))
            var response = Self.plain(
                429, "too many failed authentications from this address; retry in \(seconds) s\n", json: json)
            response.headers.append(("Retry-After", String(seconds)))
            return .refused(response)
        }
        if failure != .missingCredentials { throttle.recordFailure(head.clientAddress) }
        countAuthFailure(Self.reason(failure))
        audit.errorKind = "auth"
        return .refused(Self.authFailure(failure, json: json))
    }

    /// The `reason` label of `luaexec_auth_failures_total`: RFC 6750's error codes.
    static func reason(_ failure: AuthFailure) -> String {
        switch failure {
        case .missingCredentials: "missing_credentials"
        case .invalidRequest: "invalid_request"
        case .invalidToken: "invalid_token"
        case .insufficientScope: "insufficient_scope"
        }
    }

    /// Who sent a request, or the answer that refuses it.
    enum Identified {
        case token(TokenIdentity)
        case refused(Response)
    }

    /// 403 `insufficient_scope` unless `identity` may act where `scope` is needed; records the
    /// scope in the audit line either way.
    func require(_ scope: Scope, of identity: TokenIdentity, json: Bool, audit: inout AuditRecord) -> Response? {
        audit.scope = scope.rawValue
        guard identity.permits(scope) else {
            audit.errorKind = "scope"
            countAuthFailure("insufficient_scope")
            return Self.authFailure(.insufficientScope(scope), json: json)
        }
        return nil
    }

    /// Whom the request's bearer token identifies; the token from the header or the query (never
    /// both).
    private func authenticate(_ head: RequestHead) -> Result<TokenIdentity, AuthFailure> {
        let queryTokens = QueryString.values(of: "AuthToken", in: head.query)
        // Nearly every request: an Authorization header and no AuthToken. Its token is read and
        // looked up where nginx's bytes lie, with no string made for the header or the token.
        if queryTokens.isEmpty {
            let fromHeader = head.headers.withValue(of: "authorization") { header in
                header.map { header in
                    BearerCredentials.token(inAuthorization: header).flatMap { token in
                        authenticator.identify(secret: UnsafeBufferPointer(rebasing: header[token]))
                    }
                }
            }
            if let fromHeader { return fromHeader }
        }
        switch BearerCredentials.extract(authorization: head.headers["authorization"], queryTokens: queryTokens) {
        case .failure(let failure): return .failure(failure)
        case .success(nil): return .failure(.missingCredentials)
        case .success(let token?): return authenticator.identify(token)
        }
    }

    /// The response for an evaluation, a chunk's or an action's (SPEC E4–E7).
    func render(_ evaluation: Evaluation, json: Bool, audit: inout AuditRecord) -> Response {
        recordEvaluation(nanoseconds: evaluation.elapsedNanoseconds)
        let (response, error) = Self.render(evaluation, json: json)
        if let error { audit.errorKind = error.rawValue }
        return response
    }

    static func render(_ evaluation: Evaluation, json: Bool) -> (response: Response, error: LuaFailure.Kind?) {
        let rendered = json ? EvaluationRenderer.json(evaluation) : EvaluationRenderer.text(evaluation)
        var headers: [(name: String, value: String)] = [
            ("Content-Type", json ? "application/json" : "text/plain; charset=utf-8"),
            ("Cache-Control", "no-store"),
            ("Server-Timing", EvaluationRenderer.serverTiming(nanoseconds: evaluation.elapsedNanoseconds)),
        ]
        if let error = rendered.error { headers.append(("X-Lua-Error", error.rawValue)) }
        return (Response(status: rendered.status, headers: headers, body: rendered.body), rendered.error)
    }

    /// `path` without `prefix`, which it starts with: cut by bytes, not by characters, which
    /// would walk the grapheme clusters of every request's path.
    static func path(_ path: String, after prefix: String) -> String {
        String(Substring(path.utf8.dropFirst(prefix.utf8.count)))
    }

    /// JSON answers: asked for, or Server-Sent Events asked for (their final event is the JSON,
    /// and an answer before the stream, a refusal, is JSON too).
    static func wantsJSON(_ head: RequestHead) -> Bool {
        guard let accept = head.headers["accept"] else { return false }
        // One pass: every request reads it.
        return accept.split(separator: ",").contains { range in
            let media = range.split(separator: ";").first?.trimmingWhitespace().lowercased()
            return media == "application/json" || media == EventStream.mediaType
        }
    }

    /// Whether the request's `Accept` names `media` (lower case), parameters aside.
    static func accepts(_ head: RequestHead, _ media: String) -> Bool {
        guard let accept = head.headers["accept"] else { return false }
        return accept.split(separator: ",").contains { range in
            range.split(separator: ";").first?.trimmingWhitespace().lowercased() == media
        }
    }

    /// A short message response; every response from the API is `no-store`.
    static func plain(_ status: Int, _ message: String, json: Bool, kind: String? = nil) -> Response {
        var headers: [(name: String, value: String)] = [("Cache-Control", "no-store")]
        let body: [UInt8]
        if json {
            var writer = JSONWriter()
            writer.raw("{\"ok\":false,\"error\":{\"kind\":")
            writer.string(kind ?? "http")
            writer.raw(",\"message\":")
            writer.string(String(message.dropLast(message.hasSuffix("\n") ? 1 : 0)))
            writer.raw("}}")
            body = writer.bytes
            headers.insert(("Content-Type", "application/json"), at: 0)
        } else {
            body = Array(message.utf8)
            headers.insert(("Content-Type", "text/plain; charset=utf-8"), at: 0)
        }
        if let kind { headers.append(("X-Lua-Error", kind)) }
        return Response(status: status, headers: headers, body: body)
    }

    /// 405 with the methods the endpoint takes.
    static func methodNotAllowed(_ method: String, allow: String, json: Bool) -> Response {
        var response = plain(405, "method \(method) is not allowed here; use \(allow)\n", json: json)
        response.headers.append(("Allow", allow))
        return response
    }

    /// 503 `busy` with `Retry-After` (SPEC L4).
    func busy(json: Bool, message: String = "the Lua state is busy; retry later\n") -> Response {
        var response = Self.plain(503, message, json: json, kind: "busy")
        response.headers.append(("Retry-After", String(options.retryAfterSeconds)))
        return response
    }

    /// RFC 6750 §3: the status and `WWW-Authenticate` challenge for each failure.
    static func authFailure(_ failure: AuthFailure, json: Bool) -> Response {
        let realm = "Bearer realm=\"luaexec\""
        let (status, challenge, message): (Int, String, String)
        switch failure {
        case .missingCredentials:
            (status, challenge, message) = (401, realm, "authentication required: send Authorization: Bearer <token>")
        case .invalidToken:
            (status, challenge, message) = (
                401, realm + ", error=\"invalid_token\"", "the token is unknown, revoked or expired"
            )
        case .invalidRequest(let reason):
            (status, challenge, message) = (400, realm + ", error=\"invalid_request\"", reason)
        case .insufficientScope(let scope):
            // RFC 6750 §3: `scope` lists the scopes that would do, space-separated.
            let sufficient: String
            switch scope {
            case .endpoint, .action: sufficient = scope.rawValue + " exec"
            default: sufficient = scope.rawValue
            }
            (status, challenge, message) = (
                403, realm + ", error=\"insufficient_scope\", scope=\"\(sufficient)\"",
                "the token lacks the '\(scope.rawValue)' scope" + (sufficient == scope.rawValue ? "" : " (or 'exec')")
            )
        }
        var response = plain(status, message + "\n", json: json)
        response.headers.append(("WWW-Authenticate", challenge))
        return response
    }
}

extension Substring {
    func trimmingWhitespace() -> Substring {
        var trimmed = self
        while let first = trimmed.first, first == " " || first == "\t" { trimmed.removeFirst() }
        while let last = trimmed.last, last == " " || last == "\t" { trimmed.removeLast() }
        return trimmed
    }
}
