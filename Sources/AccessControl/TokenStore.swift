import Crypto
import GRDB

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The tokens table of luaexec's SQLite database (SPEC A3, T3, T4).
///
/// `@unchecked Sendable`-free: GRDB's `DatabaseQueue` serialises every access itself.
public final class TokenStore: Sendable {
    private let database: DatabaseQueue
    public let path: String

    /// Opens (creating if needed) the database at `path` and brings its schema up to date.
    public init(path: String) throws(StoreError) {
        self.path = path
        do {
            var configuration = Configuration()
            // The CLI and the daemon share the file; a writer waits for the other's lock.
            configuration.busyMode = .timeout(5)
            database = try DatabaseQueue(path: path, configuration: configuration)
            try Self.migrator.migrate(database)
        } catch {
            throw StoreError("cannot open the database \(path): \(error)")
        }
    }

    static var migrator: DatabaseMigrator {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("tokens") { db in
            try db.create(table: "token") { t in
                t.column("name", .text).primaryKey()
                t.column("digest", .blob).notNull().unique()
                t.column("scopes", .text).notNull()
                t.column("created_at", .integer).notNull()
                t.column("expires_at", .integer)
                t.column("last_used_at", .integer)
            }
        }
        return migrator
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
                "invalid token name '\(name)': use 1 to 64 letters, digits, '.', '_' or '-'")
        }
        guard !scopes.isEmpty else { throw StoreError("a token needs at least one scope") }
        let secret = TokenFormat.generate()
        let record = TokenRecord(
            name: name, digest: Self.digest(of: secret), scopes: scopes,
            createdAt: Date(timeIntervalSince1970: now.timeIntervalSince1970.rounded(.down)),
            expiresAt: expiresAt.map { Date(timeIntervalSince1970: $0.timeIntervalSince1970.rounded(.down)) })
        do {
            try database.write { db in
                if try Bool.fetchOne(db, sql: "SELECT 1 FROM token WHERE name = ?", arguments: [name]) == true {
                    throw StoreError("a token named '\(name)' already exists; revoke it first or pick another name")
                }
                try db.execute(
                    sql: "INSERT INTO token (name, digest, scopes, created_at, expires_at) VALUES (?, ?, ?, ?, ?)",
                    arguments: [
                        record.name, Data(record.digest), Self.encode(scopes), Int64(record.createdAt.timeIntervalSince1970),
                        record.expiresAt.map { Int64($0.timeIntervalSince1970) },
                    ])
            }
        } catch let error as StoreError {
            throw error
        } catch {
            throw StoreError("cannot store the token: \(error)")
        }
        return (secret, record)
    }

    /// Every token, by name.
    public func list() throws(StoreError) -> [TokenRecord] {
        do {
            return try database.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM token ORDER BY name").map(Self.record)
            }
        } catch {
            throw StoreError("cannot read the tokens: \(error)")
        }
    }

    /// Deletes the token named `name`; throws when there is none.
    public func revoke(name: String) throws(StoreError) {
        let deleted: Bool
        do {
            deleted = try database.write { db in
                try db.execute(sql: "DELETE FROM token WHERE name = ?", arguments: [name])
                return db.changesCount > 0
            }
        } catch {
            throw StoreError("cannot revoke the token: \(error)")
        }
        guard deleted else { throw StoreError("no token named '\(name)'") }
    }

    /// Records when tokens were last used (batched by the caller).
    public func recordUse(_ uses: [String: Date]) throws(StoreError) {
        guard !uses.isEmpty else { return }
        do {
            try database.write { db in
                for (name, date) in uses {
                    try db.execute(
                        sql: "UPDATE token SET last_used_at = max(coalesce(last_used_at, 0), ?) WHERE name = ?",
                        arguments: [Int64(date.timeIntervalSince1970), name])
                }
            }
        } catch {
            throw StoreError("cannot record token use: \(error)")
        }
    }

    /// Changes whenever another connection (the CLI, another process) commits to the database.
    public func dataVersion() throws(StoreError) -> Int {
        do {
            return try database.read { db in try Int.fetchOne(db, sql: "PRAGMA data_version") ?? 0 }
        } catch {
            throw StoreError("cannot read the database version: \(error)")
        }
    }

    public static func isValidName(_ name: String) -> Bool {
        (1...64).contains(name.utf8.count)
            && name.utf8.allSatisfy { TokenFormat.isBase62($0) || $0 == UInt8(ascii: ".") || $0 == UInt8(ascii: "_") || $0 == UInt8(ascii: "-") }
    }

    private static func encode(_ scopes: Set<Scope>) -> String {
        scopes.sorted().map(\.rawValue).joined(separator: " ")
    }

    private static func record(_ row: Row) -> TokenRecord {
        let scopes = Set((row["scopes"] as String).split(separator: " ").compactMap { Scope(rawValue: String($0)) })
        let digest: Data = row["digest"]
        return TokenRecord(
            name: row["name"], digest: Array(digest), scopes: scopes,
            createdAt: Date(timeIntervalSince1970: TimeInterval(row["created_at"] as Int64)),
            expiresAt: (row["expires_at"] as Int64?).map { Date(timeIntervalSince1970: TimeInterval($0)) },
            lastUsedAt: (row["last_used_at"] as Int64?).map { Date(timeIntervalSince1970: TimeInterval($0)) })
    }
}

/// A database failure, with a message a person can act on.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    public var description: String
    public init(_ description: String) { self.description = description }
}
