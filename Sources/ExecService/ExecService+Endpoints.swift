import AccessControl
import HTTPCore
import LuaRuntime

/// Endpoints: `/api/v1/exec/<name>` answered by a function a script registered with
/// `http.listen(name, fn)` (SPEC V4). The handler gets `(url, body, headers, request)` and
/// returns a body, or `status, body, headers`; errors and limits answer as a chunk's do (E6).
extension ExecService {
    func endpoint(_ call: Call, audit: inout AuditRecord) -> Reply {
        let (name, head, identity, json) = (call.rest, call.head, call.identity, call.json)
        guard Scope.isValidName(name) else {
            return .answer(Self.plain(404, "no such endpoint: \(head.shownPath)\n", json: json))
        }
        if let refusal = require(.endpoint(name), of: identity, json: json, audit: &audit) { return .answer(refusal) }
        let body: [UInt8]
        switch wholeBody(call.body, json: json) {
        case .refused(let refusal): return .answer(refusal)
        case .read(let bytes): body = bytes
        }
        audit.body = body
        let arguments = Self.endpointArguments(head, body: body, tokenName: identity.name)
        let events = EventStream.wanted(head)
        return .evaluating(label: identity.name) { [self] vm, audit in
            vm.caller = .request(token: identity.name)
            // Looked up in the job, on the state's thread: a request that just replaced or
            // withdrew the endpoint is seen.
            guard let evaluation = vm.invoke(.endpoint, name, arguments: arguments, rendering: .tree) else {
                return .answer(Self.plain(404, "no such endpoint: \(head.shownPath)\n", json: json))
            }
            return .evaluation(evaluation) { [self] evaluation, vm, audit in
                recordEvaluation(nanoseconds: evaluation.elapsedNanoseconds)
                let answer = Self.endpointResponse(evaluation, name: name, json: json)
                vm.registry.recordCall(.endpoint, name, failed: answer.errorKind != nil)
                audit.errorKind = answer.errorKind
                // Streamed (SPEC E13): the final event is E5's JSON of what the handler returned,
                // once its shape is checked.
                if events && answer.errorKind == nil { return Self.render(evaluation, json: true).response }
                return answer.response
            }
        }
    }

    /// `url` (the path and query, without `AuthToken`), `body`, `headers` (lower-case names,
    /// without `authorization`) and `request` (method, query, client_address, token_name): a
    /// handler never sees the secret it was called with.
    static func endpointArguments(_ head: RequestHead, body: [UInt8], tokenName: String) -> [LuaValue] {
        let pairs = QueryString.pairs(in: head.query).filter { $0.name != "AuthToken" }
        let query = pairs.map(\.raw).joined(separator: "&")
        let url = head.path + (query.isEmpty ? "" : "?" + query)
        // A name given twice: the last value wins, as in most web frameworks.
        var queryFields: [String: [UInt8]] = [:]
        for pair in pairs { queryFields[pair.name] = pair.value }
        let headers = head.headers.dictionary.filter { $0.key != "authorization" }.sorted { $0.key < $1.key }
        let request = LuaValue.object([
            .init(key: Array("method".utf8), value: .string(head.method)),
            .init(
                key: Array("query".utf8),
                value: .object(
                    queryFields.sorted { $0.key < $1.key }.map {
                        .init(key: Array($0.key.utf8), value: .string($0.value))
                    })),
            .init(key: Array("client_address".utf8), value: .string(head.clientAddress)),
            .init(key: Array("token_name".utf8), value: .string(tokenName)),
        ])
        return [
            .string(url), .string(body),
            .object(headers.map { .init(key: Array($0.key.utf8), value: .string($0.value)) }), request,
        ]
    }

    /// The handler's answer as a response, and the error kind when it failed (an error, a limit,
    /// or results of the wrong shape, which count as the handler's errors).
    static func endpointResponse(_ evaluation: Evaluation, name: String, json: Bool) -> (
        response: Response, errorKind: String?
    ) {
        let values: [LuaValue]
        switch evaluation.outcome {
        case .failure:
            let (response, error) = render(evaluation, json: json)
            return (response, error?.rawValue)
        case .success(let results):
            values = results
        }
        let shape: Result<(status: Int, body: [UInt8], headers: [(String, String)]), EndpointShapeError>
        shape = interpret(values)
        switch shape {
        case .failure(let problem):
            var failed = evaluation
            failed.outcome = .failure(
                LuaFailure(
                    kind: .runtime,
                    message: "endpoint '\(name)' \(problem.message); return a body string, or status, body, headers"))
            let (response, error) = render(failed, json: json)
            return (response, error?.rawValue)
        case .success(let answer):
            var headers: [(name: String, value: String)] = answer.headers.map { (name: $0.0, value: $0.1) }
            let given = Set(answer.headers.map { $0.0.lowercased() })
            // 204 and 304 have no content (RFC 9110 §15.3.5, §15.4.5): whatever body the handler
            // gave is not sent, and no type is made up for it.
            let hasContent = Response.mayHaveContent(answer.status)
            if hasContent && !given.contains("content-type") {
                headers.insert(("Content-Type", "text/plain; charset=utf-8"), at: 0)
            }
            if !given.contains("cache-control") { headers.append(("Cache-Control", "no-store")) }
            headers.append(("Server-Timing", EvaluationRenderer.serverTiming(nanoseconds: evaluation.elapsedNanoseconds)))
            return (Response(status: answer.status, headers: headers, body: hasContent ? answer.body : []), nil)
        }
    }

