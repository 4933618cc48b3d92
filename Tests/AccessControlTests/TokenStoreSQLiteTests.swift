import Foundation
import Testing

@testable import AccessControl

@Suite("The token store on SQLite's C API")
struct TokenStoreSQLiteTests {
    let path = "/tmp/luaexec-sqlite-\(UUID().uuidString).db"

    @Test("tokens survive reopening, with every field as written")
    func roundTrip() throws {
        defer { try? FileManager.default.removeItem(atPath: path) }
        let expires = Date(timeIntervalSince1970: 2_000_000_000)
        let created = Date(timeIntervalSince1970: 1_800_000_000.7)
        let (_, record) = try TokenStore(path: path).create(
            name: "ops.team-1", scopes: [.exec, .admin], expiresAt: expires, now: created)
        let reopened = try TokenStore(path: path)
        try reopened.recordUse(["ops.team-1": Date(timeIntervalSince1970: 1_900_000_000)])
        // An older use never moves last-used back.
        try reopened.recordUse(["ops.team-1": Date(timeIntervalSince1970: 1_850_000_000)])
        let listed = try reopened.list()
        #expect(listed.count == 1)
        #expect(listed[0].name == "ops.team-1")
        #expect(listed[0].digest == record.digest)
        #expect(listed[0].scopes == [.exec, .admin])
        #expect(listed[0].createdAt == Date(timeIntervalSince1970: 1_800_000_000))
        #expect(listed[0].expiresAt == expires)
        #expect(listed[0].lastUsedAt == Date(timeIntervalSince1970: 1_900_000_000))
    }

