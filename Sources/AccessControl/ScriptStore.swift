import Crypto

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A stored script (SPEC V8) as the database holds it: its current version, with its source.
public struct StoredScript: Sendable, Equatable {
    public var name: String
    /// The current version: what runs at start and at reset while the script is enabled.
    public var version: Int
    public var source: [UInt8]
    /// SHA-256 of `source`, 64 lower-case hex digits (as `sha256sum` prints it).
    public var sha256: String
    public var enabled: Bool
    /// The token that installed the current version, and when.
    public var installedBy: String
    public var installedAt: Date
    /// The token of the last change to the script (an install, a rollback, enable or disable),
    /// and when.
    public var updatedBy: String
    public var updatedAt: Date
}

/// One kept version of a stored script, without its source.
public struct ScriptVersion: Sendable, Equatable {
    public var version: Int
    public var sha256: String
    public var bytes: Int
    public var installedBy: String
    public var installedAt: Date
}

/// The stored scripts of luaexec's database (SPEC V8, M6): each name's versions (the current
/// one and up to `keep` before it), which one is current and whether it runs. The state runs
/// them (LuaRuntime's `LuaVM.runStoredScript`); every change here is made by the job that ran
/// the version, so the store and the state never disagree for long (docs/scripts.md).
public final class ScriptStore: Sendable {
    private let shared: LuaexecDatabase
    private var database: SQLiteDatabase { shared.connection }

    /// Shares `database`'s connection with the other stores.
    public init(sharing database: LuaexecDatabase) {
        shared = database
    }

    /// The longest name, in bytes.
    public static let maxNameBytes = 128

    /// Why `name` is not a script's name, for a person; nil when it is one. Names are file names
    /// on any system and one URL path segment: 1 to 128 bytes of letters, digits, `.`, `_` and
    /// `-`, ending in `.lua`, not starting with `.` and never holding `..` (so never `/`, `.`
    /// or `..`).
    public static func nameProblem(_ name: String) -> String? {
        let bytes = Array(name.utf8)
        let rule =
            "use 1 to \(maxNameBytes) bytes of letters, digits, '.', '_' and '-', ending in '.lua', "
            + "not starting with '.' or holding '..'"
        let allowed = bytes.allSatisfy { TokenFormat.isBase62($0) || "._-".utf8.contains($0) }
        guard !bytes.isEmpty, bytes.count <= maxNameBytes, allowed, name.hasSuffix(".lua"),
            bytes.first != UInt8(ascii: "."),
            !name.contains("..")
        else {
            return "bad script name '\(name)': \(rule)"
        }
        return nil
    }

    /// The SHA-256 of `source` as the store keeps it: 64 lower-case hex digits.
    public static func sha256(_ source: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var hex: [UInt8] = []
        hex.reserveCapacity(64)
        for byte in SHA256.hash(data: source) {
            hex.append(digits[Int(byte >> 4)])
            hex.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: hex, as: UTF8.self)
    }

    private static let selectScript = """
        SELECT s.name, s.version, v.source, v.sha256, s.enabled, v.installed_by, v.installed_at, s.updated_by, s.updated_at
        FROM script s JOIN script_version v ON v.name = s.name AND v.version = s.version
        """

    private static func script(_ row: [SQLiteValue]) -> StoredScript {
        StoredScript(
            name: row[0].text ?? "", version: Int(row[1].integer ?? 0), source: row[2].blob ?? [],
            sha256: row[3].text ?? "", enabled: row[4].integer == 1, installedBy: row[5].text ?? "",
            installedAt: Date(timeIntervalSince1970: TimeInterval(row[6].integer ?? 0)), updatedBy: row[7].text ?? "",
            updatedAt: Date(timeIntervalSince1970: TimeInterval(row[8].integer ?? 0)))
    }

    /// Every stored script, by name, with its current version.
    public func list() throws(StoreError) -> [StoredScript] {
        try database.query(Self.selectScript + " ORDER BY s.name").map(Self.script)
    }

    /// The enabled scripts, by name: what runs at start and at reset.
    public func enabled() throws(StoreError) -> [StoredScript] {
        try database.query(Self.selectScript + " WHERE s.enabled = 1 ORDER BY s.name").map(Self.script)
    }

    /// The script called `name`, at its current version; nil when there is none.
    public func script(named name: String) throws(StoreError) -> StoredScript? {
        try database.query(Self.selectScript + " WHERE s.name = ?", [.text(name)]).first.map(Self.script)
    }

    /// The kept versions of `name`, newest first (empty when there is no such script).
    public func versions(of name: String) throws(StoreError) -> [ScriptVersion] {
        try database.query(
            """
            SELECT version, sha256, length(source), installed_by, installed_at FROM script_version
            WHERE name = ? ORDER BY version DESC
            """, [.text(name)]
        ).map { row in
            ScriptVersion(
                version: Int(row[0].integer ?? 0), sha256: row[1].text ?? "", bytes: Int(row[2].integer ?? 0),
                installedBy: row[3].text ?? "",
                installedAt: Date(timeIntervalSince1970: TimeInterval(row[4].integer ?? 0)))
        }
    }

