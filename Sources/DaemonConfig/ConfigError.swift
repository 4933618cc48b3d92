/// Why a config file was refused: the file, the line, and what to change.
///
/// Printed as `/etc/luaexec/luaexecd.conf:12: limits.time: expected ...`, the form editors and
/// compilers use, so that an administrator can jump to the line.
public struct ConfigError: Error, Sendable, Equatable, CustomStringConvertible {
    public var file: String
    /// 1-based; nil when the problem is the file as a whole (unreadable, say).
    public var line: Int?
    public var reason: String

    public init(file: String, line: Int?, reason: String) {
        self.file = file
        self.line = line
        self.reason = reason
    }

    public var description: String {
        if let line { return "\(file):\(line): \(reason)" }
        return "\(file): \(reason)"
    }
}
