/// luaexec's own schema: how a database is brought up to this build's version (`migrate`), and
/// what a database holds beyond it or instead of it (`differences`).
///
/// `luaexec restore` puts a whole database in place, and a database carries more than rows: a
/// trigger, a view, an extra table or index, or a column with another type or default comes
/// along and acts in the live database. A trigger that inserts a revoked token again makes
/// revocation answer success while the token keeps working. So a backup is restored only when
/// its schema is exactly the one luaexec makes at the backup's version (`PRAGMA user_version`):
/// the same tables with the same columns, the same indexes, and nothing else.
enum DatabaseSchema {
    /// The schema version this build makes and reads (`PRAGMA user_version`).
    static let version = 7

    /// The schema, by `PRAGMA user_version`. Version 1 is the `token` table (databases of
    /// earlier development builds have the same table and open as they are); 2 adds `published`;
    /// 3 adds `persisted`, `config` and `meta`; 4 adds `set_aside`; 5 adds `audit` and
    /// `audit_seal` (AuditTrail); 6 adds `script` and `script_version` (ScriptStore); 7 keeps the audit
    /// trail a batch to a row (`audit_batch`, AuditStoredBatch) instead of `audit`. `target` stops
    /// at an earlier version: `reference(version:)` makes each version's schema to compare a
    /// backup with.
    static func migrate(_ db: SQLiteDatabase.Transaction, upTo target: Int = version) throws(StoreError) {
        let found = try db.query("PRAGMA user_version").first?.first?.integer ?? 0
        if found < 1 && target >= 1 {
            try db.query(
                """
                CREATE TABLE IF NOT EXISTS token (
                    name TEXT NOT NULL PRIMARY KEY,
                    digest BLOB NOT NULL UNIQUE,
                    scopes TEXT NOT NULL,
                    created_at INTEGER NOT NULL,
                    expires_at INTEGER,
                    last_used_at INTEGER)
                """)
            try db.query("PRAGMA user_version = 1")
        }
        if found < 2 && target >= 2 {
            // What luaexecd publishes for the command line on the same box (PublishedInfo).
            try db.query(
                """
                CREATE TABLE IF NOT EXISTS published (
                    key TEXT NOT NULL PRIMARY KEY,
                    value TEXT NOT NULL,
                    pid INTEGER NOT NULL,
                    updated_at INTEGER NOT NULL)
                """)
            try db.query("PRAGMA user_version = 2")
        }
        if found < 3 && target >= 3 {
            // `persisted` and the config store (StateStore), and the mark `luaexec restore`
            // leaves for the daemon. application_id tells a luaexec database from any other.
            try db.query("CREATE TABLE IF NOT EXISTS persisted (key BLOB NOT NULL PRIMARY KEY, value BLOB NOT NULL)")
            try db.query(
                "CREATE TABLE IF NOT EXISTS config (path TEXT NOT NULL PRIMARY KEY, type TEXT NOT NULL, value BLOB NOT NULL)")
            try db.query("CREATE TABLE IF NOT EXISTS meta (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL)")
            try db.query("PRAGMA application_id = \(applicationID)")
            try db.query("PRAGMA user_version = 3")
        }
        if found < 4 && target >= 4 {
            // Saved entries that the daemon could not load (StateStore.setAside): moved here
            // at start so that it starts with the rest, kept until an administrator removes them.
            try db.query(
                """
                CREATE TABLE IF NOT EXISTS set_aside (
                    id INTEGER PRIMARY KEY,
                    section TEXT NOT NULL,
                    key BLOB NOT NULL,
                    type TEXT,
                    value BLOB NOT NULL,
                    reason TEXT NOT NULL,
                    set_aside_at INTEGER NOT NULL)
                """)
            try db.query("PRAGMA user_version = 4")
        }
        if found < 5 && target >= 5 {
            // The audit trail (AuditTrail, SPEC M7): one row per request or change, each chained
            // to the one before by an HMAC made with a key kept outside the database; the seals
            // mark where the chain starts (after pruning) and ends.
            try db.query(AuditStoredBatch.createRowTable)
            try db.query(
                """
                CREATE TABLE IF NOT EXISTS audit_seal (
                    name TEXT NOT NULL PRIMARY KEY,
                    seq INTEGER NOT NULL,
                    mac BLOB NOT NULL,
                    at INTEGER NOT NULL,
                    pruned INTEGER NOT NULL,
                    key_id TEXT NOT NULL,
                    seal BLOB NOT NULL)
                """)
            try db.query("PRAGMA user_version = 5")
        }
        if found < 6 && target >= 6 {
            // Stored scripts (ScriptStore, SPEC V8): each name's current version and whether it
            // runs, and the versions kept (the current one and up to scripts.keep_versions
            // before it), each with who installed it and when.
            try db.query(
                """
                CREATE TABLE IF NOT EXISTS script (
                    name TEXT NOT NULL PRIMARY KEY,
                    version INTEGER NOT NULL,
                    enabled INTEGER NOT NULL,
                    updated_by TEXT NOT NULL,
                    updated_at INTEGER NOT NULL)
                """)
            try db.query(
                """
                CREATE TABLE IF NOT EXISTS script_version (
                    name TEXT NOT NULL,
                    version INTEGER NOT NULL,
                    source BLOB NOT NULL,
                    sha256 TEXT NOT NULL,
                    installed_by TEXT NOT NULL,
                    installed_at INTEGER NOT NULL,
                    PRIMARY KEY (name, version))
                """)
            try db.query("PRAGMA user_version = 6")
        }
        if found < 7 && target >= 7 {
            // The audit trail a batch to a row (AuditStoredBatch): a row per record cost SQLite's
            // insert for every request. The records move as they are stored, so every MAC holds.
            try db.query(AuditStoredBatch.createTable)
            try AuditStoredBatch.pack(in: db)
            try db.query("DROP TABLE audit")
            try db.query("PRAGMA user_version = 7")
        }
    }

