import Synchronization

#if canImport(Glibc)
import Glibc
#endif

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// A config store value (SPEC V5): a scalar with its type.
public enum ConfigValue: Sendable, Equatable, CustomStringConvertible {
    case string([UInt8])
    case integer(Int64)
    case number(Double)
    case boolean(Bool)

    /// The type's name, as the `config` table and `luaexec config set --type` spell it.
    public var typeName: String {
        switch self {
        case .string: "string"
        case .integer: "integer"
        case .number: "number"
        case .boolean: "boolean"
        }
    }

    /// As `luaexec config get` prints it: a string's bytes, a number as Lua shows it.
    public var description: String {
        switch self {
        case .string(let bytes): String(decoding: bytes, as: UTF8.self)
        case .integer(let value): String(value)
        case .number(let value): "\(value)"
        case .boolean(let value): value ? "true" : "false"
        }
    }

    /// Config paths: 1 to 256 letters, digits, `.`, `_`, `-` and `/`, not starting or ending with
    /// `.`, and no part between slashes empty, `.` or `..`. A path goes into the admin API's URL
    /// (`/api/v1/admin/config/PATH`), where the web server resolves `..` and `.` parts, even
    /// encoded (`%2F`): such a path would name another route, never itself. CLuaSupport's
    /// persist.c applies the same rule to `config.set`.
    public static func isValidPath(_ path: String) -> Bool {
        let bytes = Array(path.utf8)
        guard (1...256).contains(bytes.count), bytes.first != UInt8(ascii: "."), bytes.last != UInt8(ascii: ".") else {
            return false
        }
        guard bytes.allSatisfy({ TokenFormat.isBase62($0) || "._-/".utf8.contains($0) }) else { return false }
        return !bytes.split(separator: UInt8(ascii: "/"), omittingEmptySubsequences: false).contains {
            $0.isEmpty || $0.elementsEqual([UInt8(ascii: ".")]) || $0.elementsEqual([UInt8(ascii: "."), UInt8(ascii: ".")])
        }
    }

    /// A string value's most bytes, and the most the whole store holds (paths and values as
    /// CLuaSupport's persist.c counts them): settings, not data.
    public static let maxValueBytes = 64 << 10
    public static let maxStoreBytes = 1 << 20

    /// What this value counts against `maxStoreBytes` under `path`.
    public func storedSize(at path: String) -> Int {
        path.utf8.count
            + {
                switch self {
                case .string(let bytes): 5 + bytes.count
                case .integer, .number: 9
                case .boolean: 1
                }
            }()
    }

    /// Why setting `path` to `value` is refused in a store that holds `current`; nil when it fits.
    public static func sizeProblem(_ path: String, _ value: ConfigValue, in current: [(path: String, value: ConfigValue)])
        -> String?
    {
        if case .string(let bytes) = value, bytes.count > maxValueBytes {
            return "a config value is at most \(maxValueBytes) bytes; this one is \(bytes.count) (keep data in persisted)"
        }
        let inUse = current.reduce(0) { $0 + $1.value.storedSize(at: $1.path) }
        let old = current.first { $0.path == path }.map { $0.value.storedSize(at: path) } ?? 0
        let total = inUse - old + value.storedSize(at: path)
        // Shrinking is always allowed, as in persist.c.
        if total <= maxStoreBytes || total <= inUse { return nil }
        return "the config store holds at most \(maxStoreBytes) bytes (\(inUse) in use); this would make it \(total)"
    }

    /// Why `path` is refused, for a person.
    public static func pathProblem(_ path: String) -> String {
        "bad path '\(path)': use 1 to 256 letters, digits, '.', '_', '-' and '/', not starting or ending with '.', with no part between slashes empty, '.' or '..'"
    }

    /// `text` read as `type` (string, integer, number, boolean); nil when it is not one.
    public init?(text: String, type: String) {
        switch type {
        case "string": self = .string(Array(text.utf8))
        case "integer":
            guard let value = Int64(text) else { return nil }
            self = .integer(value)
        case "number":
            guard let value = Double(text), value.isFinite else { return nil }
            self = .number(value)
        case "boolean":
            switch text {
            case "true": self = .boolean(true)
            case "false": self = .boolean(false)
            default: return nil
            }
        default: return nil
        }
    }

