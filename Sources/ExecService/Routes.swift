import AccessControl
import HTTPCore
import LuaRuntime

/// One row of the route table: a URL luaexecd answers, the methods it takes, the scope it
/// needs, whether it runs on the Lua state, its metrics label and its handler. The service
/// matches a request against the table once (`ExecService.routes`); the metrics take the row's
/// label, and docs/api.md's table is checked against the rows (ExecServiceTests.documented).
/// A class: the table is scanned for every request, and a row of seven fields (arrays, strings,
/// a closure) copied at each step cost a retain and release per field (bench/NOTES.md).
final class Route: Sendable {
    enum Path: Sendable, Equatable {
        /// This path and no other.
        case exact(String)
        /// Every path under this prefix; the rest is the handler's argument (`Call.rest`).
        case under(String)
        /// A path under this prefix that ends with `/` and this word (`.../<name>/versions`);
        /// what lies between is the handler's argument (`Call.rest`), never empty.
        case item(under: String, then: String)
    }

    enum Access: Sendable, Equatable {
        /// Any valid token.
        case anyToken
        /// A token that permits the scope (an `admin` token permits every scope).
        case scope(Scope)
        /// The handler decides from what the request names (`endpoint:NAME`, `action:NAME`,
        /// with `exec` for all): the scope is known only once the request is read.
        case named
    }

    /// The methods taken; empty: the handler decides (an endpoint takes what its script does).
    let methods: [String]
    let path: Path
    let access: Access
    /// The handler may answer from the Lua state: it is then queued with every other request
    /// for the state, in arrival order (SPEC E8), by the one scheduler (`LuaExecutor`).
    let takesState: Bool
    /// The request's kind in the audit trail: `exec`, `action`, `endpoint`, `admin`, `metrics`,
    /// `console`, or `whoami` (`other` for a path outside the table).
    let kind: String
    /// `luaexec_requests_total`'s `endpoint` label; nil: the handler's (an endpoint's name, or
    /// `unknown`, so that a scanner cannot grow the label set).
    let label: String?
    /// One line for docs/api.md.
    let summary: String
    /// It takes `Lua-Check: syntax` (SPEC E12): it compiles only when asked. Every other row
    /// refuses the header with 400, so that a client that means a dry run never gets a run or a
    /// change (`ExecService.nothingToCheck`).
    let takesCheck: Bool
    let handler: @Sendable (ExecService, Call, inout AuditRecord) -> Reply

    init(
        _ methods: [String], _ path: Path, _ access: Access, state: Bool = false, check: Bool = false, kind: String,
        label: String?, _ summary: String,
        _ handler: @escaping @Sendable (ExecService, Call, inout AuditRecord) -> Reply
    ) {
        self.methods = methods
        self.path = path
        self.access = access
        self.takesState = state
        self.takesCheck = check
        self.kind = kind
        self.label = label
        self.summary = summary
        self.handler = handler
        // The admin, console and whoami APIs are for programs (the client, the page): JSON
        // whatever the client's Accept. The exec API and the metrics answer as asked.
        self.answersJSON = kind == "admin" || kind == "console" || kind == "whoami"
    }

    /// Its answers, refusals included, are JSON whatever the request's `Accept`.
    let answersJSON: Bool

    /// The prefix of a row that takes a path argument (`.under`, `.item`); nil for `.exact`.
    var prefix: String? {
        switch path {
        case .exact: nil
        case .under(let prefix), .item(let prefix, _): prefix
        }
    }

    /// The rest of `path` after this row's prefix (`""` for an exact match), or nil when the row
    /// does not match.
    func match(_ path: String) -> Substring.UTF8View? {
        switch self.path {
        case .exact(let wanted):
            return path == wanted ? Substring("").utf8 : nil
        case .under(let prefix):
            guard path.utf8.starts(with: prefix.utf8) else { return nil }
            return Substring(path).utf8.dropFirst(prefix.utf8.count)
        case .item(let prefix, let word):
            let suffix = "/" + word
            guard path.utf8.count > prefix.utf8.count + suffix.utf8.count, path.utf8.starts(with: prefix.utf8),
                path.utf8.reversed().starts(with: suffix.utf8.reversed())
            else { return nil }
            return Substring(path).utf8.dropFirst(prefix.utf8.count).dropLast(suffix.utf8.count)
        }
    }

