import Synchronization

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Checks tokens against an in-memory copy of the tokens table, so that no request reads the
/// database. `refresh()` reloads the copy when another process changed the table; the daemon
/// calls it a few times a second, which is how a `luaexec token` change reaches it (SPEC T4).
public final class Authenticator: Sendable {
    private struct Snapshot {
        var byDigest: [[UInt8]: TokenRecord] = [:]
        var version: Int = -1
        var uses: [String: Date] = [:]
    }

    public let store: TokenStore
    private let snapshot = Mutex(Snapshot())

    public init(store: TokenStore) throws(StoreError) {
        self.store = store
        try refresh()
    }

    /// Reloads the tokens if the database changed since the last load.
    public func refresh() throws(StoreError) {
        let version = try store.dataVersion()
        guard snapshot.withLock({ $0.version }) != version else { return }
        let records = try store.list()
        let byDigest = Dictionary(records.map { ($0.digest, $0) }, uniquingKeysWith: { first, _ in first })
        snapshot.withLock {
            $0.byDigest = byDigest
            $0.version = version
        }
    }

    /// Writes the last-used times gathered since the previous call. Batched so that no request
    /// waits for a database write; the daemon flushes every minute and at shutdown.
    public func flushUses() throws(StoreError) {
        let uses = snapshot.withLock { snapshot in
            defer { snapshot.uses.removeAll(keepingCapacity: true) }
            return snapshot.uses
        }
        try store.recordUse(uses)
        // Our own write must not count as another process's change.
        let version = try store.dataVersion()
        snapshot.withLock { $0.version = version }
    }

    /// Decides whether `secret` may act with `scope`.
    public func authenticate(_ secret: String, requiring scope: Scope, now: Date = Date()) -> AuthDecision {
        // A typo or a scanner's guess fails here, before any lookup.
        guard TokenFormat.isWellFormed(secret) else { return .deny(.invalidToken) }
        // The lookup is keyed by the SHA-256 of the secret: its timing depends on the digest,
        // which an attacker cannot steer towards a stored one, so it leaks nothing usable.
        let digest = TokenStore.digest(of: secret)
        return snapshot.withLock { snapshot in
            guard let record = snapshot.byDigest[digest], !record.isExpired(at: now) else {
                return .deny(.invalidToken)
            }
            guard record.scopes.contains(scope) else { return .deny(.insufficientScope(scope)) }
            snapshot.uses[record.name] = now
            return .allow(TokenIdentity(name: record.name, scopes: record.scopes))
        }
    }
}
