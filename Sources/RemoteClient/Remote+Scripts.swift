#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A stored script's record as the admin API answers it (docs/scripts.md, "The records").
public struct ScriptRecord: Sendable, Equatable {
    public struct LastRun: Sendable, Equatable {
        public var version: Int
        public var ok: Bool
        public var elapsedMilliseconds: String
        /// E6's kind and message when the run failed.
        public var error: (kind: String, message: String)?

        public static func == (a: LastRun, b: LastRun) -> Bool {
            a.version == b.version && a.ok == b.ok && a.elapsedMilliseconds == b.elapsedMilliseconds
                && a.error?.kind == b.error?.kind && a.error?.message == b.error?.message
        }
    }

    public var name: String
    public var version: Int
    public var sha256: String
    public var enabled: Bool
    public var installedBy: String
    public var installedAt: String
    public var lastRun: LastRun?
    /// What the script holds now: `endpoint bell`, `action ring`.
    public var registered: [String]

    /// A record with nothing known but the name (for an answer that carries none: a removal).
    public init(name: String) {
        self.name = name
        version = 0
        sha256 = ""
        enabled = false
        installedBy = "-"
        installedAt = "-"
        registered = []
    }

    init?(_ json: JSONValue?) {
        guard let json, let name = json["name"]?.string, let version = json["version"]?.int,
            let sha256 = json["sha256"]?.string, let enabled = json["enabled"]?.bool
        else { return nil }
        self.name = name
        self.version = version
        self.sha256 = sha256
        self.enabled = enabled
        installedBy = json["installed_by"]?.string ?? "-"
        installedAt = json["installed_at"]?.string ?? "-"
        if let run = json["last_run"], let runVersion = run["version"]?.int, let ok = run["ok"]?.bool {
            var elapsed = ""
            if case .number(let text)? = run["elapsed_ms"] { elapsed = text }
            let error = run["error"].map { ($0["kind"]?.string ?? "error", $0["message"]?.string ?? "") }
            lastRun = LastRun(version: runVersion, ok: ok, elapsedMilliseconds: elapsed, error: error)
        }
        registered = Self.registrations(json["registered"])
    }

    /// `[{"kind":"endpoint","name":"bell"}]` as `["endpoint bell"]`; a timer, named `timer 12`
    /// already, as `timer 12`.
    static func registrations(_ json: JSONValue?) -> [String] {
        (json?.array ?? []).map { entry in
            let kind = entry["kind"]?.string ?? "?"
            let name = entry["name"]?.string ?? "?"
            return kind == "timer" && name.hasPrefix("timer ") ? name : "\(kind) \(name)"
        }
    }

    /// The first 12 hex digits of the SHA-256, as the audit line shows a body's.
    public var shortSHA256: String { String(sha256.prefix(12)) }
}

/// What a remote made of a change to a script (a push, a rollback, enable, disable, rm).
public enum ScriptAnswer: Sendable {
    /// 200 or 201 `{"ok":true,...}`: done, or nothing to do (`changed` false).
    case done(ScriptChange)
    /// 400 `syntax` or 422: the version did not compile or its run failed; nothing changed.
    case luaFailure(ScriptFailure)
    /// Any other answer, in one line (`HTTP 404: no script named 'x.lua'`).
    case refused(String)
}

public struct ScriptChange: Sendable {
    /// 201: the name was new.
    public var created: Bool
    public var changed: Bool
    /// The record after the change; nil for a removal.
    public var script: ScriptRecord?
    /// A removal's version and SHA-256.
    public var removed: (version: Int, sha256: String)?
    /// What the run printed (empty when nothing ran).
    public var output: [UInt8]
    /// What the previous version (or the script, when removed or disabled) held and no longer does.
    public var withdrawn: [String]
}

public struct ScriptFailure: Sendable {
    public var kind: String
    public var message: String
    public var traceback: String?
    /// What the run printed before it failed.
    public var output: [UInt8]
    /// The version that stays current (nil: no script by that name).
    public var current: ScriptRecord?
}

/// A script command's refusal that is not a Lua error: the remote's answer in one line.
public struct ScriptRefusal: Error, Sendable {
    public var message: String
    /// 404: no such script (or version).
    public var notFound: Bool
}

extension JSONValue {
    /// A Lua string as luaexecd writes it (SPEC E5): a JSON string, or `{"base64":...}` for
    /// bytes that are not UTF-8.
    public var luaBytes: [UInt8]? {
        if let text = string { return Array(text.utf8) }
        guard let encoded = self["base64"]?.string, let data = Data(base64Encoded: encoded) else { return nil }
        return Array(data)
    }
}