    /// The path as docs/api.md writes it: `/api/v1/admin/config/<path>`.
    var pattern: String {
        switch path {
        case .exact(let wanted): wanted
        case .under(let prefix): prefix + "<" + (Self.argumentName(prefix) ?? "rest") + ">"
        case .item(let prefix, let word): prefix + "<" + (Self.argumentName(prefix) ?? "rest") + ">/" + word
        }
    }

    private static func argumentName(_ prefix: String) -> String? {
        switch prefix {
        case "/api/v1/exec/": "name"
        case "/api/v1/admin/config/": "path"
        case "/api/v1/admin/tokens/": "name"
        case "/api/v1/admin/scripts/": "name"
        default: nil
        }
    }
}

/// What a handler is given: the request, its body as the transport read it, who sent it, and
/// the rest of the path after the row's prefix.
struct Call: Sendable {
    let head: RequestHead
    let body: BodyRead
    let identity: TokenIdentity
    let rest: String
    /// The client asked for JSON (`Accept: application/json`).
    let json: Bool
}

/// A handler's answer: now, or from the Lua state once the requests before it are done.
enum Reply {
    case answer(Response)
    /// An answer that needs no state but may take a while to make (a `Lua-Check` compile): made
    /// after the request is handed over, so that the requests behind it are handed over
    /// meanwhile and the transport's stand-by thread can take the poller's place.
    case later((inout AuditRecord) -> Response)
    /// Runs `work` on the state, in arrival order, under the time limit; it makes the answer
    /// there. 503 busy instead when the queue is full or the wait passes `limits.queue_timeout`.
    case onState(label: String?, (LuaVM, inout AuditRecord) -> Response)
    /// As `onState`, for a job that evaluates a chunk or a registered function: the chunk may
    /// wait in `sleep` (SPEC V10), and the job's answer is made once it ends.
    case evaluating(label: String?, (LuaVM, inout AuditRecord) -> Evaluated)
    /// Replaces the state (SPEC M3), in arrival order like any job.
    case reset
}

/// What a job that evaluates made: its answer already (nothing was evaluated), or an evaluation
/// and how to answer from it once it has ended, which is later when it waits in `sleep`.
enum Evaluated {
    case answer(Response)
    case evaluation(Evaluation, then: (Evaluation, LuaVM, inout AuditRecord) -> Response)
}

extension ExecService {
    static let apiPrefix = "/api/v1/"