    struct EndpointShapeError: Error {
        var message: String
    }

    private static func interpret(_ values: [LuaValue]) -> Result<
        (status: Int, body: [UInt8], headers: [(String, String)]), EndpointShapeError
    > {
        var values = values
        while values.last == .nil { values.removeLast() }
        if values.isEmpty { return .success((200, [], [])) }
        if values.count == 1, case .string(let body) = values[0] { return .success((200, body, [])) }
        guard case .integer(let status) = values[0], (200...599).contains(status) else {
            return .failure(
                EndpointShapeError(
                    message:
                        "returned \(describe(values[0])) first, which is neither a body nor a status from 200 to 599"))
        }
        guard values.count <= 3 else { return .failure(EndpointShapeError(message: "returned \(values.count) values")) }
        var body: [UInt8] = []
        if values.count > 1 {
            switch values[1] {
            case .string(let bytes): body = bytes
            case .nil: break
            default: return .failure(EndpointShapeError(message: "returned \(describe(values[1])) as its body"))
            }
        }
        var headers: [(String, String)] = []
        var headerBytes = 0
        if values.count == 3 {
            let fields: [LuaValue.Field]
            switch values[2] {
            case .object(let object): fields = object
            case .array([]): fields = []
            default:
                return .failure(
                    EndpointShapeError(
                        message: "returned \(describe(values[2])) as its headers, not a table of names to values"))
            }
            for field in fields.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }) {
                let name = String(decoding: field.key, as: UTF8.self)
                guard !name.isEmpty, field.key.allSatisfy(isTokenCharacter) else {
                    return .failure(EndpointShapeError(message: "set a header with the invalid name '\(name)'"))
                }
                let value: [UInt8]
                switch field.value {
                case .string(let bytes): value = bytes
                case .integer(let number): value = Array(String(number).utf8)
                case .number(let number) where number.isFinite: value = Array("\(number)".utf8)
                default:
                    return .failure(EndpointShapeError(message: "set the header '\(name)' to \(describe(field.value))"))
                }
                // CR, LF and NUL would end the header early or forge another (response splitting).
                guard !value.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) else {
                    return .failure(
                        EndpointShapeError(message: "set the header '\(name)' to a value with a line break"))
                }
                let text = String(decoding: value, as: UTF8.self)
                // Only headers that act on this answer alone (HeaderPolicy): never one a web
                // server or a browser would act on beyond it.
                if let refusal = HeaderPolicy.refusal(name: name, value: text) {
                    return .failure(EndpointShapeError(message: refusal))
                }
                headers.append((name, text))
                // As sent: bytes that are not UTF-8 go out as U+FFFD, three bytes each.
                headerBytes += name.utf8.count + text.utf8.count + 4
            }
            // The web server takes the whole head in one buffer (nginx's fastcgi_buffer_size,
            // 4 KiB) and answers 502 past it, while luaexecd counted the call as answered: what
            // luaexecd adds itself (security headers, type, timing) fits in what is left.
            guard headerBytes <= Self.handlerHeaderBytes else {
                return .failure(
                    EndpointShapeError(
                        message:
                            "set headers of \(headerBytes) bytes together, past the \(Self.handlerHeaderBytes) that fit in the web server's buffer"
                    ))
            }
        }
        return .success((Int(status), body, headers))
    }

    /// Most bytes a handler's headers may take together, each as `Name: value` and CRLF.
    static let handlerHeaderBytes = 2048

    private static func describe(_ value: LuaValue) -> String {
        switch value {
        case .nil: "nil"
        case .boolean: "a boolean"
        case .integer(let number): "the number \(number)"
        case .number(let number): "the number \(number)"
        case .string: "a string"
        case .array, .object, .cycle, .tooDeep: "a table"
        case .opaque(let text):
            text.hasPrefix("function")
                ? "a function" : "a " + (text.split(separator: ":").first.map(String.init) ?? "value")
        }
    }

    /// RFC 9110's `tchar`: what a header name is made of.
    private static func isTokenCharacter(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"):
            true
        default:
            "!#$%&'*+-.^_`|~".utf8.contains(byte)
        }
    }
}
