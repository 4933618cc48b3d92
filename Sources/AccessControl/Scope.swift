/// What a token may do (SPEC T4, T7).
///
/// `exec` runs any Lua: `interactive.lua`, every endpoint and every action. The narrow scopes
/// `endpoint:NAME` and `action:NAME` reach that one endpoint or Action URL and nothing else, so
/// a door intercom's token can ring the bell but never run a chunk of its own.
public enum Scope: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// Run Lua through the exec endpoints, endpoints and actions included.
    case exec
    /// The admin API: status, interrupt, reset, the endpoint registry, tokens, config, metrics.
    case admin
    /// Only `/api/v1/metrics`: for a scraper that must not run Lua (SPEC M5).
    case metrics
    /// Only `/api/v1/exec/NAME`, an endpoint a script registered with `http.listen`.
    case endpoint(String)
    /// Only `/api/v1/exec/command?action=NAME`, an action registered with `http.action`.
    case action(String)

    /// `exec`, `admin`, `endpoint:NAME` or `action:NAME`; nil for anything else.
    public init?(rawValue: String) {
        switch rawValue {
        case "exec": self = .exec
        case "admin": self = .admin
        case "metrics": self = .metrics
        default:
            guard let colon = rawValue.firstIndex(of: ":") else { return nil }
            let name = String(rawValue[rawValue.index(after: colon)...])
            guard Self.isValidName(name) else { return nil }
            switch rawValue[..<colon] {
            case "endpoint": self = .endpoint(name)
            case "action": self = .action(name)
            default: return nil
            }
        }
    }

    /// As tokens store it and `--scope` takes it.
    public var rawValue: String {
        switch self {
        case .exec: "exec"
        case .admin: "admin"
        case .metrics: "metrics"
        case .endpoint(let name): "endpoint:" + name
        case .action(let name): "action:" + name
        }
    }

    public var description: String { rawValue }

    public static func < (a: Scope, b: Scope) -> Bool { a.rawValue < b.rawValue }

    /// Whether a token holding `self` may act where `needed` is required: the scope itself,
    /// `exec` where a single endpoint or action is needed, `admin` where `metrics` is.
    public func covers(_ needed: Scope) -> Bool {
        switch (self, needed) {
        case (.exec, .endpoint), (.exec, .action), (.admin, .metrics): true
        default: self == needed
        }
    }

    /// Endpoint and action names: RFC 3986's unreserved characters (letters, digits, `.`, `_`,
    /// `~`, `-`), 1 to 128 bytes, not `.` or `..`. CLuaSupport's http.c applies the same rule when
    /// a script registers a name.
    public static func isValidName(_ name: String) -> Bool {
        let bytes = Array(name.utf8)
        guard (1...128).contains(bytes.count), name != ".", name != ".." else { return false }
        return bytes.allSatisfy { TokenFormat.isBase62($0) || "._~-".utf8.contains($0) }
    }

    /// What `--scope` and the token API accept, for messages.
    public static let syntax = "exec, admin, metrics, endpoint:NAME or action:NAME"
}