extension Remote {
    /// The admin API's path of script `name`, then `tail` (`/versions`, `/rollback?version=2`).
    /// Check `name` with the store's rule first (`ScriptStore.nameProblem`): bytes outside the
    /// URL's unreserved set are percent-encoded, so none starts a query, but nginx decodes `%2F`
    /// and resolves `..`, so no encoding keeps a name holding them on this path.
    public static func scriptPath(_ name: String, _ tail: String = "") -> String {
        var path = "/api/v1/admin/scripts/"
        for byte in name.utf8 {
            let unreserved =
                (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte)
                || "-._~".utf8.contains(byte)
            if unreserved {
                path.unicodeScalars.append(Unicode.Scalar(byte))
            } else {
                let hex = String(byte, radix: 16, uppercase: true)
                path += "%" + (hex.count == 1 ? "0" : "") + hex
            }
        }
        return path + tail
    }

    /// `PUT` the source as `name`'s next version; `enabled: false` stores it disabled, not run.
    public func pushScript(_ source: [UInt8], name: String, enabled: Bool = true) throws(ClientError) -> ScriptAnswer {
        Self.scriptAnswer(
            try client.send(
                "PUT", Self.scriptPath(name, enabled ? "" : "?enabled=false"), headers: ["Accept: application/json"],
                body: source))
    }

    /// `POST .../rollback[?version=N]`, `.../enable` or `.../disable`.
    public func changeScript(_ name: String, _ action: String, version: Int? = nil) throws(ClientError) -> ScriptAnswer
    {
        let path = Self.scriptPath(name, "/" + action + (version.map { "?version=\($0)" } ?? ""))
        return Self.scriptAnswer(try client.send("POST", path, headers: ["Accept: application/json"]))
    }

    /// `DELETE` the script with every kept version.
    public func removeScript(_ name: String) throws(ClientError) -> ScriptAnswer {
        Self.scriptAnswer(try client.send("DELETE", Self.scriptPath(name), headers: ["Accept: application/json"]))
    }

    /// Every stored script, and the answer's JSON as it came.
    public func scripts() throws(ClientError) -> Result<(records: [ScriptRecord], json: [UInt8]), ScriptRefusal> {
        let answer = try client.send("GET", "/api/v1/admin/scripts", headers: ["Accept: application/json"])
        guard answer.status == 200, let items = JSONValue.parse(answer.body)?["scripts"]?.array else {
            return .failure(Self.scriptRefusal(answer))
        }
        return .success((items.compactMap { ScriptRecord($0) }, answer.body))
    }

    /// A script's source, byte for byte as stored: the current version or kept version `version`.
    public func scriptSource(_ name: String, version: Int? = nil) throws(ClientError) -> Result<[UInt8], ScriptRefusal>
    {
        let answer = try client.send("GET", Self.scriptPath(name, version.map { "?version=\($0)" } ?? ""))
        guard answer.status == 200 else { return .failure(Self.scriptRefusal(answer)) }
        return .success(answer.body)
    }

    /// The current version's record and source.
    public func script(_ name: String) throws(ClientError) -> Result<
        (record: ScriptRecord, source: [UInt8]), ScriptRefusal
    > {
        let answer = try client.send("GET", Self.scriptPath(name), headers: ["Accept: application/json"])
        guard answer.status == 200, let json = JSONValue.parse(answer.body), let record = ScriptRecord(json) else {
            return .failure(Self.scriptRefusal(answer))
        }
        guard let source = json["source"]?.luaBytes else {
            return .failure(ScriptRefusal(message: "the answer for \(name) has no readable source", notFound: false))
        }
        return .success((record, source))
    }

    static func scriptRefusal(_ answer: Answer) -> ScriptRefusal {
        ScriptRefusal(message: refusal(answer), notFound: answer.status == 404)
    }

    static func scriptAnswer(_ answer: Answer) -> ScriptAnswer {
        let json = JSONValue.parse(answer.body)
        if answer.status == 200 || answer.status == 201, let json, json["ok"]?.bool == true {
            var removed: (Int, String)?
            if json["deleted"] != nil, let version = json["version"]?.int, let sha256 = json["sha256"]?.string {
                removed = (version, sha256)
            }
            return .done(
                ScriptChange(
                    created: answer.status == 201, changed: json["changed"]?.bool ?? true,
                    script: ScriptRecord(json["script"]), removed: removed,
                    output: json["run"]?["output"]?.luaBytes ?? [],
                    withdrawn: ScriptRecord.registrations(json["withdrawn"])))
        }
        // A compile or run error is 400/422 with X-Lua-Error; a 400 for a bad name has none.
        if let kind = answer.headers["x-lua-error"], luaErrorKinds.contains(kind), let json,
            let error = json["error"], let message = error["message"]?.string
        {
            return .luaFailure(
                ScriptFailure(
                    kind: kind, message: message, traceback: error["traceback"]?.string,
                    output: json["output"]?.luaBytes ?? [], current: ScriptRecord(json["current"])))
        }
        return .refused(refusal(answer))
    }
}