    /// The source of one kept version; nil when it is not kept.
    public func source(of name: String, version: Int) throws(StoreError) -> [UInt8]? {
        try database.query(
            "SELECT source FROM script_version WHERE name = ? AND version = ?", [.text(name), .integer(Int64(version))]
        ).first?.first?.blob
    }

    /// The number the next version of `name` gets: one more than any kept, 1 for a new script.
    public func nextVersion(of name: String) throws(StoreError) -> Int {
        Int(
            try database.query("SELECT max(version) FROM script_version WHERE name = ?", [.text(name)]).first?.first?
                .integer ?? 0) + 1
    }

    /// Stores `source` as version `version` of `name`, current and enabled (or disabled: an
    /// install that does not run), and keeps at most `keep` versions before it (the oldest go).
    /// One transaction.
    @discardableResult
    public func install(
        name: String, version: Int, source: [UInt8], by token: String, keep: Int, enabled: Bool = true,
        now: Date = Date()
    ) throws(StoreError) -> StoredScript {
        if let problem = Self.nameProblem(name) { throw StoreError(problem, kind: .invalid) }
        let at = Int64(now.timeIntervalSince1970)
        try database.write { db throws(StoreError) in
            try db.query(
                """
                INSERT INTO script_version (name, version, source, sha256, installed_by, installed_at)
                VALUES (?, ?, ?, ?, ?, ?)
                """,
                [
                    .text(name), .integer(Int64(version)), .blob(source), .text(Self.sha256(source)), .text(token),
                    .integer(at),
                ])
            try db.query(
                """
                INSERT INTO script (name, version, enabled, updated_by, updated_at) VALUES (?, ?, ?, ?, ?)
                ON CONFLICT (name) DO UPDATE SET version = excluded.version, enabled = excluded.enabled,
                    updated_by = excluded.updated_by, updated_at = excluded.updated_at
                """, [.text(name), .integer(Int64(version)), .integer(enabled ? 1 : 0), .text(token), .integer(at)])
            try Self.prune(name, keep: keep, in: db)
        }
        guard let installed = try script(named: name) else { throw StoreError("\(name) was not stored") }
        return installed
    }

    /// Makes the kept version `version` of `name` current again, and enabled (a rollback).
    @discardableResult
    public func activate(name: String, version: Int, by token: String, now: Date = Date()) throws(StoreError)
        -> StoredScript
    {
        try database.write { db throws(StoreError) in
            guard
                try !db.query(
                    "SELECT 1 FROM script_version WHERE name = ? AND version = ?",
                    [.text(name), .integer(Int64(version))]
                ).isEmpty
            else { throw StoreError("version \(version) of \(name) is not kept", kind: .notFound) }
            try db.query(
                "UPDATE script SET version = ?, enabled = 1, updated_by = ?, updated_at = ? WHERE name = ?",
                [.integer(Int64(version)), .text(token), .integer(Int64(now.timeIntervalSince1970)), .text(name)])
            guard db.changes == 1 else { throw StoreError("no script named '\(name)'", kind: .notFound) }
        }
        guard let activated = try script(named: name) else {
            throw StoreError("no script named '\(name)'", kind: .notFound)
        }
        return activated
    }

    /// Enables or disables `name`.
    @discardableResult
    public func setEnabled(_ enabled: Bool, name: String, by token: String, now: Date = Date()) throws(StoreError)
        -> StoredScript
    {
        try database.write { db throws(StoreError) in
            try db.query(
                "UPDATE script SET enabled = ?, updated_by = ?, updated_at = ? WHERE name = ?",
                [.integer(enabled ? 1 : 0), .text(token), .integer(Int64(now.timeIntervalSince1970)), .text(name)])
            guard db.changes == 1 else { throw StoreError("no script named '\(name)'", kind: .notFound) }
        }
        guard let script = try script(named: name) else {
            throw StoreError("no script named '\(name)'", kind: .notFound)
        }
        return script
    }

    /// Removes `name` and every kept version of it; false when there was no such script.
    @discardableResult
    public func delete(name: String) throws(StoreError) -> Bool {
        try database.write { db throws(StoreError) -> Bool in
            try db.query("DELETE FROM script_version WHERE name = ?", [.text(name)])
            try db.query("DELETE FROM script WHERE name = ?", [.text(name)])
            return db.changes == 1
        }
    }

    /// Keeps the current version of `name` and the `keep` newest others.
    private static func prune(_ name: String, keep: Int, in db: SQLiteDatabase.Transaction) throws(StoreError) {
        try db.query(
            """
            DELETE FROM script_version WHERE name = ?1
            AND version <> (SELECT version FROM script WHERE name = ?1)
            AND version NOT IN (
                SELECT version FROM script_version WHERE name = ?1
                AND version <> (SELECT version FROM script WHERE name = ?1)
                ORDER BY version DESC LIMIT ?2)
            """, [.text(name), .integer(Int64(max(0, keep)))])
    }
}
