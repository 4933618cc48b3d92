import AccessControl
import HTTPCore
import LuaRuntime

/// Action URLs (SPEC V7): `GET /api/v1/exec/command?action=NAME&param=value...` calls the
/// function a script registered with `http.action(NAME, fn, {help = ..., params = {...}})`,
/// with the query parameters as its arguments in declared order; its results are rendered as a
/// chunk's. `action=?` lists the actions the token may call, `action=NAME&help` describes one.
/// Off unless `exec.actions` is true: a dumb device's GET is an easy thing to leak.
extension ExecService {
    func command(_ call: Call, audit: inout AuditRecord) -> Reply {
        let (head, identity, json) = (call.head, call.identity, call.json)
        guard options.actions else {
            audit.scope = "action"
            return .answer(Self.plain(404, "Action URLs are switched off (exec.actions in luaexecd.conf)\n", json: json))
        }
        let pairs = QueryString.pairs(in: head.query).filter { $0.name != "AuthToken" }
        let named = pairs.filter { $0.name == "action" }
        guard named.count == 1, let action = String(validating: named[0].value, as: UTF8.self) else {
            return .answer(Self.plain(400, "name one action: action=NAME (action=? lists them)\n", json: json))
        }
        if action == "?" {
            let callable = executor.registry.entries.filter { $0.kind == .action && identity.permits(.action($0.name)) }
            audit.scope = "action:?"
            guard
                identity.permits(.exec)
                    || identity.scopes.contains(where: { if case .action = $0 { true } else { false } })
            else {
                audit.errorKind = "scope"
                return .answer(Self.authFailure(.insufficientScope(.exec), json: json))
            }
            return .answer(Self.actionListing(callable, json: json))
        }
        guard Scope.isValidName(action) else {
            return .answer(Self.plain(404, "no such action: '\(action)' (action=? lists them)\n", json: json))
        }
        if let refusal = require(.action(action), of: identity, json: json, audit: &audit) { return .answer(refusal) }
        if pairs.contains(where: { $0.name == "help" }) {
            guard let entry = executor.registry.entry(.action, action) else {
                return .answer(Self.plain(404, "no such action: '\(action)' (action=? lists them)\n", json: json))
            }
            return .answer(Self.actionListing([entry], json: json, detailed: true))
        }

        return .evaluating(label: identity.name) { [self] vm, audit in
            // Looked up in the job, on the state's thread: the parameters checked are those of
            // the registration that runs, even if a request just replaced it.
            guard let entry = vm.registry.entry(.action, action) else {
                return .answer(Self.plain(404, "no such action: '\(action)' (action=? lists them)\n", json: json))
            }
            let arguments: [LuaValue]
            switch Self.actionArguments(entry, pairs) {
            case .failure(let problem):
                audit.errorKind = "parameter"
                return .answer(Self.plain(400, problem.message + "\n", json: json))
            case .success(let values): arguments = values
            }
            vm.caller = .request(token: identity.name)
            guard let evaluation = vm.invoke(.action, action, arguments: arguments, rendering: json ? .tree : .text) else {
                return .answer(Self.plain(404, "no such action: '\(action)' (action=? lists them)\n", json: json))
            }
            return .evaluation(evaluation) { [self] evaluation, vm, audit in
                let failed = if case .failure = evaluation.outcome { true } else { false }
                vm.registry.recordCall(.action, action, failed: failed)
                return render(evaluation, json: json, audit: &audit)
            }
        }
    }

    struct ParameterError: Error {
        var message: String
    }

    /// The query's parameters as the action's arguments, in declared order: each present and
    /// of its type, or the 400 message that names the first that is not.
    static func actionArguments(
        _ entry: EndpointRegistry.Entry, _ pairs: [(name: String, value: [UInt8], raw: Substring)]
    ) -> Result<[LuaValue], ParameterError> {
        let declared = Set(entry.parameters.map(\.name))
        for pair in pairs where pair.name != "action" && pair.name != "help" && !declared.contains(pair.name) {
            return .failure(ParameterError(message: "unknown parameter '\(pair.name)': \(signature(entry))"))
        }
        var arguments: [LuaValue] = []
        for parameter in entry.parameters {
            let given = pairs.filter { $0.name == parameter.name }
            guard given.count <= 1 else {
                return .failure(ParameterError(message: "parameter '\(parameter.name)' is given more than once: \(signature(entry))"))
            }
            guard let raw = given.first?.value else {
                if parameter.optional {
                    arguments.append(.nil)
                    continue
                }
                return .failure(ParameterError(message: "missing parameter '\(parameter.name)': \(signature(entry))"))
            }
            guard let value = convert(raw, to: parameter.type) else {
                let shown = String(decoding: raw.prefix(64), as: UTF8.self)
                return .failure(
                    ParameterError(
                        message: "parameter '\(parameter.name)' must be \(expected(parameter.type)), got '\(shown)': \(signature(entry))"))
            }
            arguments.append(value)
        }
        return .success(arguments)
    }

