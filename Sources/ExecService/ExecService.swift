import AccessControl
import Crypto
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

        public init(maxBodySize: Int = 1 << 20, retryAfterSeconds: Int = 1, interactive: Bool = true) {
            self.maxBodySize = maxBodySize
            self.retryAfterSeconds = retryAfterSeconds
            self.interactive = interactive
        }
    }

    /// luaexec's version, reported by the admin status.
    public static let version = "0.1.0"

    static let execPrefix = "/api/v1/exec/"
    static let adminPrefix = "/api/v1/admin/"
    static let interactive = "interactive.lua"

    let executor: LuaExecutor
    let authenticator: Authenticator
    let throttle: FailureThrottle
    // Read by every request, written by a config reload: atomics, whose relaxed loads are plain
    // loads. A lock, even a read-write one, writes a shared cache line on every request.
    private let maxBodySize: Atomic<Int>
    private let retryAfterSeconds: Atomic<Int>
    private let interactiveEnabled: Atomic<Bool>
    /// Set once SIGTERM arrives: every later request gets 503 (SPEC O3).
    private let stopping = Atomic(false)
    let logger: Logger
    let started = MonotonicInstant.now()
    let outcomes = OutcomeCounters()

    /// The options in force; setting them (a config reload) applies to the next request.
    public var options: Options {
        get {
            Options(
                maxBodySize: maxBodySize.load(ordering: .relaxed),
                retryAfterSeconds: retryAfterSeconds.load(ordering: .relaxed),
                interactive: interactiveEnabled.load(ordering: .relaxed))
        }
        set {
            maxBodySize.store(newValue.maxBodySize, ordering: .relaxed)
            retryAfterSeconds.store(newValue.retryAfterSeconds, ordering: .relaxed)
            interactiveEnabled.store(newValue.interactive, ordering: .relaxed)
        }
    }

    /// Refuses every request from now on with 503 and `Retry-After`: luaexecd is stopping, and
    /// a client should retry against the instance that replaces it.
    public func stopTakingRequests() {
        stopping.store(true, ordering: .relaxed)
    }

    public init(
        executor: LuaExecutor, authenticator: Authenticator, throttle: FailureThrottle = FailureThrottle(),
        options: Options = Options(), logger: Logger
    ) {
        self.executor = executor
        self.authenticator = authenticator
        self.throttle = throttle
        maxBodySize = Atomic(options.maxBodySize)
        retryAfterSeconds = Atomic(options.retryAfterSeconds)
        interactiveEnabled = Atomic(options.interactive)
        self.logger = logger
    }

    /// Answers one request. `readBody` is called at most once, and only for an authenticated
    /// request: a rejected request never has its body read, let alone run.
    public func respond(to head: RequestHead, readBody: (_ limit: Int) -> BodyRead) -> Response {
        let start = MonotonicInstant.now()
        var audit = AuditRecord(head: head)
        let response = route(head, readBody: readBody, audit: &audit)
        audit.finish(response: response, duration: MonotonicInstant.now().duration(since: start))
        audit.log(to: logger)
        let outcome = audit.errorKind ?? (response.status == 200 ? "ok" : "http_\(response.status)")
        outcomes.increment(outcome)
        return response
    }

    private func route(_ head: RequestHead, readBody: (Int) -> BodyRead, audit: inout AuditRecord) -> Response {
        let json = Self.wantsJSON(head)
        let options = options
        if stopping.load(ordering: .relaxed) {
            audit.errorKind = "stopping"
            return busy(json: json, message: "luaexecd is stopping; retry in a moment\n")
        }
        if head.path.hasPrefix(Self.adminPrefix) {
            if let refusal = authorize(head, scope: .admin, json: json, audit: &audit) { return refusal }
            return admin(String(head.path.dropFirst(Self.adminPrefix.count)), head: head)
        }
        guard head.path.hasPrefix(Self.execPrefix) else {
            return Self.plain(404, "no such endpoint: \(head.path)\n", json: json)
        }
        let name = String(head.path.dropFirst(Self.execPrefix.count))
        guard name == Self.interactive, options.interactive else {
            return Self.plain(404, "no such endpoint: \(head.path)\n", json: json)
        }
        if let refusal = authorize(head, scope: .exec, json: json, audit: &audit) { return refusal }

        guard head.method == "GET" || head.method == "POST" else {
            return Self.methodNotAllowed(head.method, allow: "GET, POST", json: json)
        }

        let body: [UInt8]
        switch readBody(options.maxBodySize) {
        case .tooLarge:
            return Self.plain(413, "the request body exceeds the limit of \(options.maxBodySize) bytes\n", json: json)
        case .incomplete:
            // Never run part of a chunk.
            return Self.plain(400, "the request body ended before its declared length\n", json: json)
        case .complete(let bytes):
            body = bytes
        }
        audit.body = body
        return evaluate(body, chunkName: name, json: json, audit: &audit)
    }

    /// The refusal for a request that may not act with `scope`, or nil when it may.
    ///
    /// An address that keeps failing is answered 429 (SPEC T6). A valid token is served whatever
    /// its address did, so that clients that authenticate correctly are never slowed.
    private func authorize(_ head: RequestHead, scope: Scope, json: Bool, audit: inout AuditRecord) -> Response? {
        let failure: AuthFailure
        switch authenticate(head, scope: scope) {
        case .allow(let identity):
            audit.tokenName = identity.name
            return nil
        case .deny(.insufficientScope(let needed)):
            return Self.authFailure(.insufficientScope(needed), json: json)
        case .deny(let denied):
            failure = denied
        }
        if let wait = throttle.blocked(head.clientAddress) {
            audit.errorKind = "throttled"
            let seconds = max(1, Int((wait.milliseconds / 1000).rounded(.up)))
            var response = Self.plain(
                429, "too many failed authentications from this address; retry in \(seconds) s\n", json: json)
            response.headers.append(("Retry-After", String(seconds)))
            return response
        }
        if failure != .missingCredentials { throttle.recordFailure(head.clientAddress) }
        audit.errorKind = "auth"
        return Self.authFailure(failure, json: json)
    }

    func authenticate(_ head: RequestHead, scope: Scope) -> AuthDecision {
        let queryTokens = QueryString.values(of: "AuthToken", in: head.query)
        switch BearerCredentials.extract(authorization: head.headers["authorization"], queryTokens: queryTokens) {
        case .failure(let failure):
            return .deny(failure)
        case .success(nil):
            return .deny(.missingCredentials)
        case .success(let token?):
            return authenticator.authenticate(token, requiring: scope)
        }
    }

    private func evaluate(_ body: [UInt8], chunkName: String, json: Bool, audit: inout AuditRecord) -> Response {
        let evaluation: Evaluation
        do {
            evaluation = try executor.perform(label: audit.tokenName) { vm in
                vm.evaluate(body, chunkName: chunkName, rendering: json ? .tree : .text)
            }
        } catch {
            audit.errorKind = "busy"
            return busy(json: json)
        }
        let (status, bytes) = json ? EvaluationRenderer.json(evaluation) : EvaluationRenderer.text(evaluation)
        var headers: [(name: String, value: String)] = [
            ("Content-Type", json ? "application/json" : "text/plain; charset=utf-8"),
            ("Cache-Control", "no-store"),
            ("Server-Timing", "lua;dur=" + EvaluationRenderer.milliseconds(evaluation.elapsed)),
        ]
        if case .failure(let failure) = evaluation.outcome {
            headers.append(("X-Lua-Error", failure.kind.rawValue))
            audit.errorKind = failure.kind.rawValue
        }
        return Response(status: status, headers: headers, body: bytes)
    }

    static func wantsJSON(_ head: RequestHead) -> Bool {
        guard let accept = head.headers["accept"] else { return false }
        return accept.split(separator: ",").contains { range in
            range.split(separator: ";").first?.trimmingWhitespace().lowercased() == "application/json"
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
            (status, challenge, message) = (
                403, realm + ", error=\"insufficient_scope\", scope=\"\(scope.rawValue)\"",
                "the token lacks the '\(scope.rawValue)' scope"
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
