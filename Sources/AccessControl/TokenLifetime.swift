#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import SystemSupport

/// A token's lifetime as people write it: a number and `s`, `m`, `h` or `d` (`30d`, `12h`,
/// `45m`, `90s`). `luaexec token create --expires` and the admin token API take it.
public struct TokenLifetime: Sendable, Equatable {
    public var seconds: Double

    public init?(_ text: String) {
        guard let unit = text.last, let value = Double(text.dropLast()), value > 0, value.isFinite else { return nil }
        switch unit {
        case "s": seconds = value
        case "m": seconds = value * 60
        case "h": seconds = value * 3600
        case "d": seconds = value * 86400
        default: return nil
        }
        // The expiry is stored as whole seconds in an Int64: `999999999999999999d` trapped the
        // daemon there. A century is longer than any appliance's life; past it, say "never".
        guard seconds <= Self.longest else { return nil }
    }

    /// 100 years (36525 days).
    public static let longest: Double = 36525 * 86400

    public static let syntax = "a number and s, m, h or d, e.g. 30d, 12h, 45m, 90s, at most 36525d (100 years)"
}

extension TokenRecord {
    /// `{"name":...,"scopes":[...],"created":...,"expires":...|null,"last_used":...|null}`, as
    /// `luaexec token list --json` and `GET /api/v1/admin/tokens` show a token. Never the secret.
    /// Names and scopes are letters, digits and `.:_~-` (TokenStore and Scope check), so they
    /// need no escaping.
    public var json: String {
        func quoted(_ text: String) -> String { "\"" + text + "\"" }
        var fields = [
            "\"name\":\(quoted(name))",
            "\"scopes\":[" + scopes.sorted().map { quoted($0.rawValue) }.joined(separator: ",") + "]",
            "\"created\":\(quoted(Self.iso8601(createdAt)))",
        ]
        fields.append("\"expires\":" + (expiresAt.map { quoted(Self.iso8601($0)) } ?? "null"))
        fields.append("\"last_used\":" + (lastUsedAt.map { quoted(Self.iso8601($0)) } ?? "null"))
        return "{" + fields.joined(separator: ",") + "}"
    }

    private static func iso8601(_ date: Date) -> String { UTCTime.iso8601(secondsSince1970: date.timeIntervalSince1970) }
}
