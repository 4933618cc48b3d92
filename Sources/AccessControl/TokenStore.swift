import Crypto

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The tokens table of luaexec's SQLite database (SPEC A3, T3, T4).
public final class TokenStore: Sendable {
    let database: SQLiteDatabase
    public var path: String { database.path }

    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    public init(path: String) throws(StoreError) {
        database = try SQLiteDatabase(path: path)
        try database.write { db throws(StoreError) in try Self.migrate(db) }
    }

    /// The schema version this build makes and reads (`PRAGMA user_version`).
    public static let schemaVersion = 5

    /// The schema, by `PRAGMA user_version`. Version 1 is the `token` table (databases of
    /// earlier development builds have the same table and open as they are); 2 adds `published`;
    /// 3 adds `persisted`, `config` and `meta`; 4 adds `set_aside`; 5 adds `audit` and
    /// `audit_seal` (AuditTrail). `target` stops at an earlier
    /// version: `DatabaseSchema` makes each version's schema to compare a backup with.
    static func migrate(_ db: SQLiteDatabase.Transaction, upTo target: Int = schemaVersion) throws(StoreError) {
        let version = try db.query("PRAGMA user_version").first?.first?.integer ?? 0
        if version < 1 && target >= 1 {
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
        if version < 2 && target >= 2 {
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
        if version < 3 && target >= 3 {
            // `persisted` and the config store (StateStore), and the mark `luaexec restore`
            // leaves for the daemon. application_id tells a luaexec database from any other.
            try db.query("CREATE TABLE IF NOT EXISTS persisted (key BLOB NOT NULL PRIMARY KEY, value BLOB NOT NULL)")
            try db.query(
                "CREATE TABLE IF NOT EXISTS config (path TEXT NOT NULL PRIMARY KEY, type TEXT NOT NULL, value BLOB NOT NULL)")
            try db.query("CREATE TABLE IF NOT EXISTS meta (key TEXT NOT NULL PRIMARY KEY, value TEXT NOT NULL)")
            try db.query("PRAGMA application_id = \(Self.applicationID)")
            try db.query("PRAGMA user_version = 3")
        }
        if version < 4 && target >= 4 {
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
        if version < 5 && target >= 5 {
            // The audit trail (AuditTrail, SPEC M7): one row per request or change, each chained
            // to the one before by an HMAC made with a key kept outside the database; the seals
            // mark where the chain starts (after pruning) and ends.
            try db.query(
                """
                CREATE TABLE IF NOT EXISTS audit (
                    seq INTEGER PRIMARY KEY,
                    at INTEGER NOT NULL,
                    kind TEXT NOT NULL,
                    request_id TEXT,
                    client TEXT,
                    token TEXT,
                    scope TEXT,
                    method TEXT,
                    path TEXT,
                    status INTEGER,
                    error TEXT,
                    bytes_in INTEGER,
                    bytes_out INTEGER,
                    duration_us INTEGER,
                    body_sha256 BLOB,
                    detail TEXT,
                    mac BLOB NOT NULL)
                """)
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
    }

    /// `PRAGMA application_id` of a luaexec database: "LXEC".
    public static let applicationID: Int32 = 0x4C58_4543

    /// The SHA-256 digest under which a secret is stored.
    public static func digest(of secret: some StringProtocol) -> [UInt8] {
        Array(SHA256.hash(data: Array(secret.utf8)))
    }

    /// Makes a token and returns its secret, which is shown once and never stored.
    public func create(name: String, scopes: Set<Scope>, expiresAt: Date?, now: Date = Date()) throws(StoreError)
        -> (secret: String, record: TokenRecord)
    {
        guard Self.isValidName(name) else {
            throw StoreError(
                "invalid token name '\(name)': use 1 to 64 letters, digits, '.', '_' or '-'", kind: .invalid)
        }
        guard !scopes.isEmpty else { throw StoreError("a token needs at least one scope", kind: .invalid) }
        let secret = TokenFormat.generate()
        let record = TokenRecord(
            name: name, digest: Self.digest(of: secret), scopes: scopes,
            createdAt: Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down)),
            expiresAt: expiresAt.map { Date(timeIntervalSince1970: $0.timeIntervalSince1970.rounded(.down)) })
        try database.write { db throws(StoreError) in
            guard try db.query("SELECT 1 FROM token WHERE name = ?", [.text(name)]).isEmpty else {
                throw StoreError(
                    "a token named '\(name)' already exists; revoke it first or pick another name", kind: .duplicate)
            }
            try db.query(
                "INSERT INTO token (name, digest, scopes, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                [
                    .text(record.name), .blob(record.digest), .text(Self.encode(scopes)),
                    .integer(Int64(record.createdAt.timeIntervalSince1970)),
                    record.expiresAt.map { .integer(Int64($0.timeIntervalSince1970)) } ?? .null,
                ])
        }
        return (secret, record)
    }

    /// Every token, by name.
    public func list() throws(StoreError) -> [TokenRecord] {
        try database.query(
            "SELECT name, digest, scopes, created_at, expires_at, last_used_at FROM token ORDER BY name"
        ).map(Self.record)
    }

    /// Deletes the token named `name`; throws when there is none.
    public func revoke(name: String) throws(StoreError) {
        let deleted = try database.write { db throws(StoreError) in
            try db.query("DELETE FROM token WHERE name = ?", [.text(name)])
            return db.changes > 0
        }
        guard deleted else { throw StoreError("no token named '\(name)'", kind: .notFound) }
    }

    /// Records when tokens were last used (batched by the caller).
    public func recordUse(_ uses: [String: Date]) throws(StoreError) {
        guard !uses.isEmpty else { return }
        try database.write { db throws(StoreError) in
            for (name, date) in uses {
                try db.query(
                    "UPDATE token SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE name = ?",
                    [.integer(Int64(date.timeIntervalSince1970)), .text(name)])
            }
        }
    }

    /// Changes whenever another connection (the CLI, another process) commits to the database.
    public func dataVersion() throws(StoreError) -> Int {
        Int(try database.query("PRAGMA data_version").first?.first?.integer ?? 0)
    }

    public static func isValidName(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count)
            && name.utf8.allSatisfy { TokenFormat.isBase62($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    private static func encode(_ scopes: Set<Scope>) -> String {
        scopes.sorted().map(\.rawValue).joined(separator: " ")
    }

    private static func record(_ row: [SQLiteValue]) -> TokenRecord {
        func date(_ value: SQLiteValue) -> Date? {
            value.integer.map { Date(timeIntervalSince1970: TimeInterval($0)) }
        }
        let scopes = Set((row[2].text ?? "").split(separator: " ").compactMap { Scope(rawValue: String($0)) })
        return TokenRecord(
            name: row[0].text ?? "", digest: row[1].blob ?? [], scopes: scopes,
            createdAt: date(row[3]) ?? Date(timeIntervalSince1970: 0), expiresAt: date(row[4]),
            lastUsedAt: date(row[5]))
    }
}

/// A database failure or a refused change, with a message a person can act on.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, for an API to choose its status.
    public enum Kind: Sendable {
        /// A name, scope set or value that cannot be stored.
        case invalid
        /// The name is taken.
        case duplicate
        /// Nothing has that name.
        case notFound
        /// The database itself failed.
        case database
    }

    public var kind: Kind
    public var description: String
    public init(_ description: String, kind: Kind = .database) {
        self.description = description
        self.kind = kind
    }
}