    /// Issue 24, item 15: the file holds token digests and `persisted`. SQLite makes a new file
    /// 0644 under the usual umask (022) and gives its -wal and -shm files the database's mode.
    @Test("the database and its WAL files are its owner's alone; one made looser before is tightened")
    func ownerOnly() throws {
        let directory = "/tmp/luaexec-modes-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: false)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let path = directory + "/luaexec.db"
        func mode(_ file: String) throws -> Int {
            try #require(FileManager.default.attributesOfItem(atPath: file)[.posixPermissions] as? Int)
        }
        do {
            let store = try TokenStore(path: path)
            _ = try store.create(name: "ops", scopes: [.exec], expiresAt: nil)
            for file in [path, path + "-wal", path + "-shm"] { #expect(try mode(file) == 0o600, "\(file)") }
        }
        // As an older luaexec or the sqlite3 tool left it: reopening tightens the file and its WAL files.
        let first = try TokenStore(path: path)
        _ = try first.create(name: "dev", scopes: [.exec], expiresAt: nil)
        for file in [path, path + "-wal", path + "-shm"] { #expect(chmod(file, 0o644) == 0) }
        let second = try TokenStore(path: path)
        for file in [path, path + "-wal", path + "-shm"] { #expect(try mode(file) == 0o600, "\(file)") }
        #expect(try second.list().map(\.name).sorted() == ["dev", "ops"])
        _ = first
    }

    @Test("floats a foreign or hand-edited database holds where integers belong are read without a trap")
    func foreignFloats() throws {
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try TokenStore(path: path)
        _ = try store.create(name: "ops", scopes: [.exec], expiresAt: nil)
        _ = try store.database.connection.query("UPDATE token SET expires_at = 1e300, last_used_at = -1e300")
        let listed = try TokenStore(path: path).list()
        #expect(listed.map(\.expiresAt) == [Date(timeIntervalSince1970: TimeInterval(Int64.max))])
        #expect(listed[0].json.contains(#""expires":"9999-12-31T23:59:59Z","last_used":"0000-01-01T00:00:00Z""#))
    }

    @Test("data_version moves when another connection commits, not for the connection's own reads")
    func dataVersion() throws {
        defer { try? FileManager.default.removeItem(atPath: path) }
        let daemon = try LuaexecDatabase(path: path)
        let tokens = TokenStore(database: daemon)
        let before = try daemon.dataVersion()
        _ = try tokens.list()
        #expect(try daemon.dataVersion() == before)
        _ = try TokenStore(path: path).create(name: "cli", scopes: [.exec], expiresAt: nil)
        #expect(try daemon.dataVersion() != before)
        #expect(try tokens.list().map(\.name) == ["cli"])
    }

    @Test("a refused write leaves nothing behind, and the connection stays usable")
    func rollback() throws {
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try TokenStore(path: path)
        _ = try store.create(name: "ops", scopes: [.exec], expiresAt: nil)
        do {
            _ = try store.create(name: "ops", scopes: [.admin], expiresAt: nil)
            Issue.record("a duplicate was stored")
        } catch {
            #expect(error.description == "a token named 'ops' already exists; revoke it first or pick another name")
        }
        #expect(try store.list().map(\.scopes) == [[.exec]])
        _ = try store.create(name: "second", scopes: [.exec], expiresAt: nil)
        #expect(try store.list().map(\.name) == ["ops", "second"])
    }

    @Test("a database that cannot be opened says where and why")
    func unopenable() {
        do {
            _ = try TokenStore(path: "/nonexistent-dir/luaexec.db")
            Issue.record("opened")
        } catch {
            #expect(error.description == "cannot open the database /nonexistent-dir/luaexec.db: unable to open database file")
        }
    }

    @Test("the schema is version 6, and a database with the token table but no version opens as it is")
    func schema() throws {
        defer { try? FileManager.default.removeItem(atPath: path) }
        let raw = try SQLiteDatabase(path: path)
        try raw.query(
            "CREATE TABLE token (name TEXT PRIMARY KEY, digest BLOB NOT NULL UNIQUE, scopes TEXT NOT NULL, created_at INTEGER NOT NULL, expires_at INTEGER, last_used_at INTEGER)"
        )
        try raw.query(
            "INSERT INTO token (name, digest, scopes, created_at) VALUES ('old', x'00', 'exec', 1)")
        let store = try TokenStore(path: path)
        #expect(try store.list().map(\.name) == ["old"])
        #expect(try raw.query("PRAGMA user_version") == [[.integer(7)]])
        for table in ["published", "persisted", "config", "meta", "set_aside", "audit_batch", "audit_seal", "script", "script_version"] {
            #expect(try raw.query("SELECT name FROM sqlite_master WHERE name = ?", [.text(table)]) == [[.text(table)]])
        }
        #expect(try raw.query("PRAGMA application_id") == [[.integer(Int64(DatabaseSchema.applicationID))]])
        #expect(try raw.query("PRAGMA journal_mode") == [[.text("wal")]])
    }

    @Test("published values round-trip with the publisher's pid, and a withdrawn one is gone")
    func published() throws {
        defer { try? FileManager.default.removeItem(atPath: path) }
        let info = PublishedInfo(sharing: try LuaexecDatabase(path: path))
        #expect(try info.value("endpoints") == nil)
        try info.publish("endpoints", #"{"a":1}"#, pid: 42, now: Date(timeIntervalSince1970: 1000))
        try info.publish("endpoints", #"{"a":2}"#, pid: 43, now: Date(timeIntervalSince1970: 2000))
        #expect(try info.value("endpoints") == .init(text: #"{"a":2}"#, pid: 43, updatedAt: Date(timeIntervalSince1970: 2000)))
        try info.withdraw("endpoints")
        #expect(try info.value("endpoints") == nil)
    }
}

@Suite("The state store: persisted, the config store, backups")
struct StateStoreTests {
    let path = "/tmp/luaexec-state-\(UUID().uuidString).db"

    @Test("commits read back with their types; another connection's config change is found once")
    func commitAndChangesFromOutside() throws {
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let daemon = StateStore(sharing: try LuaexecDatabase(path: path))
        try daemon.remember()
        try daemon.commit(
            persisted: [(Array("sk".utf8), Array("s\u{1}\0\0\0v".utf8))],
            config: [("a", .integer(1)), ("b", .number(0.1)), ("c", .string([0xFF])), ("d", .boolean(true))])
        #expect(try daemon.persisted().map(\.key) == [Array("sk".utf8)])
        #expect(try daemon.config().map(\.value) == [.integer(1), .number(0.1), .string([0xFF]), .boolean(true)])
        // The daemon's own commits are not changes from outside.
        #expect(try daemon.changesFromOutside().config.isEmpty)

        let cli = StateStore(sharing: try LuaexecDatabase(path: path))
        try cli.setConfig("a", .integer(2))
        try cli.setConfig("d", nil)
        let changes = try daemon.changesFromOutside()
        #expect(changes.config.map(\.path) == ["a", "d"])
        #expect(changes.config.map(\.value) == [.integer(2), nil])
        #expect(!changes.restored)
        #expect(try daemon.changesFromOutside().config.isEmpty)
    }

    @Test("a backup restores into another database, which then reports the restore")
    func backupRestore() throws {
        let backup = path + ".backup"
        let other = path + ".other"
        defer {
            for file in [path, backup, other] {
                for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: file + suffix) }
            }
        }
        let store = StateStore(sharing: try LuaexecDatabase(path: path))
        try store.setConfig("site", .string(Array("north".utf8)))
        try DatabaseBackup.backup(path, to: backup)
        #expect(throws: StoreError.self) { try DatabaseBackup.backup(path, to: backup) }
        let target = StateStore(sharing: try LuaexecDatabase(path: other))
        try target.remember()
        try DatabaseBackup.restore(backup, into: other)
        #expect(try target.changesFromOutside().restored)
        #expect(try target.config("site") == .string(Array("north".utf8)))
    }
}
