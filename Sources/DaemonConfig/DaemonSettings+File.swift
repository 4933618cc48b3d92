#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import SystemSupport

extension DaemonSettings {
    /// One setting of the config file: its dotted name, what it takes, and how it is applied.
    public struct Key: Sendable {
        /// `limits.time`: the section, a dot, the name.
        public let name: String
        /// What a valid value looks like, for error messages.
        public let expects: String
        /// Stores `node`'s value, or returns false when it is not what `expects` says.
        let apply: @Sendable (inout DaemonSettings, ConfigNode) -> Bool
        /// The value in force, as the config file would spell it.
        let show: @Sendable (DaemonSettings) -> String

        init<T>(
            _ name: String, expects: String, _ field: WritableKeyPath<DaemonSettings, T>,
            read: @escaping @Sendable (ConfigNode) -> T?, valid: @escaping @Sendable (T) -> Bool = { _ in true }
        ) {
            // Key paths to stored properties are immutable values; Swift 6.1 does not yet infer
            // Sendable for a generic one.
            nonisolated(unsafe) let field = field
            self.name = name
            self.expects = expects
            apply = { settings, node in
                guard let value = read(node), valid(value) else { return false }
                settings[keyPath: field] = value
                return true
            }
            show = { settings in
                let value = settings[keyPath: field]
                if let optional = value as? String? { return optional ?? "" }
                if let profile = value as? Profile { return profile.rawValue }
                return "\(value)"
            }
        }
    }

    /// Every setting the config file knows. A name not listed here stops start-up.
    public static let keys: [Key] = [
        Key("listen.socket", expects: "a path, or nothing for the socket systemd passes", \.socket) { node in
            // Empty (`socket:`, `socket: ""`, `--set listen.socket=`): no socket of luaexecd's own.
            if node.isNull || node.string == "" { return .some(nil) }
            return node.string.map { .some($0) }
        },
        Key("listen.threads", expects: "a whole number from 2 to 8", \.threads, read: \.int) { (2...8).contains($0) },
        Key("listen.max_connections", expects: "a whole number from 1 to 65536", \.maxConnections, read: \.int) {
            (1...65536).contains($0)
        },
        Key("listen.read_timeout", expects: "a number of seconds above 0, at most 86400", \.readTimeout, read: \.number) {
            $0 > 0 && $0 <= 86_400
        },
        Key("database", expects: "the path of the SQLite database", \.database, read: \.string) { !$0.isEmpty },
        Key("lua.init_dir", expects: "the path of a directory", \.initDir, read: \.string) { !$0.isEmpty },
        Key("lua.profile", expects: "full or restricted", \.profile) { $0.string.flatMap(Profile.init(rawValue:)) },
        Key("lua.safe_mode", expects: "true or false", \.safeMode, read: \.bool),
        Key("exec.interactive", expects: "true or false", \.interactive, read: \.bool),
        Key("exec.actions", expects: "true or false", \.actions, read: \.bool),
        Key("exec.max_body", expects: "a number of bytes from 0 to 1073741824", \.maxBody, read: \.int) {
            (0...(1 << 30)).contains($0)
        },
        Key("limits.time", expects: "a number of seconds above 0, at most 86400", \.timeLimit, read: \.number) { $0 > 0 && $0 <= 86_400 },
        Key("limits.init_time", expects: "a number of seconds above 0, at most 86400", \.initTimeLimit, read: \.number) {
            $0 > 0 && $0 <= 86_400
        },
        Key("limits.memory", expects: "a whole number of MiB from 4 to 1048576", \.memoryLimitMiB, read: \.int) {
            $0 >= 4 && $0 <= 1 << 20
        },
        Key("limits.persisted", expects: "a whole number of MiB from 1 to 1048576", \.persistedLimitMiB, read: \.int) {
            $0 >= 1 && $0 <= 1 << 20
        },
        Key("limits.queue_timeout", expects: "a number of seconds above 0, at most 86400", \.queueTimeout, read: \.number) {
            $0 > 0 && $0 <= 86_400
        },
        Key("limits.wait", expects: "a number of seconds above 0, at most 3600", \.waitLimit, read: \.number) {
            $0 > 0 && $0 <= 3600
        },
        Key("limits.timers", expects: "a whole number from 1 to 1000000", \.timerLimit, read: \.int) {
            (1...1_000_000).contains($0)
        },
        Key("limits.endpoints", expects: "a whole number from 1 to 1000000", \.endpointLimit, read: \.int) {
            (1...1_000_000).contains($0)
        },
        Key("limits.queue_capacity", expects: "a whole number from 1 to 1000000", \.queueCapacity, read: \.int) {
            (1...1_000_000).contains($0)
        },
        Key("limits.wait_capacity", expects: "a whole number from 1 to 100000", \.waitCapacity, read: \.int) {
            (1...100_000).contains($0)
        },
        Key("auth.failure_limit", expects: "a whole number from 1 to 1000000", \.authFailureLimit, read: \.int) {
            (1...1_000_000).contains($0)
        },
        // Every number has an upper bound: a block of 9223372036854775807 s was accepted and
        // trapped luaexecd (a monotonic instant overflowing) at the first failed authentication.
        Key("auth.block_seconds", expects: "a whole number of seconds from 1 to 31536000 (a year)", \.authBlockSeconds, read: \.int) {
            (1...31_536_000).contains($0)
        },
        Key("log.level", expects: logLevels.joined(separator: ", "), \.logLevel, read: \.string) {
            logLevels.contains($0)
        },
        Key("audit.key", expects: "the path of the audit trail's key file", \.auditKey, read: \.string) { !$0.isEmpty },
        Key("audit.retention_days", expects: "a whole number of days from 1 to 36525", \.auditRetentionDays, read: \.int) {
            (1...36_525).contains($0)
        },
        Key("audit.max_records", expects: "a whole number from 100 to 100000000", \.auditMaxRecords, read: \.int) {
            (100...100_000_000).contains($0)
        },
        Key("scripts.keep_versions", expects: "a whole number from 0 to 1000", \.scriptKeepVersions, read: \.int) {
            (0...1000).contains($0)
        },
    ]

