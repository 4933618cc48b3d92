import CSQLite
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// A value SQLite stores or returns.
enum SQLiteValue: Sendable, Equatable {
    case null
    case integer(Int64)
    case text(String)
    case blob([UInt8])

    var integer: Int64? { if case .integer(let value) = self { value } else { nil } }
    var text: String? { if case .text(let value) = self { value } else { nil } }
    var blob: [UInt8]? {
        switch self {
        case .blob(let bytes): bytes
        case .text(let text): Array(text.utf8)
        default: nil
        }
    }
}

/// One SQLite connection over SQLite's C API, used one call at a time.
///
/// luaexec's database is small, so a connection behind a mutex is all it needs; what is written
/// often (the audit trail's batches, a few statements each, several times a second under load)
/// runs statements prepared once (`Connection.statement`). A Swift
/// database package (GRDB) would bring full Foundation, and with it ICU's 34 MB of data, into
/// an appliance's flash.
/// Every failure becomes a `StoreError` with SQLite's message.
final class SQLiteDatabase: Sendable {
    /// The `sqlite3 *` handle and its prepared statements, only touched with the mutex held.
    private let connection: Mutex<Connection>

    /// A handle and the statements prepared on it, by their SQL. Preparing parses and plans the
    /// statement: ~10,000 instructions each, and the audit writer's every batch ran seven (its
    /// transaction, the seals, the last row, the inserts), as many instructions as a dozen
    /// records' HMACs. Statements are kept prepared (SQLite re-prepares one itself when the
    /// schema changes), reset after each use; at most `limit` of them, further ones are
    /// prepared for one use as before.
    fileprivate final class Connection {
        let handle: OpaquePointer
        private var statements: [String: OpaquePointer] = [:]
        static let limit = 64

        init(_ handle: OpaquePointer) { self.handle = handle }

        func statement(_ sql: String) throws(StoreError) -> OpaquePointer {
            if let kept = statements[sql] { return kept }
            var statement: OpaquePointer?
            let keep = statements.count < Self.limit
            let flags = keep ? UInt32(SQLITE_PREPARE_PERSISTENT) : 0
            guard sqlite3_prepare_v3(handle, sql, -1, flags, &statement, nil) == SQLITE_OK, let statement else {
                throw SQLiteDatabase.error(handle, "cannot prepare \(sql)")
            }
            if keep { statements[sql] = statement }
            return statement
        }

        /// After a statement's use: a kept one is reset (which ends its read of the database)
        /// and loses its bindings; one prepared for this use alone is finalized.
        func finished(_ statement: OpaquePointer, _ sql: String) {
            if statements[sql] == statement {
                sqlite3_reset(statement)
                sqlite3_clear_bindings(statement)
            } else {
                sqlite3_finalize(statement)
            }
        }

        /// Finalizes the kept statements, then closes the handle (sqlite3_close_v2 would keep
        /// it open, as a zombie, while a statement lives).
        func close() {
            for statement in statements.values { sqlite3_finalize(statement) }
            statements.removeAll()
            sqlite3_close_v2(handle)
        }
    }
    let path: String

