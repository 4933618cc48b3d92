import SystemSupport

/// What one remote did for a command that may reach several (`luaexec eval`, `luaexec
/// script`): what to print and how the command ends.
public struct RemoteRun: Sendable {
    public enum Outcome: Sendable, Equatable {
        case ok
        /// The chunk failed in Lua (syntax, runtime, memory, timeout, interrupted): exit 1.
        case luaError(kind: String)
        /// `luaexec script diff`: the remote's script is not the local file: exit 1, as diff(1).
        case different
        /// No evaluation: unreachable, refused token, busy, changed key...: exit 2.
        case failed(String)
    }

    public var remote: String
    public var outcome: Outcome
    public var elapsed: Duration
    /// For standard output: the answer as the server renders it.
    public var output: [UInt8]
    /// For standard error.
    public var errors: String
    /// The summary's status for `ok` when "ok" says too little (`version 3`, `unchanged`).
    public var detail: String?

    public init(
        remote: String, outcome: Outcome = .ok, elapsed: Duration = .zero, output: [UInt8] = [], errors: String = ""
    ) {
        self.remote = remote
        self.outcome = outcome
        self.elapsed = elapsed
        self.output = output
        self.errors = errors
    }

    public var exitStatus: Int32 {
        switch outcome {
        case .ok: 0
        case .luaError, .different: 1
        case .failed: 2
        }
    }

    /// The summary's status column.
    public var summary: String {
        switch outcome {
        case .ok: detail ?? "ok"
        case .luaError(let kind): "\(kind) error"
        case .different: "differs"
        case .failed(let message): message
        }
    }
}

/// The kinds of SPEC E6 that are the chunk's own failure; `busy` and the rest are not.
let luaErrorKinds: Set<String> = ["syntax", "runtime", "memory", "timeout", "interrupted"]

/// What `GET /api/v1/whoami` says of a token: its name and scopes.
public struct TokenInfo: Sendable {
    public var name: String
    public var scopes: [String]

    public init?(_ answer: Answer) {
        guard answer.status == 200, let json = JSONValue.parse(answer.body), let name = json["name"]?.string,
            case .array(let items)? = json["scopes"]
        else { return nil }
        self.name = name
        scopes = items.compactMap(\.string)
    }
}

/// What a remote made of its token (`GET /api/v1/whoami`).
public enum TokenCheck: Sendable {
    case accepted(TokenInfo)
    /// 401: the token is unknown, revoked or expired.
    case refused
    /// Any other answer: the server is not a luaexec, or cannot answer as one now (nginx's 502
    /// while luaexecd is down).
    case unexpected(status: Int, contentType: String?)
}

extension Remote {
    /// Whether the remote takes the token, and as whose.
    public func checkToken() throws(ClientError) -> TokenCheck {
        let answer = try client.send("GET", "/api/v1/whoami", headers: ["Accept: application/json"])
        if let info = TokenInfo(answer) { return .accepted(info) }
        if answer.status == 401 { return .refused }
        return .unexpected(status: answer.status, contentType: answer.headers["content-type"])
    }

    public var client: HTTPSClient {
        var client = HTTPSClient(baseURL: url, pin: fingerprint, token: token)
        client.timeoutMilliseconds = timeoutMilliseconds
        return client
    }

    /// Runs `chunk` named `chunkName` (SPEC E9) and sorts the answer out; with `check`, only
    /// compiles it (SPEC E12: nothing runs).
    /// With `arguments` (JSON texts), the chunk gets them as `...` (SPEC E11).
    /// With `live` (text mode), the answer is streamed (SPEC E13): what the chunk prints goes to
    /// `live` as it prints it, and the run's output holds only the results.
    public func run(
        _ chunk: [UInt8], chunkName: String, json: Bool, check: Bool = false, arguments: [String]? = nil,
        live: (@Sendable ([UInt8]) -> Void)? = nil
    ) -> RemoteRun {
        let started = MonotonicInstant.now()
        // A header value ends at a line break: a file name with one is sent without it.
        var headers = ["Lua-Chunk-Name: " + String(chunkName.unicodeScalars.filter { $0.value >= 0x20 && $0.value != 0x7F })]
        if json { headers.append("Accept: application/json") }
        if check { headers.append("Lua-Check: syntax") }
        var body = chunk
        if let arguments {
            headers.append("Content-Type: " + CallBody.contentType)
            body = CallBody.body(chunk: chunk, arguments: arguments)
        }
        var run = RemoteRun(remote: name, outcome: .ok, elapsed: .zero, output: [], errors: "")
        let live = json || check ? nil : live
        var onBody: (([UInt8]) -> Void)?
        if let live {
            headers.append("Accept: text/event-stream")
            var reader = ServerSentEvents()
            onBody = { part in
                for event in reader.feed(part) where event.name == "output" {
                    if let bytes = JSONValue.parse(event.data)?.luaBytes { live(bytes) }
                }
            }
        }
        do {
            let answer = try client.send(
                "POST", "/api/v1/exec/interactive.lua", headers: headers, body: body, onBody: onBody)
            run.elapsed = MonotonicInstant.now().duration(since: started)
            if live != nil, answer.headers["content-type"] == "text/event-stream" {
                Self.streamed(answer, into: &run)
                return run
            }
            let kind = answer.headers["x-lua-error"]
            if answer.status == 200 {
                run.output = answer.body
            } else if let kind, luaErrorKinds.contains(kind) {
                run.outcome = .luaError(kind: kind)
                if json { run.output = answer.body } else { run.errors = "luaexec: \(kind) error\n" + answer.text }
            } else {
                let message = Self.refusal(answer)
                run.outcome = .failed(message)
                if json { run.output = answer.body } else { run.errors = "luaexec: \(name): \(message)\n" }
            }
        } catch {
            run.elapsed = MonotonicInstant.now().duration(since: started)
            let message = explain(error)
            run.outcome = .failed(message.split(separator: "\n").first.map(String.init) ?? message)
            run.errors = "luaexec: \(message)\n"
        }
        return run
    }

