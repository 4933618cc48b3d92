import Crypto
import Synchronization
import SystemSupport

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Checks tokens against an in-memory copy of the tokens table, so that no request reads the
/// database. `refresh()` reloads the copy when another process changed the table; the daemon
/// calls it a few times a second, which is how a `luaexec token` change reaches it (SPEC T4).
///
/// A request only takes a read lock to fetch the current table; last-used times are atomics in the
/// table's entries, so requests never wait for each other here.
public final class Authenticator: Sendable {
    /// One token as the authenticator knows it.
    private final class Entry: Sendable {
        let record: TokenRecord
        let identity: TokenIdentity
        /// Seconds since 1970 of the last use not yet written to the database; 0 when none.
        let unsavedUse = Atomic<Int64>(0)

        init(_ record: TokenRecord) {
            self.record = record
            identity = TokenIdentity(name: record.name, scopes: record.scopes)
        }
    }

    /// A token's SHA-256 as the table's key: four words, hashed as four words rather than as
    /// 32 bytes one at a time.
    struct Digest: Hashable {
        let a, b, c, d: UInt64

        init(_ bytes: UnsafeRawBufferPointer) {
            precondition(bytes.count == 32, "a SHA-256 digest has 32 bytes")
            a = bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self)
            b = bytes.loadUnaligned(fromByteOffset: 8, as: UInt64.self)
            c = bytes.loadUnaligned(fromByteOffset: 16, as: UInt64.self)
            d = bytes.loadUnaligned(fromByteOffset: 24, as: UInt64.self)
        }

    }

    /// An immutable table, replaced whole when the database changes.
    private final class Table: Sendable {
        let byDigest: [Digest: Entry]
        let version: Int
        init(byDigest: [Digest: Entry], version: Int) {
            self.byDigest = byDigest
            self.version = version
        }
    }

    public let store: TokenStore
    private let table = ReadWriteLocked(Table(byDigest: [:], version: -1))
    /// One refresh at a time: two at once could store an older table over a newer one.
    private let refreshing = Mutex(())
    /// The digests of the secrets of tokens in the table, as requests brought them (a client
    /// sends the same secret with every request): remembered only once found in the table, so
    /// that guessed secrets cannot push out known ones.
    private let secrets = DigestMemo(slots: 64, maxLength: TokenFormat.length)

    public init(store: TokenStore) throws(StoreError) {
        self.store = store
        try refresh()
    }

    /// Reloads the tokens if the database changed since the last load.
    ///
    /// - Parameter force: reload even when no other process changed it: after a change made
    ///   through this process's own connection (the admin token API), which `data_version` does
    ///   not count.
    public func refresh(force: Bool = false) throws(StoreError) {
        try refreshing.withLock { _ throws(StoreError) in
            let version = try store.database.dataVersion()
            guard force || table.read().version != version else { return }
            // Uses not yet written would be lost with the old table: write them first.
            try flushUses()
            let records = try store.list()
            let byDigest = Dictionary(
                records.filter { $0.digest.count == 32 }.map { record in
                    (record.digest.withUnsafeBytes(Digest.init), Entry(record))
                },
                uniquingKeysWith: { first, _ in first })
            let fresh = Table(byDigest: byDigest, version: try store.database.dataVersion())
            table.write(fresh)
        }
    }

    /// Writes the last-used times gathered since the previous call. Batched so that no request
    /// waits for a database write; the daemon flushes every minute and at shutdown.
    public func flushUses() throws(StoreError) {
        let current = table.read()
        var uses: [String: Date] = [:]
        for entry in current.byDigest.values {
            let seconds = entry.unsavedUse.exchange(0, ordering: .relaxed)
            if seconds > 0 { uses[entry.record.name] = Date(timeIntervalSince1970: TimeInterval(seconds)) }
        }
        try store.recordUse(uses)
    }

    /// Decides whether `secret` may act with `scope`.
    public func authenticate(_ secret: String, requiring scope: Scope, now: Date = Date()) -> AuthDecision {
        switch identify(secret, now: now) {
        case .failure(let failure): .deny(failure)
        case .success(let identity): identity.permits(scope) ? .allow(identity) : .deny(.insufficientScope(scope))
        }
    }

    /// The token `secret` stands for, whatever it may do; the caller checks its scopes. Counts
    /// as a use of the token.
    public func identify(_ secret: String, now: Date = Date()) -> Result<TokenIdentity, AuthFailure> {
        withUTF8Bytes(of: secret) { identify(secret: $0, now: now) }
    }

    /// As `identify(_:now:)`, with the secret's bytes where they lie (the request's
    /// `Authorization` header): no string made for it.
    public func identify(secret: UnsafeBufferPointer<UInt8>, now: Date = Date()) -> Result<TokenIdentity, AuthFailure> {
        // Anything of another length is refused before it is hashed (a header can be kilobytes).
        guard secret.count == TokenFormat.length else { return .failure(.invalidToken) }
        // The lookup is keyed by the SHA-256 of the secret (remembered for a secret that came
        // before, `secrets`): its timing depends on the digest, which an attacker cannot steer
        // towards a stored one, so it leaks nothing usable.
        var entry: Entry?
        var looked = false
        let digest = secrets.digest(of: UnsafeRawBufferPointer(secret)) { digest in
            looked = true
            entry = table.read().byDigest[digest.withUnsafeBytes(Digest.init)]
            return entry != nil
        }.withUnsafeBytes(Digest.init)
        if !looked { entry = table.read().byDigest[digest] }
        if entry == nil {
            // A typo or a scanner's guess fails here, by its checksum, before the database is
            // asked. The checksum is checked only when the table misses: a digest in the table
            // is that of a secret `TokenFormat.generate` made, well-formed by construction, so
            // a hit needs no second check (the check was ~2% of a request's instructions).
            guard TokenFormat.isWellFormed(secret) else { return .failure(.invalidToken) }
            // A token made a moment ago may not be in the table yet (SPEC T7: usable the moment
            // `luaexec token create` returns). Checking costs one `PRAGMA data_version` when
            // nothing changed, and only well-formed secrets with a valid checksum get here.
            try? refresh()
            entry = table.read().byDigest[digest]
        }
        guard let entry, !entry.record.isExpired(at: now) else { return .failure(.invalidToken) }
        entry.unsavedUse.store(Int64(now.timeIntervalSince1970), ordering: .relaxed)
        return .success(entry.identity)
    }
}
