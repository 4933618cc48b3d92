import Foundation
import Testing

@testable import AccessControl

/// `luaexec restore` takes luaexec's own schema only (issue 24, item 7): whatever else a crafted
/// backup carries (a trigger, a view, a table, an index, a changed column) would act in the live
/// database.
@Suite("Restore accepts luaexec's own schema only")
struct RestoreSchemaTests {
    let path = "/tmp/luaexec-restore-\(UUID().uuidString).db"

    private func remove(_ files: String...) {
        for file in files {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: file + suffix) }
        }
    }

    /// Everything a database holds, schema and rows, as text: to show that nothing changed.
    private static func dump(_ path: String) throws -> [String] {
        let db = try SQLiteDatabase(path: path)
        var lines = try db.query("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").map {
            "\($0)"
        }
        lines.append("\(try db.query("PRAGMA user_version"))")
        for table in try db.query("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name") {
            let name = table[0].text!
            lines += try db.query("SELECT * FROM \"\(name)\" ORDER BY rowid").map { "\(name): \($0)" }
        }
        return lines
    }

    static let refusals: [(statements: [String], found: String)] = [
        (
            [
                """
                CREATE TRIGGER keep_token AFTER DELETE ON token BEGIN
                    INSERT INTO token VALUES (old.name, old.digest, old.scopes, old.created_at, old.expires_at, old.last_used_at);
                END
                """
            ],
            "trigger 'keep_token' on token, which luaexec's schema has not"
        ),
        (["CREATE VIEW names AS SELECT name FROM token"], "view 'names', which luaexec's schema has not"),
        (["CREATE TABLE extra (x)"], "table 'extra', which luaexec's schema has not"),
        (
            ["CREATE INDEX token_by_scopes ON token (scopes)"],
            "index 'token_by_scopes' on token, which luaexec's schema has not"
        ),
        (
            [
                "ALTER TABLE token RENAME TO old_token",
                """
                CREATE TABLE token (name TEXT NOT NULL PRIMARY KEY, digest BLOB NOT NULL UNIQUE, scopes INTEGER NOT NULL,
                    created_at INTEGER NOT NULL, expires_at INTEGER, last_used_at INTEGER)
                """,
                "INSERT INTO token SELECT * FROM old_token", "DROP TABLE old_token",
            ],
            "column token.scopes is INTEGER NOT NULL, luaexec's is TEXT NOT NULL"
        ),
        (
            ["ALTER TABLE token ADD COLUMN note TEXT DEFAULT 'x'"],
            "column token.note (TEXT DEFAULT 'x'), which luaexec's schema has not"
        ),
        (
            [
                "DROP TABLE meta",
                "CREATE TABLE meta (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL, CHECK (key <> 'restored'))",
            ],
            "table 'meta' is defined as `CREATE TABLE meta (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL, CHECK (key <> 'restored'))`, luaexec's as `CREATE TABLE meta (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL)`"
        ),
        (["DROP TABLE set_aside"], "table 'set_aside' is missing"),
        (["PRAGMA user_version = 99"], "its schema is version 99, from a later luaexec"),
    ]

    @Test(
        "a backup with anything but luaexec's schema is refused, naming what it holds, and nothing changes",
        arguments: refusals)
    func refused(statements: [String], found: String) throws {
        let backup = path + ".backup"
        let live = path + ".live"
        defer { remove(path, backup, live) }
        let store = try TokenStore(path: path)
        _ = try store.create(name: "victim", scopes: [.exec], expiresAt: nil)
        try DatabaseBackup.backup(path, to: backup)
        let crafted = try SQLiteDatabase(path: backup)
        for statement in statements { try crafted.query(statement) }

        _ = try TokenStore(path: live).create(name: "live", scopes: [.admin], expiresAt: nil)
        let before = try Self.dump(live)
        do {
            try DatabaseBackup.restore(backup, into: live)
            Issue.record("restored")
        } catch {
            #expect(error.description.hasPrefix("\(backup) was not restored: "), "\(error)")
            #expect(error.description.contains(found), "\(error)")
        }
        #expect(try Self.dump(live) == before)
    }

    @Test(
        "a genuine backup of every schema version restores and is brought up to date",
        arguments: 1...DatabaseSchema.version)
    func everyVersion(version: Int) throws {
        let live = path + ".live"
        defer { remove(path, live) }
        let old = try SQLiteDatabase(path: path)
        try old.write { db throws(StoreError) in try DatabaseSchema.migrate(db, upTo: version) }
        try old.query("INSERT INTO token (name, digest, scopes, created_at) VALUES ('old', x'00', 'exec', 1)")
        #expect(try old.query("PRAGMA user_version") == [[.integer(Int64(version))]])

        _ = try TokenStore(path: live).create(name: "live", scopes: [.admin], expiresAt: nil)
        try DatabaseBackup.restore(path, into: live)
        let restored = try TokenStore(path: live)
        #expect(try restored.list().map(\.name) == ["old"])
        #expect(try DatabaseSchema.differences(restored.database.connection) == [])
        #expect(try restored.database.connection.query("PRAGMA user_version") == [[.integer(Int64(DatabaseSchema.version))]])
    }

    @Test("the reference schema of each version is what the migrations made")
    func reference() throws {
        #expect(
            try DatabaseSchema.objects(of: DatabaseSchema.reference(version: 1)).map(\.name)
                == ["sqlite_autoindex_token_1", "sqlite_autoindex_token_2", "token"])
        let current = try DatabaseSchema.objects(of: DatabaseSchema.reference(version: DatabaseSchema.version))
        #expect(
            current.filter { $0.type == "table" }.map(\.name).sorted()
                == [
                    "audit_batch", "audit_seal", "config", "meta", "persisted", "published", "script", "script_version", "set_aside",
                    "token",
                ])
        #expect(current.allSatisfy { $0.type == "table" || $0.type == "index" })
    }
}
