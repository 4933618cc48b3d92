import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// `luaexec backup` and `luaexec restore`: the database's tokens, `persisted`, the config store,
/// the stored scripts with their kept versions and the audit trail, through SQLite's online backup API, consistent while luaexecd runs.
public enum DatabaseBackup {
    /// Copies the database at `path` into a new file `file` (mode 0600: it holds token digests).
    public static func backup(_ path: String, to file: String) throws(StoreError) {
        guard access(file, F_OK) != 0 else { throw StoreError("\(file) exists; give the backup a new name") }
        let source = try SQLiteDatabase(path: path)
        let fd = open(file, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError("cannot create \(file): \(systemErrorText())") }
        close(fd)
        do {
            let target = try SQLiteDatabase(path: file)
            try source.copy(into: target)
        } catch {
            unlink(file)
            throw error
        }
    }

    /// The tables a restore replaces with the backup's rows. Not `published` (what the running
    /// luaexecd publishes now) nor the audit trail, which records what happened and goes on
    /// through a restore: the box's own trail is kept, and a backup's trail is taken only by a
    /// database that has none yet (a box rebuilt from a backup).
    static let restoredTables = [
        "token", "persisted", "config", "meta", "set_aside", "script", "script_version",
    ]

    /// Puts the backup `file`'s data into the database at `path`, after checking that it is an
    /// intact luaexec database with luaexec's own schema and nothing else (`DatabaseSchema`);
    /// nothing changes when it is not. The rows are copied into the live database's schema in
    /// one transaction, with `record` (the restore, for the audit trail) when given. A running
    /// luaexecd notices within a second and starts its state afresh from the restored data.
    public static func restore(_ file: String, into path: String, record: (entry: AuditEntry, key: AuditKey)? = nil)
        throws(StoreError)
    {
        guard access(file, R_OK) == 0 else {
            throw StoreError("cannot read \(file): \(systemErrorText())")
        }
        // The checks and the restore read one private copy in memory: the file cannot change
        // between the two.
        let copy: SQLiteDatabase
        do throws(StoreError) {
            copy = try SQLiteDatabase(path: ":memory:")
            try SQLiteDatabase(readingOnly: file).copy(into: copy)
            let integrity = try copy.query("PRAGMA integrity_check").first?.first?.text
            guard integrity == "ok" else { throw StoreError("it is damaged (\(integrity ?? "no answer"))") }
            let problems = try DatabaseSchema.differences(copy)
            guard problems.isEmpty else {
                let version = try copy.query("PRAGMA user_version").first?.first?.integer ?? 0
                throw StoreError(
                    "its schema is not luaexec's (version \(version)): " + problems.joined(separator: "; "))
            }
            // An older backup's schema brought up to date, so that its tables match the live ones.
            try copy.write { db throws(StoreError) in try DatabaseSchema.migrate(db) }
        } catch {
            throw StoreError("\(file) was not restored: \(error.description)")
        }
        // The live database attaches the checked copy from a private file beside it.
        let live = try LuaexecDatabase(path: path)
        let staging = path + ".restoring-\(UInt64.random(in: 0...UInt64.max))"
        let fd = open(staging, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw StoreError("cannot create \(staging): \(systemErrorText())") }
        close(fd)
        defer {
            for suffix in ["", "-wal", "-shm", "-journal"] { unlink(staging + suffix) }
        }
        try copy.copy(into: SQLiteDatabase(path: staging))
        try live.connection.query("ATTACH DATABASE ? AS restored", [.text(staging)])
        defer { _ = try? live.connection.query("DETACH DATABASE restored") }
        try live.connection.write { db throws(StoreError) in
            for table in restoredTables {
                try db.query("DELETE FROM main.\(table)")
                try db.query("INSERT INTO main.\(table) SELECT * FROM restored.\(table)")
            }
            if try db.query("SELECT 1 FROM main.audit_seal WHERE name = 'anchor'").isEmpty {
                for table in ["audit_batch", "audit_seal"] {
                    try db.query("DELETE FROM main.\(table)")
                    try db.query("INSERT INTO main.\(table) SELECT * FROM restored.\(table)")
                }
            }
            // The mark the daemon looks for.
            try db.query(
                "INSERT OR REPLACE INTO meta (key, value) VALUES ('restored', ?)",
                [.text("\(time(nil))-\(UInt64.random(in: 0...UInt64.max))")])
            if let record {
                var rows = AuditTrail.Rows()
                _ = try AuditTrail.append(
                    AuditBatch([record.entry]), in: db, key: record.key, now: record.entry.at, lastWritten: nil,
                    rows: &rows)
            }
        }
    }
}
