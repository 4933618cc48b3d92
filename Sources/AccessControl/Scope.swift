/// What a token may do.
public enum Scope: String, Sendable, CaseIterable, Codable, Comparable {
    /// Run Lua through the exec endpoints.
    case exec
    /// The admin API: status, interrupt, reset, token management.
    case admin

    public static func < (a: Scope, b: Scope) -> Bool { a.rawValue < b.rawValue }
}