    fileprivate var stored: (type: String, value: [UInt8]) {
        switch self {
        case .string(let bytes): ("string", bytes)
        case .integer(let value): ("integer", Array(String(value).utf8))
        // Swift writes the shortest text that reads back as the same double.
        case .number(let value): ("number", Array("\(value)".utf8))
        case .boolean(let value): ("boolean", Array((value ? "true" : "false").utf8))
        }
    }

    fileprivate init?(stored type: String, _ value: [UInt8]) {
        if type == "string" {
            self = .string(value)
        } else {
            self.init(text: String(decoding: value, as: UTF8.self), type: type)
        }
    }
}

/// `persisted` and the config store in luaexec's database (SPEC A3, V5, V6), with the daemon's
/// view of the config store, so that a change made by another process (`luaexec config set`)
/// is found and its callbacks run.
public final class StateStore: Sendable {
    private let shared: LuaexecDatabase
    private var database: SQLiteDatabase { shared.connection }
    /// The config store as the daemon last saw it, and `data_version` then.
    private let known = Mutex<(config: [String: ConfigValue], dataVersion: Int, restoreMark: String?)>(([:], -1, nil))

    /// Shares `database`'s connection with the other stores: the daemon's own commits then do
    /// not look like another process's (`PRAGMA data_version` counts other connections' commits
    /// only).
    public init(sharing database: LuaexecDatabase) {
        shared = database
    }

    /// Every `persisted` entry as it was saved (opaque encoded key and value).
    public func persisted() throws(StoreError) -> [(key: [UInt8], value: [UInt8])] {
        try database.query("SELECT key, value FROM persisted").map { ($0[0].blob ?? [], $0[1].blob ?? []) }
    }

    /// Every config path and value, by path. A row that is not a config value (a hand-edited or
    /// foreign database) is not among them: `setAsideUnreadableConfig` moves such rows away.
    public func config() throws(StoreError) -> [(path: String, value: ConfigValue)] {
        try database.query("SELECT path, type, value FROM config ORDER BY path").compactMap { row in
            guard let path = row[0].text, let type = row[1].text,
                let value = ConfigValue(stored: type, row[2].blob ?? [])
            else { return nil }
            return (path, value)
        }
    }

    // MARK: Entries set aside

    /// A saved entry the daemon could not load, moved out of `persisted` or `config` so that the
    /// daemon starts with the rest (SPEC V6): kept, listed in the status and by `luaexec aside`,
    /// until an administrator removes it.
    public struct SetAsideEntry: Sendable, Equatable {
        public var id: Int64
        /// "persisted" or "config".
        public var section: String
        /// A `persisted` key as Lua shows it (a string, an integer, or the bytes in hex when it is
        /// not a key at all), or a config path.
        public var key: String
        /// The stored value's size in bytes.
        public var bytes: Int
        public var reason: String
        public var setAsideAt: Date
    }

    /// Moves the `persisted` entry stored under `key` (as `persisted()` gave it) to `set_aside`,
    /// with why: one transaction, so it is in one table or the other, never lost.
    public func setAside(persistedKey key: [UInt8], reason: String, now: Date = Date()) throws(StoreError) {
        try database.write { db throws(StoreError) in
            try db.query(
                """
                INSERT INTO set_aside (section, key, type, value, reason, set_aside_at)
                SELECT 'persisted', CAST(key AS BLOB), NULL, CAST(value AS BLOB), ?, ? FROM persisted
                WHERE CAST(key AS BLOB) = ?
                """, [.text(reason), .integer(Int64(now.timeIntervalSince1970)), .blob(key)])
            try db.query("DELETE FROM persisted WHERE CAST(key AS BLOB) = ?", [.blob(key)])
        }
    }

