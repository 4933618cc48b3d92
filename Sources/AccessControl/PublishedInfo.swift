#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// What luaexecd publishes in its database for `luaexec` on the same box to read: the endpoint
/// registry (`luaexec endpoints`), which lives in the daemon's memory. Each value is a JSON text
/// with the pid of the daemon that wrote it, so a reader can tell a stale one.
public final class PublishedInfo: Sendable {
    /// A published value and who published it when.
    public struct Value: Sendable, Equatable {
        public var text: String
        public var pid: Int32
        public var updatedAt: Date
    }

    private let database: SQLiteDatabase

    /// Shares `database`'s connection with the other stores: the daemon's own writes then do not
    /// look like another process's change to the token table (`PRAGMA data_version`).
    public init(sharing database: LuaexecDatabase) {
        self.database = database.connection
    }

    public func publish(_ key: String, _ text: String, pid: Int32, now: Date = Date()) throws(StoreError) {
        _ = try database.write { db throws(StoreError) in
            try db.query(
                "INSERT OR REPLACE INTO published (key, value, pid, updated_at) VALUES (?, ?, ?, ?)",
                [.text(key), .text(text), .integer(Int64(pid)), .integer(Int64(now.timeIntervalSince1970))])
        }
    }

    public func withdraw(_ key: String) throws(StoreError) {
        _ = try database.write { db throws(StoreError) in
            try db.query("DELETE FROM published WHERE key = ?", [.text(key)])
        }
    }

    public func value(_ key: String) throws(StoreError) -> Value? {
        try database.query("SELECT value, pid, updated_at FROM published WHERE key = ?", [.text(key)]).first.map {
            row in
            Value(
                text: row[0].text ?? "", pid: Int32(row[1].integer ?? 0),
                updatedAt: Date(timeIntervalSince1970: TimeInterval(row[2].integer ?? 0)))
        }
    }
}
