import Crypto

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The tokens table of luaexec's SQLite database (SPEC A3, T3, T4): make, list and revoke
/// tokens, and record their use. The database itself (opening, the schema, `data_version`) is
/// `LuaexecDatabase`'s.
public final class TokenStore: Sendable {
    /// The database the table is in, shared with the other stores.
    public let database: LuaexecDatabase
    public var path: String { database.path }
    private var connection: SQLiteDatabase { database.connection }

    public init(database: LuaexecDatabase) {
        self.database = database
    }

    /// Opens (creating if needed) the database at `path` for its tokens (`LuaexecDatabase`).
    public convenience init(path: String) throws(StoreError) {
        self.init(database: try LuaexecDatabase(path: path))
    }

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
        try connection.write { db throws(StoreError) in
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
        try connection.query(
            "SELECT name, digest, scopes, created_at, expires_at, last_used_at FROM token ORDER BY name"
        ).map(Self.record)
    }

    /// Deletes the token named `name`; throws when there is none.
    public func revoke(name: String) throws(StoreError) {
        let deleted = try connection.write { db throws(StoreError) in
            try db.query("DELETE FROM token WHERE name = ?", [.text(name)])
            return db.changes > 0
        }
        guard deleted else { throw StoreError("no token named '\(name)'", kind: .notFound) }
    }

    /// Records when tokens were last used (batched by the caller).
    public func recordUse(_ uses: [String: Date]) throws(StoreError) {
        guard !uses.isEmpty else { return }
        try connection.write { db throws(StoreError) in
            for (name, date) in uses {
                try db.query(
                    "UPDATE token SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE name = ?",
                    [.integer(Int64(date.timeIntervalSince1970)), .text(name)])
            }
        }
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