    /// Every URL luaexecd answers. First match wins; rows with the same path form a group, and
    /// a method no row of the group takes is answered 405 with the group's methods in `Allow`.
    /// A path outside the table is 404 before any token is read; under `/api/v1/` the token is
    /// checked before anything else: whether a name exists is nobody's business but a token
    /// holder's.
    static let routes: [Route] = [
        Route(
            ["GET", "POST"], .exact(interactivePath), .scope(.exec), state: true, check: true, kind: "exec",
            label: interactive,
            "evaluate the body as a Lua chunk in the resident state (off: exec.interactive)"
        ) { service, call, audit in service.interactive(call, audit: &audit) },
        Route(
            ["GET", "POST"], .exact(execPrefix + command), .named, state: true, kind: "action", label: command,
            "call an action (Action URLs, on: exec.actions); scope action:NAME or exec"
        ) { service, call, audit in service.command(call, audit: &audit) },
        Route(
            [], .under(execPrefix), .named, state: true, kind: "endpoint", label: nil,
            "call the endpoint a script registered with http.listen; scope endpoint:NAME or exec"
        ) { service, call, audit in service.endpoint(call, audit: &audit) },
        Route(
            ["POST"], .exact(consolePrefix + "complete"), .scope(.exec), state: true, kind: "console",
            label: "console/complete",
            "the names that complete the text before the cursor (the body), read from the state; nothing runs"
        ) { service, call, audit in service.consoleComplete(call, audit: &audit) },
        Route(
            ["POST"], .exact(consolePrefix + "inspect"), .scope(.exec), state: true, kind: "console",
            label: "console/inspect",
            "what a name (the body) is: its type, a function's parameters and source, a table's size; nothing runs"
        ) { service, call, audit in service.consoleInspect(call, audit: &audit) },
        Route(
            ["POST"], .exact(consolePrefix + "interrupt"), .anyToken, kind: "console", label: "console/interrupt",
            "end this token's own evaluation sent with Lua-Interrupt-Key: K (?key=K), running, waiting in sleep or queued"
        ) { service, call, _ in service.consoleInterrupt(call) },
        Route(
            ["GET"], .exact(consolePrefix + "globals"), .scope(.exec), state: true, kind: "console",
            label: "console/globals", "the state's own globals (those a fresh state has not) and their types"
        ) { service, call, _ in service.consoleGlobals(call) },
        Route(
            ["GET"], .exact(metricsPath), .scope(.metrics), kind: "metrics", label: "metrics",
            "metrics in the Prometheus text format"
        ) { service, call, audit in .answer(service.metrics(call)) },
        Route(
            ["GET"], .exact(whoamiPath), .anyToken, kind: "whoami", label: "whoami",
            "the calling token's name and scopes"
        ) { service, call, _ in .answer(service.whoami(call.identity)) },
        Route(
            ["GET"], .exact(adminPrefix + "status"), .scope(.admin), kind: "admin", label: "admin/status",
            "the daemon's status: version, uptime, queue, memory, the running chunk"
        ) { service, _, _ in .answer(json(200, service.statusJSON())) },
        Route(
            ["GET"], .exact(adminPrefix + "endpoints"), .scope(.admin), kind: "admin", label: "admin/endpoints",
            "the registry: endpoints and actions, who registered them, calls and errors"
        ) { service, _, _ in .answer(json(200, service.endpointsJSON())) },
        Route(
            ["POST"], .exact(adminPrefix + "interrupt"), .scope(.admin), kind: "admin", label: "admin/interrupt",
            "end the running chunk as interrupted; ?id=N ends the request waiting in sleep that the status lists as N;"
                + " ?key=K the evaluation sent with Lua-Interrupt-Key: K, running, waiting or queued"
        ) { service, call, _ in service.interrupt(call) },
        Route(
            ["POST"], .exact(adminPrefix + "reset"), .scope(.admin), state: true, kind: "admin", label: "admin/reset",
            "replace the Lua state with a fresh one and run the init scripts again"
        ) { _, _, _ in .reset },
        Route(
            ["GET"], .exact(adminPrefix + "config"), .scope(.admin), kind: "admin", label: "admin/config",
            "the config store, every path and value"
        ) { service, call, audit in .answer(service.configListing()) },
        Route(
            ["GET"], .under(adminPrefix + "config/"), .scope(.admin), kind: "admin", label: "admin/config",
            "one config value"
        ) { service, call, audit in .answer(service.configValue(call)) },
        Route(
            ["PUT"], .under(adminPrefix + "config/"), .scope(.admin), state: true, kind: "admin", label: "admin/config",
            "set a config value: {\"value\": ...}; saved, then the path's callbacks run"
        ) { service, call, audit in service.setConfig(call, audit: &audit) },
        Route(
            ["DELETE"], .under(adminPrefix + "config/"), .scope(.admin), state: true, kind: "admin", label: "admin/config",
            "unset a config value; the path's callbacks run"
        ) { service, call, audit in service.unsetConfig(call) },
        Route(
            ["GET"], .exact(adminPrefix + "tokens"), .scope(.admin), kind: "admin", label: "admin/tokens",
            "every token: name, scopes, expiry, last use (never a secret)"
        ) { service, call, audit in .answer(service.tokenListing()) },
        Route(
            ["POST"], .exact(adminPrefix + "tokens"), .scope(.admin), kind: "admin", label: "admin/tokens",
            "make a token: {\"name\", \"scopes\", \"expires\"}; its secret is answered once"
        ) { service, call, audit in .answer(service.createToken(call, audit: &audit)) },
        Route(
            ["DELETE"], .under(adminPrefix + "tokens/"), .scope(.admin), kind: "admin", label: "admin/tokens",
            "revoke a token"
        ) { service, call, audit in .answer(service.revokeToken(call, audit: &audit)) },
        Route(
            ["GET"], .exact(adminPrefix + "scripts"), .scope(.admin), kind: "admin", label: "admin/scripts",
            "every stored script: version, SHA-256, enabled, who installed it, its last run, what it registered"
        ) { service, _, _ in .answer(service.scriptListing()) },
        Route(
            ["GET"], .item(under: adminPrefix + "scripts/", then: "versions"), .scope(.admin), kind: "admin",
            label: "admin/scripts", "the kept versions of a stored script, newest first"
        ) { service, call, _ in .answer(service.scriptVersions(call)) },
        Route(
            ["POST"], .item(under: adminPrefix + "scripts/", then: "rollback"), .scope(.admin), state: true, kind: "admin",
            label: "admin/scripts", "run the kept version before the current one (or ?version=N) and make it current"
        ) { service, call, audit in service.rollbackScript(call, audit: &audit) },
        Route(
            ["POST"], .item(under: adminPrefix + "scripts/", then: "enable"), .scope(.admin), state: true, kind: "admin",
            label: "admin/scripts", "run a disabled script's current version; enabled if the run succeeds"
        ) { service, call, audit in service.enableScript(call, audit: &audit) },
        Route(
            ["POST"], .item(under: adminPrefix + "scripts/", then: "disable"), .scope(.admin), state: true, kind: "admin",
            label: "admin/scripts", "withdraw what the script registered; kept, and run no more until enabled"
        ) { service, call, audit in service.disableScript(call, audit: &audit) },
        Route(
            ["POST"], .item(under: adminPrefix + "scripts/", then: "check"), .scope(.admin), check: true, kind: "admin",
            label: "admin/scripts", "compile the body as the script would be compiled, under its name; nothing runs or is kept"
        ) { service, call, audit in service.checkScript(call, audit: &audit) },
        Route(
            ["GET"], .under(adminPrefix + "scripts/"), .scope(.admin), kind: "admin", label: "admin/scripts",
            "a stored script's source (text), or its record (Accept: application/json); ?version=N for a kept one"
        ) { service, call, _ in .answer(service.scriptSource(call)) },
        Route(
            ["PUT"], .under(adminPrefix + "scripts/"), .scope(.admin), state: true, kind: "admin", label: "admin/scripts",
            "install the body as the script's next version: compiled, run, kept only if the run succeeds; ?enabled=false stores it disabled, not run"
        ) { service, call, audit in service.putScript(call, audit: &audit) },
        Route(
            ["DELETE"], .under(adminPrefix + "scripts/"), .scope(.admin), state: true, kind: "admin", label: "admin/scripts",
            "withdraw what the script registered and remove it with every kept version"
        ) { service, call, audit in service.deleteScript(call, audit: &audit) },
        Route(
            ["GET"], .exact(adminPrefix + "audit"), .scope(.admin), kind: "admin", label: "admin/audit",
            "the audit trail, newest first, filtered by token, kind, outcome and time"
        ) { service, call, _ in .answer(service.auditRecords(call.head)) },
        Route(
            ["GET"], .exact(adminPrefix + "audit/verify"), .scope(.admin), kind: "admin", label: "admin/audit",
            "verify the audit trail's HMAC chain"
        ) { service, _, _ in .answer(service.auditVerification()) },
        Route(
            [], .under(adminPrefix), .scope(.admin), kind: "admin", label: "admin/unknown",
            "anything else under admin/: 404"
        ) { _, call, _ in .answer(plain(404, "no such endpoint: \(call.head.shownPath)\n", json: true)) },
    ]