    /// A streamed answer's final event (its output went out as it came): the results as the text
    /// mode prints them (SPEC E4), or the error as the text mode writes it (E6).
    static func streamed(_ answer: Answer, into run: inout RemoteRun) {
        let final = ServerSentEvents.events(in: answer.body).last { $0.name == "result" || $0.name == "error" }
        guard let final, let body = JSONValue.parse(final.data) else {
            run.outcome = .failed("HTTP \(answer.status): the stream ended before its result")
            run.errors = "luaexec: the answer ended before its result (HTTP \(answer.status))\n"
            return
        }
        if final.name == "result", case .array(let results)? = body["results"] {
            // As E4: nothing, or a single nil, adds nothing; the rest joined by tabs.
            if results.isEmpty || (results.count == 1 && results[0] == .null) { return }
            var out: [UInt8] = []
            for (index, value) in results.enumerated() {
                if index > 0 { out.append(0x09) }
                out += value.luaBytes ?? Array("nil".utf8)
            }
            run.output = out
            return
        }
        let kind = body["error"]?["kind"]?.string ?? "runtime"
        var text = (body["error"]?["message"]?.string ?? "error") + "\n"
        if let traceback = body["error"]?["traceback"]?.string { text += traceback + "\n" }
        if luaErrorKinds.contains(kind) {
            run.outcome = .luaError(kind: kind)
            run.errors = "luaexec: \(kind) error\n" + text
        } else {
            run.outcome = .failed("HTTP \(answer.status): " + text.split(separator: "\n").first.map(String.init)!)
            run.errors = "luaexec: \(run.remote): \(text)"
        }
    }

    /// A refusal without an evaluation, in one line: `HTTP 401: the token is unknown, ...`.
    public static func refusal(_ answer: Answer) -> String {
        var text = answer.text
        if let parsed = JSONValue.parse(answer.body), let message = parsed["error"]?["message"]?.string { text = message }
        let line = text.split(separator: "\n").first.map(String.init) ?? ""
        return "HTTP \(answer.status)" + (line.isEmpty ? "" : ": " + line)
    }

    /// Why the remote did not take the token, in one line (empty when it did).
    public func explain(_ check: TokenCheck) -> String {
        switch check {
        case .accepted: ""
        case .refused: "\(name) (\(url)) refused the token (unknown, revoked or expired)"
        case .unexpected(let status, let type):
            "\(name) (\(url)) does not answer as a luaexec: HTTP \(status)\(type.map { " (\($0))" } ?? "") to GET /api/v1/whoami"
        }
    }

    /// What a person should know about a failed exchange with this remote, and what to do.
    public func explain(_ error: ClientError) -> String {
        switch error {
        case .connection(let message):
            return "cannot reach \(name) (\(url)): \(message)"
        case .timedOut(let milliseconds):
            return "\(name) (\(url)) sent no whole answer within \(ClientError.seconds(milliseconds)) s (--timeout): "
                + "the request reached it, and may still be running there"
        case .keyChanged(let pinned, let presented):
            return """
                the public key of \(name) (\(url)) is not the one you trusted; refusing to talk to it.
                  trusted:   \(pinned)
                  presented: \(presented ?? "(could not be read)")
                Someone may be intercepting the connection, or the appliance has a new certificate.
                If you know it has, trust the new key with:
                  luaexec login \(url) --name \(name) --fingerprint \(presented ?? "sha256//...")
                """
        }
    }
}

/// The shared state of one parallelMap.
private final class ParallelWork<R>: @unchecked Sendable {  // every field is guarded by `lock`
    let lock = ConditionLock()
    var next = 0
    var finished = 0
    var results: [R?]
    init(count: Int) { results = Array(repeating: nil, count: count) }
}

/// `body` for each element, on at most `width` threads at once, results in input order.
public func parallelMap<T: Sendable, R: Sendable>(_ items: [T], width: Int, _ body: @escaping @Sendable (T) -> R) -> [R] {
    let work = ParallelWork<R>(count: items.count)
    for _ in 0..<min(max(width, 1), items.count) {
        startThread(name: "eval", stackSize: 512 * 1024) {
            while true {
                let index: Int? = work.lock.withLock {
                    guard work.next < items.count else { return nil }
                    work.next += 1
                    return work.next - 1
                }
                guard let index else { return }
                let result = body(items[index])
                work.lock.withLock {
                    work.results[index] = result
                    work.finished += 1
                    work.lock.signal()
                }
            }
        }
    }
    return work.lock.withLock {
        while work.finished < items.count { work.lock.wait() }
        return work.results.map { $0! }
    }
}
