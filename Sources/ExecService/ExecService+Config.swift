import AccessControl
import HTTPCore
import LuaRuntime

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The config store over HTTP (SPEC V5), for tokens with the `admin` scope:
///
///   GET    /api/v1/admin/config           {"config":{"path":value,...}}
///   GET    /api/v1/admin/config/<path>    {"path":...,"value":...}, 404 when unset
///   PUT    /api/v1/admin/config/<path>    body {"value": <string, number or boolean>}
///   DELETE /api/v1/admin/config/<path>
///
/// A change goes through the state like a chunk's `config.set`: saved before the answer, then
/// the functions registered for the path run, each under the limits of a chunk.
extension ExecService {
    func configListing() -> Response {
        guard let stateStore else { return Self.plain(404, "no config store\n", json: true) }
        do {
            var json = JSONWriter()
            json.raw("{\"config\":{")
            for (index, entry) in try stateStore.config().enumerated() {
                if index > 0 { json.raw(",") }
                json.string(entry.path)
                json.raw(":")
                Self.write(entry.value, to: &json)
            }
            json.raw("}}")
            return Self.json(200, String(decoding: json.bytes, as: UTF8.self))
        } catch {
            return Self.configFailure(error)
        }
    }

    func configValue(_ call: Call) -> Response {
        guard let stateStore else { return Self.plain(404, "no config store\n", json: true) }
        let path = call.rest
        if path.isEmpty { return configListing() }
        guard ConfigValue.isValidPath(path) else { return Self.plain(400, ConfigValue.pathProblem(path) + "\n", json: true) }
        do {
            guard let value = try stateStore.config(path) else { return Self.plain(404, "'\(path)' is not set\n", json: true) }
            return Self.json(200, Self.entryJSON(path, value))
        } catch {
            return Self.configFailure(error)
        }
    }

    func setConfig(_ call: Call, audit: inout AuditRecord) -> Reply {
        guard let stateStore else { return .answer(Self.plain(404, "no config store\n", json: true)) }
        let path = call.rest
        guard ConfigValue.isValidPath(path) else {
            return .answer(Self.plain(400, ConfigValue.pathProblem(path) + "\n", json: true))
        }
        let body: [UInt8]
        switch wholeBody(call.body, json: true) {
        case .refused(let refusal): return .answer(refusal)
        case .read(let bytes): body = bytes
        }
        audit.body = body
        let value: ConfigValue
        switch Self.parseValue(body) {
        case .success(let parsed): value = parsed
        case .failure(let problem): return .answer(Self.plain(400, problem.message + "\n", json: true))
        }
        do {
            if let problem = ConfigValue.sizeProblem(path, value, in: try stateStore.config()) {
                return .answer(Self.plain(400, problem + "\n", json: true))
            }
        } catch {
            return .answer(Self.configFailure(error))
        }
        return change(path, to: value)
    }

    func unsetConfig(_ call: Call) -> Reply {
        guard let stateStore else { return .answer(Self.plain(404, "no config store\n", json: true)) }
        let path = call.rest
        guard ConfigValue.isValidPath(path) else {
            return .answer(Self.plain(400, ConfigValue.pathProblem(path) + "\n", json: true))
        }
        do {
            guard try stateStore.config(path) != nil else {
                return .answer(Self.plain(404, "'\(path)' is not set\n", json: true))
            }
        } catch {
            return .answer(Self.configFailure(error))
        }
        return change(path, to: nil)
    }

    static func configFailure(_ error: any Error) -> Response {
        plain(500, "the config store failed: \(error)\n", json: true, kind: "store")
    }

    /// The change goes through the state, in arrival order, like a chunk's `config.set`.
    private func change(_ path: String, to value: ConfigValue?) -> Reply {
        .onState(label: "config") { vm, _ in
            if let failure = vm.applyConfig(path: path, value: value?.luaValue, save: true) {
                return Self.plain(500, failure.message + "\n", json: true, kind: failure.kind.rawValue)
            }
            guard let value else { return Self.json(200, "{\"path\":\(Self.quoted(path)),\"value\":null}") }
            return Self.json(200, Self.entryJSON(path, value))
        }
    }

    /// `{"value": V}` with V a string, a number or a boolean, read as E11 reads arguments
    /// (CallBody): `2.0` stays a float and `2` an integer, as `config.set` keeps them; an integer
    /// past 64 bits or a number past a double is refused, never rounded; a string may be
    /// `{"base64": "..."}`. What is wrong, in a sentence.
    static func parseValue(_ body: [UInt8]) -> Result<ConfigValue, CallBodyError> {
        let usage = "send {\"value\": ...} with a string, a number or a boolean (DELETE unsets)"
        let parsed: LuaValue
        switch CallBody.parseValue(body) {
        case .success(let value): parsed = value
        case .failure(let error): return .failure(CallBodyError(message: "\(usage): \(error.message)"))
        }
        guard case .object(let fields) = parsed, fields.count == 1, fields[0].key == Array("value".utf8) else {
            return .failure(CallBodyError(message: usage))
        }
        switch fields[0].value {
        case .string(let bytes): return .success(.string(bytes))
        case .integer(let value): return .success(.integer(value))
        case .number(let value): return .success(.number(value))
        case .boolean(let value): return .success(.boolean(value))
        default: return .failure(CallBodyError(message: usage))
        }
    }

    static func entryJSON(_ path: String, _ value: ConfigValue) -> String {
        var json = JSONWriter()
        json.raw("{\"path\":")
        json.string(path)
        json.raw(",\"value\":")
        write(value, to: &json)
        json.raw("}")
        return String(decoding: json.bytes, as: UTF8.self)
    }

    static func write(_ value: ConfigValue, to json: inout JSONWriter) {
        switch value {
        case .string(let bytes): json.luaString(bytes)
        case .integer(let integer): json.raw(String(integer))
        case .number(let number): json.raw(number.isFinite ? "\(number)" : "null")
        case .boolean(let flag): json.raw(flag ? "true" : "false")
        }
    }

    private static func quoted(_ text: String) -> String {
        var json = JSONWriter()
        json.string(text)
        return String(decoding: json.bytes, as: UTF8.self)
    }
}

extension ConfigValue {
    /// The Lua value `config.get` gives for it.
    public var luaValue: LuaValue {
        switch self {
        case .string(let bytes): .string(bytes)
        case .integer(let integer): .integer(integer)
        case .number(let number): .number(number)
        case .boolean(let flag): .boolean(flag)
        }
    }

    /// The config value of a scalar Lua value; nil for anything else.
    public init?(_ value: LuaValue) {
        switch value {
        case .string(let bytes): self = .string(bytes)
        case .integer(let integer): self = .integer(integer)
        case .number(let number): self = .number(number)
        case .boolean(let flag): self = .boolean(flag)
        default: return nil
        }
    }
}