    init(path: String, busyTimeout: Duration = .seconds(5)) throws(StoreError) {
        self.path = path
        Self.restrictToOwner(path)
        var handle: OpaquePointer?
        let flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX
        let status = sqlite3_open_v2(path, &handle, flags, nil)
        guard status == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(status))
            sqlite3_close(handle)
            throw StoreError("cannot open the database \(path): \(message)")
        }
        // The CLI and the daemon share the file: a writer waits for the other's lock.
        sqlite3_busy_timeout(handle, Int32(busyTimeout.components.seconds * 1000))
        connection = Mutex(Connection(handle))
        // Write-ahead logging, and a sync at every commit (FULL: in WAL mode NORMAL may lose the
        // last commits at a power cut): a request's changes to `persisted` are on the disk when
        // its answer goes out (SPEC V6). Readers (the CLI) never wait for the writer.
        try query("PRAGMA journal_mode = WAL")
        try query("PRAGMA synchronous = FULL")
    }

    /// The database holds token digests, `persisted` and the config store: its owner's alone.
    /// SQLite makes a new file 0644 under the usual umask and gives its -wal, -shm and -journal
    /// files the database's mode, so a new file is made 0600 before SQLite opens it; a file made
    /// looser before (an older luaexec, the sqlite3 tool) is tightened, its journal files with
    /// it. Best effort: a file that cannot be made or changed is left to SQLite's open to report.
    private static func restrictToOwner(_ path: String) {
        // An in-memory database (restore's private copy, the schema to compare with) is no file:
        // made here, it was a stray ':memory:' file in the working directory.
        guard !path.isEmpty, path != ":memory:", !path.hasPrefix("file:") else { return }
        let fd = open(path, O_RDONLY | O_CREAT | O_CLOEXEC, 0o600)
        if fd >= 0 { close(fd) }
        for file in [path, path + "-wal", path + "-shm", path + "-journal"] {
            var info = stat()
            guard stat(file, &info) == 0, info.st_uid == geteuid(), info.st_mode & 0o077 != 0 else { continue }
            chmod(file, info.st_mode & 0o700)
        }
    }

    /// Opens an existing file for reading only, as `restore` checks a backup.
    init(readingOnly path: String) throws(StoreError) {
        self.path = path
        var handle: OpaquePointer?
        let status = sqlite3_open_v2(path, &handle, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, nil)
        guard status == SQLITE_OK, let handle else {
            let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(status))
            sqlite3_close(handle)
            throw StoreError("cannot open \(path): \(message)")
        }
        connection = Mutex(Connection(handle))
    }

    /// Copies this whole database into `destination` with SQLite's online backup API: one
    /// consistent snapshot, even while another process writes (SQLite restarts the copy then).
    /// Both connections must be the caller's own, used by nobody else meanwhile (`luaexec backup`
    /// and `restore` open them for this alone), so neither mutex is held during the copy.
    func copy(into destination: SQLiteDatabase) throws(StoreError) {
        let source = connection.withLock { $0.handle }
        let target = destination.connection.withLock { $0.handle }
        guard let backup = sqlite3_backup_init(target, "main", source, "main") else {
            throw Self.error(target, "cannot start copying \(path) to \(destination.path)")
        }
        var status: Int32
        repeat {
            status = sqlite3_backup_step(backup, -1)
            if status == SQLITE_BUSY || status == SQLITE_LOCKED { sqlite3_sleep(50) }
        } while status == SQLITE_OK || status == SQLITE_BUSY || status == SQLITE_LOCKED
        sqlite3_backup_finish(backup)
        guard status == SQLITE_DONE else {
            throw StoreError("cannot copy \(path) to \(destination.path): \(String(cString: sqlite3_errstr(status)))")
        }
    }

    deinit {
        connection.withLock { $0.close() }
    }

    /// Runs `sql` with `arguments` bound to its `?`s and returns every row.
    @discardableResult
    func query(_ sql: String, _ arguments: [SQLiteValue] = []) throws(StoreError) -> [[SQLiteValue]] {
        try connection.withLock { connection throws(StoreError) in try Self.run(connection, sql, arguments) }
    }

    /// Pages this connection read from the file or the WAL since the last call (its page cache's
    /// misses): what a statement reads, for the tests that pruning reads what it removes and not
    /// the whole trail. `PRAGMA shrink_memory` empties the cache first.
    func pagesRead() -> Int {
        connection.withLock { connection in
            var current: Int32 = 0
            var highest: Int32 = 0
            sqlite3_db_status(connection.handle, SQLITE_DBSTATUS_CACHE_MISS, &current, &highest, 1)
            return Int(current)
        }
    }

    /// Runs `body` in one write transaction (BEGIN IMMEDIATE: the write lock is taken at once,
    /// so two writers wait for each other instead of failing half-way); rolls back on a throw.
    func write<T>(_ body: (Transaction) throws(StoreError) -> T) throws(StoreError) -> T {
        try transaction("BEGIN IMMEDIATE", body)
    }

    /// Runs `body` in one read transaction: every query in it sees the same snapshot, while
    /// writers go on (WAL).
    func read<T>(_ body: (Transaction) throws(StoreError) -> T) throws(StoreError) -> T {
        try transaction("BEGIN", body)
    }

    private func transaction<T>(_ begin: String, _ body: (Transaction) throws(StoreError) -> T) throws(StoreError) -> T
    {
        try connection.withLock { connection throws(StoreError) -> T in
            try Self.run(connection, begin, [])
            do throws(StoreError) {
                let result = try body(Transaction(connection: connection))
                try Self.run(connection, "COMMIT", [])
                return result
            } catch {
                _ = try? Self.run(connection, "ROLLBACK", [])
                throw error
            }
        }
    }

    /// Statements inside `write` or `read`; valid only within its body.
    struct Transaction {
        fileprivate let connection: Connection

        @discardableResult
        func query(_ sql: String, _ arguments: [SQLiteValue] = []) throws(StoreError) -> [[SQLiteValue]] {
            try SQLiteDatabase.run(connection, sql, arguments)
        }

        /// Rows the last INSERT, UPDATE or DELETE changed.
        var changes: Int { Int(sqlite3_changes(connection.handle)) }
    }

    @discardableResult
    private static func run(_ connection: Connection, _ sql: String, _ arguments: [SQLiteValue]) throws(StoreError)
        -> [[SQLiteValue]]
    {
        let handle = connection.handle
        let statement = try connection.statement(sql)
        defer { connection.finished(statement, sql) }
        try bind(arguments, to: statement, handle, sql)
        var rows: [[SQLiteValue]] = []
        while true {
            switch sqlite3_step(statement) {
            case SQLITE_ROW:
                rows.append((0..<sqlite3_column_count(statement)).map { column(statement, $0) })
            case SQLITE_DONE:
                return rows
            default:
                throw error(handle, "cannot run \(sql)")
            }
        }
    }

    private static func bind(
        _ arguments: [SQLiteValue], to statement: OpaquePointer, _ handle: OpaquePointer, _ sql: String
    )
        throws(StoreError)
    {
        for (offset, argument) in arguments.enumerated() {
            let index = Int32(offset + 1)
            let status: Int32
            switch argument {
            case .null: status = sqlite3_bind_null(statement, index)
            case .integer(let value): status = sqlite3_bind_int64(statement, index, value)
            case .text(let text):
                status = sqlite3_bind_text(statement, index, text, Int32(text.utf8.count), csqlite_transient())
            case .blob(let bytes):
                status = bytes.withUnsafeBytes { raw in
                    sqlite3_bind_blob(statement, index, raw.baseAddress, Int32(raw.count), csqlite_transient())
                }
            }
            guard status == SQLITE_OK else { throw error(handle, "cannot bind argument \(index) of \(sql)") }
        }
    }

    private static func column(_ statement: OpaquePointer, _ index: Int32) -> SQLiteValue {
        switch sqlite3_column_type(statement, index) {
        case SQLITE_INTEGER:
            return .integer(sqlite3_column_int64(statement, index))
        case SQLITE_TEXT:
            // By its length, not up to a NUL: the audit trail's MACs cover every byte stored.
            // sqlite3_column_text first, then the length of what it returned (SQLite's rule).
            let text = sqlite3_column_text(statement, index)
            let count = Int(sqlite3_column_bytes(statement, index))
            guard count > 0, let text else { return .text("") }
            return .text(String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self))
        case SQLITE_BLOB:
            let count = Int(sqlite3_column_bytes(statement, index))
            guard count > 0, let bytes = sqlite3_column_blob(statement, index) else { return .blob([]) }
            return .blob(Array(UnsafeRawBufferPointer(start: bytes, count: count)))
        case SQLITE_FLOAT:
            // luaexec writes no floats; one from a hand-edited or foreign database (`luaexec
            // restore`) is read as the nearest integer: Int64(1e300) or Int64(nan) would trap.
            let value = sqlite3_column_double(statement, index)
            if value.isNaN { return .null }
            if value >= 0x1p63 { return .integer(.max) }
            if value < -0x1p63 { return .integer(.min) }
            return .integer(Int64(value))
        default:
            return .null
        }
    }

    fileprivate static func error(_ handle: OpaquePointer, _ what: String) -> StoreError {
        StoreError("\(what): \(String(cString: sqlite3_errmsg(handle)))")
    }
}

extension [UInt8] {
    /// `text`'s UTF-8 bytes, copied at once (`withUTF8`): appending its `utf8` view went byte by
    /// byte, for every field of every audit record.
    mutating func append(utf8 text: String) {
        var text = text
        text.withUTF8 { append(contentsOf: $0) }
    }
}