    /// The setting called `name` (`limits.time`), if there is one.
    static func key(named name: String) -> Key? { keys.first { $0.name == name } }

    /// The value of `key` in force, as the config file would spell it.
    public func describe(_ key: Key) -> String { key.show(self) }

    /// The settings of the config file at `path`, over the defaults.
    public static func load(path: String) throws(ConfigError) -> DaemonSettings {
        let bytes: [UInt8]
        do {
            bytes = try Files.contents(atPath: path, limit: 1 << 20)
        } catch .tooLarge {
            throw ConfigError(file: path, line: nil, reason: "over 1 MiB: not a config file")
        } catch {
            throw ConfigError(file: path, line: nil, reason: "cannot read the file: \(error)")
        }
        return try parse(String(decoding: bytes, as: UTF8.self), file: path)
    }

    /// The settings `text` (YAML) sets, over the defaults; `file` names it in errors.
    public static func parse(_ text: String, file: String) throws(ConfigError) -> DaemonSettings {
        let root: ConfigNode?
        do {
            root = try ConfigNode.parse(text)
        } catch {
            throw ConfigError(file: file, line: error.line, reason: "not valid YAML: \(error.problem)")
        }
        var settings = DaemonSettings()
        guard let root else { return settings }  // an empty file (or only comments): the defaults
        try settings.apply(root, prefix: "", file: file)
        return settings
    }

    /// The first part of the dotted names: `listen`, `lua`, `exec`, ...
    private static let sections = Set(
        keys.compactMap { $0.name.split(separator: ".").dropLast().first.map(String.init) })

    private mutating func apply(_ node: ConfigNode, prefix: String, file: String) throws(ConfigError) {
        guard case .mapping(let pairs) = node.kind else {
            let what = prefix.isEmpty ? "the file" : "'\(prefix.dropLast())'"
            throw ConfigError(file: file, line: node.line, reason: "\(what) must be a mapping of names to values")
        }
        var seen: Set<String> = []
        for (keyNode, value) in pairs {
            guard let key = keyNode.string else {
                throw ConfigError(file: file, line: keyNode.line, reason: "a setting's name must be a plain word")
            }
            guard seen.insert(key).inserted else {
                throw ConfigError(file: file, line: keyNode.line, reason: "set more than once: \(key)")
            }
            let name = prefix + key
            if prefix.isEmpty, Self.sections.contains(name) {
                try apply(value, prefix: name + ".", file: file)
                continue
            }
            guard let setting = Self.key(named: name) else {
                let known = prefix.isEmpty
                    ? Self.sections.sorted() + Self.keys.map(\.name).filter { !$0.contains(".") }
                    : Self.keys.map(\.name).filter { $0.hasPrefix(prefix) }
                throw ConfigError(
                    file: file, line: keyNode.line,
                    reason: "unknown setting '\(name)' (known here: \(known.joined(separator: ", ")))")
            }
            guard setting.apply(&self, value) else {
                var given = value.string.map { "'\($0)'" } ?? value.kindName
                if case .scalar(_, plain: false) = value.kind { given += " in quotes, which makes it text: drop the quotes" }
                throw ConfigError(file: file, line: value.line, reason: "\(name): expected \(setting.expects), got \(given)")
            }
        }
    }
}

extension DaemonSettings {
    /// Applies `NAME=VALUE` (a `--set` argument) over these settings, with the config file's
    /// names and checks.
    public mutating func set(_ assignment: String) throws(ConfigError) {
        guard let equals = assignment.firstIndex(of: "=") else {
            throw ConfigError(file: "--set", line: nil, reason: "'\(assignment)' is not NAME=VALUE")
        }
        let name = String(assignment[..<equals])
        let value = String(assignment[assignment.index(after: equals)...])
        guard let setting = Self.key(named: name) else {
            throw ConfigError(
                file: "--set", line: nil,
                reason: "unknown setting '\(name)' (known: \(Self.keys.map(\.name).joined(separator: ", ")))")
        }
        guard setting.apply(&self, ConfigNode(plain: value)) else {
            throw ConfigError(file: "--set", line: nil, reason: "\(name): expected \(setting.expects), got '\(value)'")
        }
    }
}