    /// Moves the config rows that are not config values (an unknown type, a number that does not
    /// read as one, a path that is not text or not a config path) or that the state could not
    /// load (`paths`) to
    /// `set_aside`; returns what it moved, for the log.
    @discardableResult
    public func setAsideConfig(paths: [String: String] = [:], now: Date = Date()) throws(StoreError) -> [SetAsideEntry] {
        let rows = try database.query("SELECT rowid, path, type, value FROM config")
        var moving: [(rowid: Int64, reason: String)] = []
        for row in rows {
            guard let rowid = row[0].integer else { continue }
            if let path = row[1].text, let type = row[2].text, ConfigValue(stored: type, row[3].blob ?? []) != nil {
                if !ConfigValue.isValidPath(path) {
                    // Saved before the rule was what it is (or written by hand): no API, CLI or
                    // chunk could read or remove it, and it would count against the store.
                    moving.append((rowid, "not a config path: " + ConfigValue.pathProblem(path)))
                } else if let reason = paths[path] {
                    moving.append((rowid, reason))
                }
            } else {
                moving.append((rowid, "not a config value (type \(row[2].text.map { "'\($0)'" } ?? "missing"))"))
            }
        }
        guard !moving.isEmpty else { return [] }
        let at = Int64(now.timeIntervalSince1970)
        let ids = try database.write { db throws(StoreError) -> [Int64] in
            var ids: [Int64] = []
            for entry in moving {
                try db.query(
                    """
                    INSERT INTO set_aside (section, key, type, value, reason, set_aside_at)
                    SELECT 'config', CAST(path AS BLOB), CAST(type AS TEXT), CAST(value AS BLOB), ?, ? FROM config WHERE rowid = ?
                    """, [.text(entry.reason), .integer(at), .integer(entry.rowid)])
                try db.query("DELETE FROM config WHERE rowid = ?", [.integer(entry.rowid)])
                if let id = try db.query("SELECT last_insert_rowid()").first?.first?.integer { ids.append(id) }
            }
            return ids
        }
        return try setAside().filter { ids.contains($0.id) }
    }

    /// Everything set aside, oldest first.
    public func setAside() throws(StoreError) -> [SetAsideEntry] {
        try database.query("SELECT id, section, key, length(value), reason, set_aside_at FROM set_aside ORDER BY id").map {
            row in
            let section = row[1].text ?? "?"
            let key = row[2].blob ?? []
            return SetAsideEntry(
                id: row[0].integer ?? 0, section: section,
                key: section == "config" ? String(decoding: key, as: UTF8.self) : Self.describe(persistedKey: key),
                bytes: Int(row[3].integer ?? 0), reason: row[4].text ?? "",
                setAsideAt: Date(timeIntervalSince1970: TimeInterval(row[5].integer ?? 0)))
        }
    }

    /// The stored value of one entry set aside, as it was saved (for `luaexec aside export`).
    public func setAsideValue(id: Int64) throws(StoreError) -> [UInt8]? {
        try database.query("SELECT value FROM set_aside WHERE id = ?", [.integer(id)]).first?.first?.blob
    }

    /// Removes one entry set aside; false when there is none with that id.
    public func dropSetAside(id: Int64) throws(StoreError) -> Bool {
        try database.write { db throws(StoreError) -> Bool in
            guard try !db.query("SELECT 1 FROM set_aside WHERE id = ?", [.integer(id)]).isEmpty else { return false }
            try db.query("DELETE FROM set_aside WHERE id = ?", [.integer(id)])
            return true
        }
    }

