import Foundation
import Testing

@testable import AccessControl

/// The stored scripts in luaexec's database (SPEC V8): names, versions kept and pruned, the
/// current one, and the migration that adds them to a database of schema 5.
@Suite("Script store: versions, names, the migration from schema 5")
struct ScriptStoreTests {
    let path = "/tmp/luaexec-scripts-\(UUID().uuidString).db"

    private func remove(_ files: String...) {
        for file in files {
            for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: file + suffix) }
        }
    }

    private func source(_ text: String) -> [UInt8] { Array(text.utf8) }

    @Test(
        "names are 1 to 128 bytes of letters, digits, '.', '_' and '-', ending in .lua; anything else says the rule",
        arguments: [
            ("a.lua", true), ("door-bell_2.v1.lua", true), (String(repeating: "a", count: 124) + ".lua", true),
            (String(repeating: "a", count: 125) + ".lua", false), ("", false), ("a", false), ("a.luac", false),
            ("a/b.lua", false), ("../a.lua", false), ("..lua", false), (".lua", false), (".hidden.lua", false),
            ("a..b.lua", false), ("a b.lua", false), ("a%2Fb.lua", false), ("ä.lua", false), ("a.LUA", false),
        ])
    func names(name: String, valid: Bool) {
        let problem = ScriptStore.nameProblem(name)
        #expect((problem == nil) == valid, "\(name): \(problem ?? "valid")")
        if let problem {
            #expect(
                problem
                    == "bad script name '\(name)': use 1 to 128 bytes of letters, digits, '.', '_' and '-', ending in "
                    + "'.lua', not starting with '.' or holding '..'")
        }
    }

    @Test("the SHA-256 is sha256sum's")
    func sha256() {
        #expect(ScriptStore.sha256(source("abc")) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test("installing keeps the current version and at most `keep` before it; the oldest go")
    func versionsArePruned() throws {
        defer { remove(path) }
        let store = ScriptStore(sharing: try LuaexecDatabase(path: path))
        #expect(try store.nextVersion(of: "a.lua") == 1)
        for version in 1...5 {
            let installed = try store.install(
                name: "a.lua", version: try store.nextVersion(of: "a.lua"), source: source("return \(version)"),
                by: "ops",
                keep: 2, now: Date(timeIntervalSince1970: TimeInterval(1000 + version)))
            #expect(installed.version == version)
        }
        let current = try #require(try store.script(named: "a.lua"))
        #expect(current.version == 5)
        #expect(current.source == source("return 5"))
        #expect(current.sha256 == ScriptStore.sha256(source("return 5")))
        #expect(current.enabled)
        #expect(current.installedBy == "ops")
        #expect(current.installedAt == Date(timeIntervalSince1970: 1005))
        #expect(try store.versions(of: "a.lua").map(\.version) == [5, 4, 3])
        #expect(try store.versions(of: "a.lua").first?.bytes == 8)
        #expect(try store.source(of: "a.lua", version: 2) == nil)
        #expect(try store.source(of: "a.lua", version: 3) == source("return 3"))
        // Pruning after a rollback keeps the current (older) version too.
        try store.activate(name: "a.lua", version: 3, by: "admin")
        try store.install(name: "a.lua", version: 6, source: source("return 6"), by: "ops", keep: 1)
        #expect(try store.versions(of: "a.lua").map(\.version) == [6, 5])
        try store.activate(name: "a.lua", version: 5, by: "admin")
        try store.install(name: "a.lua", version: 7, source: source("return 7"), by: "ops", keep: 0)
        #expect(try store.versions(of: "a.lua").map(\.version) == [7])
    }

    @Test("a rollback makes a kept version current and enabled, and names who did it")
    func activate() throws {
        defer { remove(path) }
        let store = ScriptStore(sharing: try LuaexecDatabase(path: path))
        try store.install(name: "a.lua", version: 1, source: source("one"), by: "ops", keep: 10)
        try store.install(name: "a.lua", version: 2, source: source("two"), by: "ops", keep: 10)
        try store.setEnabled(false, name: "a.lua", by: "admin")
        let rolledBack = try store.activate(
            name: "a.lua", version: 1, by: "admin", now: Date(timeIntervalSince1970: 42))
        #expect(rolledBack.version == 1)
        #expect(rolledBack.source == source("one"))
        #expect(rolledBack.enabled)
        #expect(rolledBack.installedBy == "ops")
        #expect(rolledBack.updatedBy == "admin")
        #expect(rolledBack.updatedAt == Date(timeIntervalSince1970: 42))
        #expect(throws: StoreError.self) { try store.activate(name: "a.lua", version: 9, by: "admin") }
        #expect(try store.script(named: "a.lua")?.version == 1)
    }

    @Test("disabled scripts are kept but are not among those that run; deleting removes every version")
    func enabledAndDeleted() throws {
        defer { remove(path) }
        let store = ScriptStore(sharing: try LuaexecDatabase(path: path))
        for name in ["c.lua", "a.lua", "b.lua"] {
            try store.install(name: name, version: 1, source: source(name), by: "ops", keep: 10)
        }
        try store.setEnabled(false, name: "b.lua", by: "ops")
        #expect(try store.list().map(\.name) == ["a.lua", "b.lua", "c.lua"])
        #expect(try store.enabled().map(\.name) == ["a.lua", "c.lua"])
        #expect(try store.delete(name: "a.lua"))
        #expect(try !store.delete(name: "a.lua"))
        #expect(try store.script(named: "a.lua") == nil)
        #expect(try store.versions(of: "a.lua") == [])
        #expect(try store.nextVersion(of: "a.lua") == 1)
        #expect(throws: StoreError.self) { try store.setEnabled(true, name: "a.lua", by: "ops") }
    }

    @Test("a database made by schema 5 is brought to the current schema with its data, and takes scripts")
    func migrationFromSchema5() throws {
        defer { remove(path) }
        let old = try SQLiteDatabase(path: path)
        try old.write { db throws(StoreError) in try DatabaseSchema.migrate(db, upTo: 5) }
        try old.query("INSERT INTO token (name, digest, scopes, created_at) VALUES ('old', x'00', 'exec', 1)")
        try old.query("INSERT INTO config (path, type, value) VALUES ('a.b', 'integer', '7')")
        #expect(try old.query("PRAGMA user_version") == [[.integer(5)]])
        #expect(try old.query("SELECT name FROM sqlite_master WHERE name LIKE 'script%'") == [])

        let database = try LuaexecDatabase(path: path)
        #expect(try database.connection.query("PRAGMA user_version") == [[.integer(Int64(DatabaseSchema.version))]])
        #expect(try DatabaseSchema.differences(database.connection) == [])
        #expect(try TokenStore(database: database).list().map(\.name) == ["old"])
        #expect(try StateStore(sharing: database).config().map(\.path) == ["a.b"])
        let store = ScriptStore(sharing: database)
        #expect(try store.list() == [])
        try store.install(name: "a.lua", version: 1, source: source("x = 1"), by: "ops", keep: 10)
        #expect(try store.script(named: "a.lua")?.source == source("x = 1"))
    }

    @Test("a backup holds the scripts with their kept versions, and a restore brings them back")
    func backupAndRestore() throws {
        let backup = path + ".backup"
        defer { remove(path, backup) }
        let store = ScriptStore(sharing: try LuaexecDatabase(path: path))
        try store.install(name: "a.lua", version: 1, source: source("one"), by: "ops", keep: 10)
        try store.install(name: "a.lua", version: 2, source: source("two"), by: "ops", keep: 10)
        try store.setEnabled(false, name: "a.lua", by: "admin")
        try DatabaseBackup.backup(path, to: backup)
        try store.delete(name: "a.lua")
        try store.install(name: "b.lua", version: 1, source: source("b"), by: "ops", keep: 10)

        try DatabaseBackup.restore(backup, into: path)
        let restored = ScriptStore(sharing: try LuaexecDatabase(path: path))
        #expect(try restored.list().map(\.name) == ["a.lua"])
        let script = try #require(try restored.script(named: "a.lua"))
        #expect(script.version == 2)
        #expect(!script.enabled)
        #expect(try restored.versions(of: "a.lua").map(\.version) == [2, 1])
        #expect(try restored.source(of: "a.lua", version: 1) == source("one"))
    }

    @Test("a backup made before scripts existed (schema 5) restores, migrated, and leaves no script")
    func restoreFromSchema5() throws {
        let backup = path + ".backup"
        defer { remove(path, backup) }
        let old = try SQLiteDatabase(path: backup)
        try old.write { db throws(StoreError) in try DatabaseSchema.migrate(db, upTo: 5) }
        try old.query("INSERT INTO token (name, digest, scopes, created_at) VALUES ('old', x'00', 'exec', 1)")

        let live = try LuaexecDatabase(path: path)
        try ScriptStore(sharing: live).install(name: "a.lua", version: 1, source: source("x"), by: "ops", keep: 10)
        try DatabaseBackup.restore(backup, into: path)
        let restored = try LuaexecDatabase(path: path)
        #expect(try ScriptStore(sharing: restored).list() == [])
        #expect(try TokenStore(database: restored).list().map(\.name) == ["old"])
        #expect(try DatabaseSchema.differences(restored.connection) == [])
    }
}
