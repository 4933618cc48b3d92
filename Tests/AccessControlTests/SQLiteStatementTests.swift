import Foundation
import Testing

@testable import AccessControl

/// `SQLiteDatabase` keeps its statements prepared between uses (the audit writer runs the same
/// few for every batch). A kept statement must end its read of the database when its call
/// returns, as a statement finalized after each use did: a read left open would hold the WAL,
/// and no checkpoint could complete behind it.
@Suite("Kept statements")
struct SQLiteStatementTests {
    let path = "/tmp/luaexec-statements-\(UUID().uuidString).db"

    func remove() {
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
    }

    @Test("a statement used again holds no read: another connection's checkpoint completes and empties the WAL")
    func noReadLeftOpen() throws {
        defer { remove() }
        let database = try SQLiteDatabase(path: path)
        try database.query("CREATE TABLE t (n INTEGER)")
        for n in 0..<3 {
            try database.write { db throws(StoreError) in
                try db.query("INSERT INTO t (n) VALUES (?)", [.integer(Int64(n))])
            }
            // The same SELECT each time, its rows read to the end and not: a LIMIT leaves rows unread.
            #expect(try database.query("SELECT n FROM t ORDER BY n") == (0...n).map { [.integer(Int64($0))] })
            #expect(try database.query("SELECT n FROM t ORDER BY n LIMIT 1") == [[.integer(0)]])
        }
        // busy 0: no reader stood in the way; the WAL truncated to no frames.
        let other = try SQLiteDatabase(path: path)
        #expect(try other.query("PRAGMA wal_checkpoint(TRUNCATE)") == [[.integer(0), .integer(0), .integer(0)]])
        // Bindings do not carry over from one use to the next.
        #expect(try database.query("SELECT ? IS NULL", [.null]) == [[.integer(1)]])
        #expect(try database.query("SELECT ? IS NULL", [.integer(5)]) == [[.integer(0)]])
    }

    @Test("more distinct statements than are kept all run, and a failed one leaves the next use clean")
    func beyondTheLimit() throws {
        defer { remove() }
        let database = try SQLiteDatabase(path: path)
        try database.query("CREATE TABLE t (n INTEGER PRIMARY KEY)")
        for n in 0..<100 {
            #expect(try database.query("SELECT \(n) + count(*) FROM t") == [[.integer(Int64(n))]])
        }
        try database.query("INSERT INTO t (n) VALUES (1)")
        // A constraint error on a kept statement, then the same statement with another value.
        #expect(throws: StoreError.self) { try database.query("INSERT INTO t (n) VALUES (?)", [.integer(1)]) }
        try database.query("INSERT INTO t (n) VALUES (?)", [.integer(2)])
        #expect(try database.query("SELECT n FROM t ORDER BY n") == [[.integer(1)], [.integer(2)]])
        // And a write transaction rolled back by an error commits cleanly the next time.
        #expect(throws: StoreError.self) {
            try database.write { db throws(StoreError) in
                try db.query("INSERT INTO t (n) VALUES (?)", [.integer(3)])
                try db.query("INSERT INTO t (n) VALUES (?)", [.integer(3)])
            }
        }
        try database.write { db throws(StoreError) in try db.query("INSERT INTO t (n) VALUES (?)", [.integer(3)]) }
        #expect(try database.query("SELECT n FROM t ORDER BY n") == [[.integer(1)], [.integer(2)], [.integer(3)]])
    }
}