    /// A `persisted` key as stored (persist.c's encoding: 's' u32 length and bytes, or 'i' and a
    /// little-endian int64) as Lua would show it; anything else in hex.
    public static func describe(persistedKey key: [UInt8]) -> String {
        if key.count == 9, key[0] == UInt8(ascii: "i") {
            let value = key[1...].reversed().reduce(UInt64(0)) { $0 << 8 | UInt64($1) }
            return String(Int64(bitPattern: value))
        }
        if key.count >= 5, key[0] == UInt8(ascii: "s") {
            let length = key[1...4].reversed().reduce(0) { $0 << 8 | Int($1) }
            if length == key.count - 5, let text = String(validating: key[5...], as: UTF8.self) {
                return text
            }
        }
        return "0x" + key.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }
            .joined()
    }

    /// The `persisted` entry stored under `key` (as `persisted()` gives keys), nil when none is.
    public func persisted(key: [UInt8]) throws(StoreError) -> [UInt8]? {
        try database.query("SELECT value FROM persisted WHERE CAST(key AS BLOB) = ?", [.blob(key)]).first?.first?.blob
    }

    public func config(_ path: String) throws(StoreError) -> ConfigValue? {
        let rows = try database.query("SELECT type, value FROM config WHERE path = ?", [.text(path)])
        return rows.first.flatMap { row in row[0].text.flatMap { ConfigValue(stored: $0, row[1].blob ?? []) } }
    }

    /// Saves what one evaluation changed, in one transaction: all of it or none of it.
    public func commit(persisted: [(key: [UInt8], value: [UInt8]?)], config: [(path: String, value: ConfigValue?)])
        throws(StoreError)
    {
        guard !persisted.isEmpty || !config.isEmpty else { return }
        try database.write { db throws(StoreError) in
            for entry in persisted {
                if let value = entry.value {
                    try db.query(
                        "INSERT OR REPLACE INTO persisted (key, value) VALUES (?, ?)", [.blob(entry.key), .blob(value)])
                } else {
                    try db.query("DELETE FROM persisted WHERE key = ?", [.blob(entry.key)])
                }
            }
            for entry in config { try Self.write(entry.path, entry.value, in: db) }
        }
        if !config.isEmpty {
            known.withLock { known in for entry in config { known.config[entry.path] = entry.value } }
        }
    }

    /// Sets (nil: unsets) one path, as `luaexec config` does from outside the daemon.
    public func setConfig(_ path: String, _ value: ConfigValue?) throws(StoreError) {
        try database.write { db throws(StoreError) in try Self.write(path, value, in: db) }
    }

    private static func write(_ path: String, _ value: ConfigValue?, in db: SQLiteDatabase.Transaction)
        throws(StoreError)
    {
        if let value {
            let stored = value.stored
            try db.query(
                "INSERT OR REPLACE INTO config (path, type, value) VALUES (?, ?, ?)",
                [.text(path), .text(stored.type), .blob(stored.value)])
        } else {
            try db.query("DELETE FROM config WHERE path = ?", [.text(path)])
        }
    }

    /// What another process changed since the last call (or since `remember` for the first):
    /// config paths with their new values (nil: unset), and whether a backup was restored, in
    /// which case the caller reloads everything. Costs one `PRAGMA data_version` when nothing
    /// changed.
    public func changesFromOutside() throws(StoreError) -> (
        config: [(path: String, value: ConfigValue?)], restored: Bool
    ) {
        guard known.withLock({ $0.dataVersion }) != (try shared.dataVersion()) else { return ([], false) }
        let current = try snapshot()
        return known.withLock { known in
            defer { known = current }
            guard current.restoreMark == known.restoreMark else { return ([], true) }
            var changes: [(path: String, value: ConfigValue?)] = []
            for (path, value) in current.config where known.config[path] != value { changes.append((path, value)) }
            for path in known.config.keys where current.config[path] == nil { changes.append((path, nil)) }
            return (changes.sorted { $0.path < $1.path }, false)
        }
    }

    /// Takes the database as it is now as what the daemon knows (at start and after a reload).
    public func remember() throws(StoreError) {
        let current = try snapshot()
        known.withLock { $0 = current }
    }

    /// The config store, `data_version` and the restore mark, as they are now.
    private func snapshot() throws(StoreError) -> (config: [String: ConfigValue], dataVersion: Int, restoreMark: String?) {
        let version = try shared.dataVersion()
        let current = Dictionary(try config().map { ($0.path, $0.value) }, uniquingKeysWith: { first, _ in first })
        return (current, version, try restoreMark())
    }

    private func restoreMark() throws(StoreError) -> String? {
        try database.query("SELECT value FROM meta WHERE key = 'restored'").first?.first?.text
    }
}