    /// The first row whose path matches, the rest of the path, and the row of its group that
    /// takes the method (nil: 405).
    static func match(_ head: RequestHead) -> (route: Route, rest: Substring.UTF8View, taking: Route?)? {
        for (index, route) in routes.enumerated() {
            guard let rest = route.match(head.path) else { continue }
            if route.methods.isEmpty || route.methods.contains(head.method) { return (route, rest, route) }
            let taking = routes[(index + 1)...].first { other in
                other.path == route.path && (other.methods.isEmpty || other.methods.contains(head.method))
            }
            return (route, rest, taking)
        }
        return nil
    }

    /// The methods of `route`'s group, for `Allow`.
    static func allowed(_ route: Route) -> String {
        routes.filter { $0.path == route.path }.flatMap(\.methods).joined(separator: ", ")
    }
}

extension ExecService {
    /// The route table as docs/api.md shows it, one line a row (ExecServiceTests.documented
    /// checks that the document holds exactly this).
    static var routeTableMarkdown: String {
        var lines = [
            "| method | path | token needs | on the Lua state | metrics label | what it does |",
            "|---|---|---|---|---|---|",
        ]
        for route in routes {
            let methods = route.methods.isEmpty ? "any" : route.methods.joined(separator: ", ")
            let access: String
            switch route.access {
            case .anyToken: access = "any valid token"
            case .scope(let scope): access = "`\(scope.rawValue)`"
            case .named: access = route.kind == "action" ? "`action:NAME` or `exec`" : "`endpoint:NAME` or `exec`"
            }
            let label = route.label.map { "`\($0)`" } ?? "the endpoint's name, or `unknown`"
            lines.append(
                "| \(methods) | `\(route.pattern)` | \(access) | \(route.takesState ? "yes, in arrival order" : "no") | \(label) | \(route.summary) |")
        }
        return lines.joined(separator: "\n") + "\n"
    }
}
