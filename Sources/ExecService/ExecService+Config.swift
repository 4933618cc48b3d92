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
        guard let value = Self.parseValue(body) else {
            return .answer(Self.plain(
                400, "send {\"value\": ...} with a string, a number or a boolean (DELETE unsets)\n", json: true))
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

    private struct ValueBody: Decodable {
        var value: ConfigValue

        enum CodingKeys: CodingKey { case value }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            let single = try container.superDecoder(forKey: .value).singleValueContainer()
            if let flag = try? single.decode(Bool.self) {
                value = .boolean(flag)
            } else if let integer = try? single.decode(Int64.self) {
                value = .integer(integer)
            } else if let number = try? single.decode(Double.self) {
                value = .number(number)
            } else {
                value = .string(Array(try single.decode(String.self).utf8))
            }
        }
    }

    static func parseValue(_ body: [UInt8]) -> ConfigValue? {
        try? JSONDecoder().decode(ValueBody.self, from: Data(body)).value
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
