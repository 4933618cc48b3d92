import Foundation
import Testing

@testable import AccessControl

/// Restore's private copy and the schema it compares with are databases in memory (`:memory:`).
/// Until 5d0392c, making every database file 0600 before SQLite opened it made one of these a
/// file named `:memory:` in the working directory.
@Suite("An in-memory database is no file")
struct InMemoryDatabaseTests {
    @Test("opening ':memory:', the reference schema and a restore leave no ':memory:' file in the working directory")
    func noStrayFile() throws {
        // Relative to the working directory, as the stray was made; the process's own, since
        // changing it would move every test running alongside. The test can fail only where a
        // file can be made.
        let directory = FileManager.default.currentDirectoryPath
        try #require(access(directory, W_OK) == 0, "the working directory \(directory) is not writable")
        // A stray a luaexec from before the fix left here would hide a new one.
        if access(":memory:", F_OK) == 0 { try FileManager.default.removeItem(atPath: ":memory:") }

        _ = try SQLiteDatabase(path: ":memory:")
        _ = try DatabaseSchema.reference(version: DatabaseSchema.version)
        let path = "/tmp/luaexec-memory-\(UUID().uuidString).db"
        let backup = path + ".backup"
        defer {
            for file in [path, backup] {
                for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: file + suffix) }
            }
        }
        _ = try TokenStore(path: path).create(name: "ops", scopes: [.exec], expiresAt: nil)
        try DatabaseBackup.backup(path, to: backup)
        try DatabaseBackup.restore(backup, into: path)
        #expect(try TokenStore(path: path).list().map(\.name) == ["ops"])

        #expect(access(":memory:", F_OK) != 0, "a file named ':memory:' in \(directory)")
    }
}
