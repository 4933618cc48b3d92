/// luaexec's SQLite database, open and at this build's schema: the one connection that the token
/// store, the state store, the audit trail and the published values share.
///
/// Sharing it matters to the daemon: `PRAGMA data_version` counts other connections' commits
/// only, so the daemon's own writes (a published registry, an audit batch, a `persisted` entry)
/// never look like a change made by another process (`luaexec token`, `luaexec config set`).
public final class LuaexecDatabase: Sendable {
    let connection: SQLiteDatabase
    public var path: String { connection.path }

    /// Opens (creating if needed) the database at `path`, its owner's alone, and brings its
    /// schema up to date (`DatabaseSchema`).
    public init(path: String) throws(StoreError) {
        connection = try SQLiteDatabase(path: path)
        try connection.write { db throws(StoreError) in try DatabaseSchema.migrate(db) }
    }

    /// Changes whenever another connection (the CLI, another process) commits to the database.
    public func dataVersion() throws(StoreError) -> Int {
        Int(try connection.query("PRAGMA data_version").first?.first?.integer ?? 0)
    }
}
