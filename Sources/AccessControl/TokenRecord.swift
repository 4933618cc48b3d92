#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SystemSupport

/// A stored token: everything but the secret, of which only the SHA-256 digest is kept.
public struct TokenRecord: Sendable, Equatable {
    public var name: String
    public var digest: [UInt8]
    public var scopes: Set<Scope>
    public var createdAt: Date
    public var expiresAt: Date?
    public var lastUsedAt: Date?

    public init(
        name: String, digest: [UInt8], scopes: Set<Scope>, createdAt: Date, expiresAt: Date? = nil,
        lastUsedAt: Date? = nil
    ) {
        self.name = name
        self.digest = digest
        self.scopes = scopes
        self.createdAt = createdAt
        self.expiresAt = expiresAt
        self.lastUsedAt = lastUsedAt
    }

    public func isExpired(at now: Date) -> Bool {
        if let expiresAt { return expiresAt <= now }
        return false
    }
}

extension TokenRecord {
    /// How the audit trail names the making of `created`, the same from the API and the command
    /// line: `token create ops scopes=admin,exec expires=2026-12-31T00:00:00Z`.
    public static func changeDetail(created: TokenRecord) -> String {
        let expires = created.expiresAt.map { UTCTime.iso8601(secondsSince1970: $0.timeIntervalSince1970) } ?? "never"
        return "token create \(created.name) scopes=\(created.scopes.map(\.rawValue).sorted().joined(separator: ",")) "
            + "expires=\(expires)"
    }

    /// How the audit trail names a revocation: `token revoke ops`.
    public static func changeDetail(revoked name: String) -> String { "token revoke \(name)" }
}
