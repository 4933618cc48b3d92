import HTTPCore
import LuaRuntime

/// Completion and inspection for consoles (SPEC O10, docs/console.md), scope `exec`:
///
///   POST /api/v1/console/complete   body: the text before the cursor
///                                   {"word":"ge","candidates":[{"name":"get_all","type":"function"}],"truncated":false}
///   POST /api/v1/console/inspect    body: a name, `sip.calls.get_all`
///                                   {"name":...,"type":"function","params":["a"],"vararg":false,"source":...,"line":3,...}
///   GET  /api/v1/console/globals    {"globals":[{"name":"system","type":"table"}],"truncated":false}
///
/// Each is a job on the state in arrival order, like a chunk, but no evaluation: it reads the
/// state raw in C (`LuaVM.complete`, `inspect`, `ownGlobals`) and runs nothing of it, so a
/// `__index` or `__pairs` function, a finalizer or the inspected function never runs, and the
/// metrics' evaluation histogram does not count it. Its audit kind is `console`. Off, as
/// interactive.lua is, with `exec.interactive`: it serves the interactive console.
extension ExecService {
    static let consolePrefix = "/api/v1/console/"
    /// The most candidates an answer lists (`truncated` says when there were more).
    static let maxCandidates = 200

    func consoleComplete(_ call: Call, audit: inout AuditRecord) -> Reply {
        let text: [UInt8]
        switch consoleBody(call, audit: &audit) {
        case .refused(let refusal): return .answer(refusal)
        case .read(let bytes): text = bytes
        }
        let name: ConsoleName
        switch ConsoleName.beforeCursor(text) {
        case .failure(let problem): return .answer(Self.plain(400, "\(problem)\n", json: true))
        case .success(nil):
            return .answer(Self.json(200, Self.completionJSON(word: "", candidates: [], truncated: false)))
        case .success(let found?): name = found
        }
        return .onState(label: call.identity.name) { vm, audit in
            switch vm.complete(path: name.path, word: name.word, methods: name.methods) {
            case .failure(let failure): return Self.consoleFailure(failure, audit: &audit)
            case .success(let found): return Self.json(200, Self.completion(found, name: name))
            }
        }
    }

    func consoleInspect(_ call: Call, audit: inout AuditRecord) -> Reply {
        let text: [UInt8]
        switch consoleBody(call, audit: &audit) {
        case .refused(let refusal): return .answer(refusal)
        case .read(let bytes): text = bytes
        }
        let name: ConsoleName
        switch ConsoleName.named(text) {
        case .failure(let problem): return .answer(Self.plain(400, "\(problem)\n", json: true))
        case .success(let found): name = found
        }
        return .onState(label: call.identity.name) { vm, audit in
            switch vm.inspect(path: name.path + [name.word]) {
            case .failure(let failure): return Self.consoleFailure(failure, audit: &audit)
            case .success(let found):
                let spelled = (name.path + [name.word]).joined(separator: ".")
                return Self.json(
                    200, Self.inspection(found, name: spelled, action: vm.registry.entry(.action, spelled)))
            }
        }
    }

    func consoleGlobals(_ call: Call) -> Reply {
        guard options.interactive else {
            return .answer(Self.plain(404, "no such endpoint: \(call.head.shownPath)\n", json: true))
        }
        return .onState(label: call.identity.name) { vm, audit in
            switch vm.ownGlobals() {
            case .failure(let failure): return Self.consoleFailure(failure, audit: &audit)
            case .success(let found): return Self.json(200, Self.globals(found))
            }
        }
    }

    private func consoleBody(_ call: Call, audit: inout AuditRecord) -> Body {
        guard options.interactive else {
            return .refused(Self.plain(404, "no such endpoint: \(call.head.shownPath)\n", json: true))
        }
        let read = wholeBody(call.body, json: true)
        if case .read(let bytes) = read { audit.body = bytes }
        return read
    }

    private static func consoleFailure(_ failure: LuaFailure, audit: inout AuditRecord) -> Response {
        audit.errorKind = failure.kind.rawValue
        return plain(500, failure.message + "\n", json: true, kind: failure.kind.rawValue)
    }

    // MARK: - Rendering

    /// `(name, type)` pairs of the C answer's `{{name, type}, ...}`.
    private static func pairs(_ value: LuaValue?) -> [(name: [UInt8], type: String)] {
        guard case .array(let items)? = value else { return [] }
        return items.compactMap { item in
            guard case .array(let pair) = item, pair.count == 2, case .string(let name) = pair[0],
                case .string(let type) = pair[1]
            else { return nil }
            return (name, String(decoding: type, as: UTF8.self))
        }
    }

