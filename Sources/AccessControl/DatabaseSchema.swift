/// luaexec's own schema, and what a database holds beyond it or instead of it.
///
/// `luaexec restore` puts a whole database in place, and a database carries more than rows: a
/// trigger, a view, an extra table or index, or a column with another type or default comes
/// along and acts in the live database. A trigger that inserts a revoked token again makes
/// revocation answer success while the token keeps working. So a backup is restored only when
/// its schema is exactly the one luaexec makes at the backup's version (`PRAGMA user_version`):
/// the same tables with the same columns, the same indexes, and nothing else.
enum DatabaseSchema {
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
        guard version >= 1, application == Int64(TokenStore.applicationID) || (version < 3 && application == 0) else {
            throw StoreError("it is not a luaexec database")
        }
        guard version <= TokenStore.schemaVersion else {
            throw StoreError(
                "its schema is version \(version), from a later luaexec (this one knows 1 to \(TokenStore.schemaVersion))"
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
        try database.write { db throws(StoreError) in try TokenStore.migrate(db, upTo: version) }
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