    /// `PRAGMA application_id` of a luaexec database: "LXEC".
    static let applicationID: Int32 = 0x4C58_4543

    // MARK: - What a database holds beyond the schema

    /// One entry of `sqlite_master`.
    struct Object: Equatable {
        var type: String
        var name: String
        var table: String
        /// The CREATE statement with its white space collapsed; nil for an index SQLite made
        /// itself (a UNIQUE or PRIMARY KEY constraint's).
        var sql: String?

        /// "trigger 'keep' on token", "table 'extra'": as a message names it.
        var described: String {
            type == "table" || type == "view" ? "\(type) '\(name)'" : "\(type) '\(name)' on \(table)"
        }
    }

    /// Why `db`'s schema is not luaexec's, one reason per object, for a person; empty when it is
    /// luaexec's schema at its version. Throws when `db` is not a luaexec database at all.
    static func differences(_ db: SQLiteDatabase) throws(StoreError) -> [String] {
        let version = Int(try db.query("PRAGMA user_version").first?.first?.integer ?? 0)
        let application = try db.query("PRAGMA application_id").first?.first?.integer ?? 0
        // Versions 1 and 2 came before the application id.
        guard version >= 1, application == Int64(applicationID) || (version < 3 && application == 0) else {
            throw StoreError("it is not a luaexec database")
        }
        guard version <= Self.version else {
            throw StoreError(
                "its schema is version \(version), from a later luaexec (this one knows 1 to \(Self.version))"
            )
        }
        let expected = try reference(version: version)
        let found = try objects(of: db)
        let wanted = try objects(of: expected)
        var problems: [String] = []
        for object in found {
            guard let reference = wanted.first(where: { $0.type == object.type && $0.name == object.name }) else {
                problems.append("\(object.described), which luaexec's schema has not")
                continue
            }
            // A table's columns are named one by one; its whole statement only when they agree
            // and something else differs (a CHECK, a UNIQUE).
            let columns = object.type == "table" ? try columnDifferences(object.name, in: db, against: expected) : []
            problems += columns
            if object != reference, columns.isEmpty {
                problems.append(
                    "\(object.described) is defined as `\(object.sql ?? "-")`, luaexec's as `\(reference.sql ?? "-")`")
            }
        }
        for object in wanted where !found.contains(where: { $0.type == object.type && $0.name == object.name }) {
            problems.append("\(object.described) is missing")
        }
        return problems
    }

    /// luaexec's schema at `version`, in a database of its own in memory.
    static func reference(version: Int) throws(StoreError) -> SQLiteDatabase {
        let database = try SQLiteDatabase(path: ":memory:")
        try database.write { db throws(StoreError) in try migrate(db, upTo: version) }
        return database
    }

    static func objects(of db: SQLiteDatabase) throws(StoreError) -> [Object] {
        try db.query("SELECT type, name, tbl_name, sql FROM sqlite_master ORDER BY type, name").map { row in
            Object(
                type: row[0].text ?? "", name: row[1].text ?? "", table: row[2].text ?? "",
                sql: row[3].text.map(collapsingWhiteSpace))
        }
    }

    /// The differences between table `name`'s columns in `db` and in `expected`, by column.
    private static func columnDifferences(_ name: String, in db: SQLiteDatabase, against expected: SQLiteDatabase)
        throws(StoreError) -> [String]
    {
        // The table-valued form binds the name: a crafted database chooses its tables' names.
        let sql = "SELECT name, type, \"notnull\", dflt_value, pk, hidden FROM pragma_table_xinfo(?) ORDER BY cid"
        func columns(_ database: SQLiteDatabase) throws(StoreError) -> [(name: String, definition: String)] {
            try database.query(sql, [.text(name)]).map { row in
                var definition = row[1].text ?? ""
                if row[2].integer == 1 { definition += " NOT NULL" }
                if let value = row[3].text { definition += " DEFAULT \(value)" }
                if (row[4].integer ?? 0) > 0 { definition += " PRIMARY KEY" }
                if (row[5].integer ?? 0) != 0 { definition += " GENERATED" }
                return (row[0].text ?? "", definition.isEmpty ? "(no type)" : definition)
            }
        }
        let found = try columns(db)
        let wanted = try columns(expected)
        var problems: [String] = []
        for column in found {
            if let reference = wanted.first(where: { $0.name == column.name }) {
                if reference.definition != column.definition {
                    problems.append(
                        "column \(name).\(column.name) is \(column.definition), luaexec's is \(reference.definition)")
                }
            } else {
                problems.append("column \(name).\(column.name) (\(column.definition)), which luaexec's schema has not")
            }
        }
        for column in wanted where !found.contains(where: { $0.name == column.name }) {
            problems.append("column \(name).\(column.name) is missing")
        }
        if problems.isEmpty, found.map(\.name) != wanted.map(\.name) {
            problems.append("the columns of table '\(name)' are in another order")
        }
        return problems
    }

    private static func collapsingWhiteSpace(_ sql: String) -> String {
        sql.split(whereSeparator: { $0 == " " || $0 == "\n" || $0 == "\t" || $0 == "\r" }).joined(separator: " ")
    }
}