    private static func field(_ value: LuaValue, _ key: String) -> LuaValue? {
        guard case .object(let fields) = value else { return nil }
        return fields.first { $0.key == Array(key.utf8) }?.value
    }

    /// The candidates, each name once (the first table of the `__index` chain that has it
    /// wins, as Lua's lookup does), keywords for a bare word, sorted, at most `maxCandidates`.
    static func completion(_ found: LuaValue, name: ConsoleName) -> String {
        var seen = Set<[UInt8]>()
        var candidates: [(name: [UInt8], type: String)] = []
        // A key that is a keyword (`t["end"]`) cannot follow `.` or `:`.
        for pair in pairs(field(found, "candidates"))
        where !ConsoleName.keywords.contains(String(decoding: pair.name, as: UTF8.self))
            && seen.insert(pair.name).inserted
        {
            candidates.append(pair)
        }
        if name.path.isEmpty && !name.methods && !name.word.isEmpty {
            for keyword in ConsoleName.keywords where keyword.hasPrefix(name.word) {
                candidates.append((Array(keyword.utf8), "keyword"))
            }
        }
        candidates.sort { $0.name.lexicographicallyPrecedes($1.name) }
        var truncated = field(found, "truncated") == LuaValue.boolean(true)
        if candidates.count > maxCandidates {
            candidates.removeLast(candidates.count - maxCandidates)
            truncated = true
        }
        return completionJSON(word: name.word, candidates: candidates, truncated: truncated)
    }

    static func completionJSON(word: String, candidates: [(name: [UInt8], type: String)], truncated: Bool) -> String {
        var json = JSONWriter()
        json.raw("{\"word\":")
        json.string(word)
        json.raw(",\"candidates\":[")
        for (index, candidate) in candidates.enumerated() {
            if index > 0 { json.raw(",") }
            json.raw("{\"name\":")
            json.luaString(candidate.name)
            json.raw(",\"type\":")
            json.string(candidate.type)
            json.raw("}")
        }
        json.raw("],\"truncated\":\(truncated)}")
        return String(decoding: json.bytes, as: UTF8.self)
    }

    /// The C answer's fields with the name and, when an action is registered under the name,
    /// its help and typed parameters (SPEC V7); a name that is only an action has type `action`.
    static func inspection(_ found: LuaValue, name: String, action: EndpointRegistry.Entry?) -> String {
        guard case .object(var fields) = found else { return "{}" }
        fields.append(LuaValue.Field(key: Array("name".utf8), value: .string(name)))
        if let action {
            if field(found, "type") == LuaValue.string("nil") {
                fields.removeAll { $0.key == Array("type".utf8) }
                fields.append(LuaValue.Field(key: Array("type".utf8), value: .string("action")))
            }
            let parameters = action.parameters.map { parameter in
                LuaValue.object([
                    LuaValue.Field(key: Array("name".utf8), value: .string(parameter.name)),
                    LuaValue.Field(key: Array("type".utf8), value: .string(parameter.type.rawValue)),
                    LuaValue.Field(key: Array("optional".utf8), value: .boolean(parameter.optional)),
                ])
            }
            fields.append(
                LuaValue.Field(
                    key: Array("action".utf8),
                    value: .object([
                        LuaValue.Field(key: Array("help".utf8), value: action.help.map { LuaValue.string($0) } ?? .nil),
                        LuaValue.Field(key: Array("params".utf8), value: .array(parameters)),
                    ])))
        }
        var json = JSONWriter()
        json.value(.object(fields))
        return String(decoding: json.bytes, as: UTF8.self)
    }

    static func globals(_ found: LuaValue) -> String {
        let globals = pairs(field(found, "globals")).sorted { $0.name.lexicographicallyPrecedes($1.name) }
        var json = JSONWriter()
        json.raw("{\"globals\":[")
        for (index, global) in globals.enumerated() {
            if index > 0 { json.raw(",") }
            json.raw("{\"name\":")
            json.luaString(global.name)
            json.raw(",\"type\":")
            json.string(global.type)
            json.raw("}")
        }
        json.raw("],\"truncated\":\(field(found, "truncated") == LuaValue.boolean(true))}")
        return String(decoding: json.bytes, as: UTF8.self)
    }
}