    private static func convert(_ raw: [UInt8], to type: EndpointRegistry.ParameterType) -> LuaValue? {
        let text = String(decoding: raw, as: UTF8.self)
        switch type {
        case .string:
            return .string(raw)
        case .integer:
            return Int64(text).map(LuaValue.integer)
        case .number:
            // As Lua's tonumber reads decimal text: an integer stays an integer.
            if let integer = Int64(text) { return .integer(integer) }
            guard !text.isEmpty, text.utf8.allSatisfy({ "0123456789+-.eE".utf8.contains($0) }),
                let number = Double(text),
                number.isFinite
            else { return nil }
            return .number(number)
        case .boolean:
            switch text.lowercased() {
            case "true", "1": return .boolean(true)
            case "false", "0": return .boolean(false)
            default: return nil
            }
        }
    }

    private static func expected(_ type: EndpointRegistry.ParameterType) -> String {
        switch type {
        case .string: "a string"
        case .integer: "an integer"
        case .number: "a number"
        case .boolean: "true or false (or 1 or 0)"
        }
    }

    /// `toast(text: string, times?: integer)`
    static func signature(_ entry: EndpointRegistry.Entry) -> String {
        let parameters = entry.parameters.map { "\($0.name)\($0.optional ? "?" : ""): \($0.type.rawValue)" }
        return entry.name + "(" + parameters.joined(separator: ", ") + ")"
    }

    /// `action=?` (one line each: signature, tab, help) and `action=NAME&help` (the signature,
    /// the help, and the URL to call it with).
    static func actionListing(_ entries: [EndpointRegistry.Entry], json: Bool, detailed: Bool = false) -> Response {
        if json {
            var writer = JSONWriter()
            writer.raw("{\"actions\":[")
            for (index, entry) in entries.enumerated() {
                if index > 0 { writer.raw(",") }
                writeAction(entry, to: &writer)
            }
            writer.raw("]}")
            return Response(
                status: 200, headers: [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
                body: writer.bytes)
        }
        var text = ""
        for entry in entries {
            if detailed {
                text += signature(entry) + "\n"
                if let help = entry.help, !help.isEmpty { text += help + "\n" }
                let query = entry.parameters.map { "&\($0.name)=<\($0.type.rawValue)>" }.joined()
                text += "GET /api/v1/exec/command?action=\(entry.name)\(query)\n"
            } else {
                text += signature(entry) + "\t" + (entry.help ?? "") + "\n"
            }
        }
        return plain(200, text, json: false)
    }

    /// `{"name":...,"help":...,"params":[{"name":...,"type":...,"optional":...}]}`
    static func writeAction(_ entry: EndpointRegistry.Entry, to writer: inout JSONWriter) {
        writer.raw("{\"name\":")
        writer.string(entry.name)
        writeHelpAndParameters(entry, to: &writer)
        writer.raw("}")
    }

    /// `,"help":...,"params":[...]`: an action's fields, in the listing and the registry.
    static func writeHelpAndParameters(_ entry: EndpointRegistry.Entry, to writer: inout JSONWriter) {
        writer.raw(",\"help\":")
        if let help = entry.help { writer.string(help) } else { writer.raw("null") }
        writer.raw(",\"params\":[")
        for (index, parameter) in entry.parameters.enumerated() {
            if index > 0 { writer.raw(",") }
            writer.raw("{\"name\":")
            writer.string(parameter.name)
            writer.raw(",\"type\":")
            writer.string(parameter.type.rawValue)
            writer.raw(",\"optional\":\(parameter.optional)}")
        }
        writer.raw("]")
    }
}
