import SystemSupport

/// The audit trail in luaexec's database (SPEC M7): table `audit`, one row per request or change,
/// each row's `mac` an HMAC-SHA-256 (key: `AuditKey`, kept outside the database) over the row
/// before's `mac` and its own fields; and table `audit_seal`, two rows sealed with the same key:
///
/// - `anchor`: where the chain starts. At first a random value; after pruning, the `seq` and
///   `mac` of the last record pruned, and how many were pruned in all. So the oldest record
///   left still verifies, and removing records at the start is found (the anchor says where
///   they should begin).
/// - `head`: the `seq` and `mac` of the last record, sealed at every write. Removing records at
///   the end is found (the head names a record that is not there).
///
/// Any other change shows: a changed or inserted row does not match its MAC, a removed one
/// leaves a hole in `seq`. What the database alone cannot show is a rollback of the whole trail
/// and its seals to an earlier copy; luaexecd remembers the last record it wrote and notes
/// (a `notice` record) a trail that went back while it ran, and its journal lines are the
/// witness off the box. docs/audit.md has the design.
public final class AuditTrail: Sendable {
    let database: SQLiteDatabase

    /// The trail in `database`, through the connection the other stores share.
    public init(sharing database: LuaexecDatabase) {
        self.database = database.connection
    }

    /// Where the chain stands: the last record's `seq` and `mac` (or the anchor's, when empty).
    public struct Head: Sendable, Equatable {
        public var seq: Int64
        public var mac: [UInt8]

        /// The MAC in hex, as luaexecd logs where the trail stands.
        public var macHex: String { AuditKey.hex(mac) }
    }

    /// A row of `audit_seal`.
    struct Seal: Equatable {
        var name: String
        var seq: Int64
        var mac: [UInt8]
        var at: Int64
        var pruned: Int64
        var keyID: String
        var seal: [UInt8] = []

        static let label = "luaexec audit seal 1"

        func expected(_ key: AuditKey) -> [UInt8] {
            key.mac(
                AuditEntry.message(
                    label: Self.label, previous: [],
                    [.text(name), .integer(seq), .blob(mac), .integer(at), .integer(pruned), .text(keyID)]))
        }

        func isValid(_ key: AuditKey) -> Bool { keyID == key.id && seal == expected(key) }

        mutating func sign(_ key: AuditKey) {
            keyID = key.id
            seal = expected(key)
        }
    }

    // MARK: Writing

    /// Appends `entries` in one transaction, each chained to the one before, and seals the new
    /// head; makes the anchor first when there is none (an empty `entries` only does that).
    /// `lastWritten` is the head this writer left last time: when the trail no longer holds it
    /// (rolled back, cut short), a `notice` record says so before `entries`, as it does for a
    /// missing or changed seal, so that the change stays on record. Returns the new head.
    @discardableResult
    public func append(_ entries: [AuditEntry], key: AuditKey, now: Int64, lastWritten: Head? = nil)
        throws(StoreError) -> Head
    {
        try append(AuditBatch(entries), key: key, now: now, lastWritten: lastWritten)
    }

    /// `append` of records already encoded (the audit writer's batches).
    @discardableResult
    public func append(_ records: AuditBatch, key: AuditKey, now: Int64, lastWritten: Head? = nil)
        throws(StoreError) -> Head
    {
        try database.write { db throws(StoreError) in
            try Self.append(records, in: db, key: key, now: now, lastWritten: lastWritten)
        }
    }

    /// The label and zero byte that start a record's message.
    private static let recordLabel = Array(AuditEntry.recordLabel.utf8) + [0]

    static func append(
        _ records: AuditBatch, in db: SQLiteDatabase.Transaction, key: AuditKey, now: Int64, lastWritten: Head?
    ) throws(StoreError) -> Head {
        var notices: [String] = []
        let lastRow = try db.query("SELECT seq, mac FROM audit ORDER BY seq DESC LIMIT 1").first.map {
            Head(seq: $0[0].integer ?? 0, mac: $0[1].blob ?? [])
        }
        var anchor: Seal
        if let found = try seal("anchor", in: db) {
            anchor = found
            if !found.isValid(key) {
                notices.append(
                    found.keyID == key.id
                        ? "the anchor seal did not match its contents: it was changed; sealed again"
                        : "the anchor seal was made with key \(found.keyID), not this key (\(key.id)); sealed again")
                anchor.sign(key)
                try store(anchor, in: db)
            }
        } else {
            let first = try db.query("SELECT min(seq) FROM audit").first?.first?.integer
            if first != nil {
                notices.append("the anchor seal was missing; a new one was made: the records before cannot be checked")
            }
            var generator = SystemRandomNumberGenerator()
            anchor = Seal(
                name: "anchor", seq: (first ?? 1) - 1,
                mac: (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) },
                at: now, pruned: 0, keyID: key.id)
            anchor.sign(key)
            try store(anchor, in: db)
        }
        var previous = Head(seq: anchor.seq, mac: anchor.mac)
        let head = try seal("head", in: db)
        if let head, head.isValid(key) {
            previous = Head(seq: head.seq, mac: head.mac)
            if let lastRow, lastRow != previous {
                if lastRow.seq < head.seq {
                    notices.append("records \(lastRow.seq + 1) to \(head.seq) at the end were removed")
                } else if lastRow.seq == head.seq {
                    notices.append("the last record (\(head.seq)) was changed")
                } else {
                    notices.append(
                        "records \(head.seq + 1) to \(lastRow.seq) were added after the head seal, without the key")
                }
            }
        } else if head != nil || lastRow != nil {
            notices.append(
                head == nil
                    ? "the head seal was missing: records at the end may have been removed"
                    : "the head seal did not match: records at the end may have been changed or removed")
            previous = lastRow ?? previous
        }
        if let lastWritten, lastWritten != previous, lastWritten.seq > anchor.seq {
            // Another writer (the command line) may have appended since: the record this writer
            // wrote last is then still there as it was.
            let mac = try db.query("SELECT mac FROM audit WHERE seq = ?", [.integer(lastWritten.seq)]).first?.first?
                .blob
            if mac != lastWritten.mac {
                notices.append(
                    "record \(lastWritten.seq), which luaexecd wrote last, is gone or changed: the trail was rolled back or cut"
                )
            }
        }
        var all = AuditBatch()
        for notice in notices { all.append(AuditEntry(at: now, kind: "notice", detail: notice)) }
        if all.isEmpty { all = records } else { all.append(contentsOf: records) }
        var seq = max(previous.seq, lastRow?.seq ?? previous.seq)
        var chain = previous.mac
        if !all.isEmpty {
            let insert = try db.prepare(
                "INSERT INTO audit (\(AuditEntry.columns), mac) VALUES (\(Array(repeating: "?", count: 17).joined(separator: ", ")))"
            )
            var seqBytes: [UInt8] = []
            seqBytes.reserveCapacity(9)
            try all.forEach { (fields) throws(StoreError) in
                seq += 1
                seqBytes.removeAll(keepingCapacity: true)
                AuditBatch.integer(seq, into: &seqBytes)
                // The message `AuditEntry.message` makes of the stored row, in its pieces.
                chain = key.mac { hasher in
                    Self.recordLabel.withUnsafeBytes { hasher.update(bufferPointer: $0) }
                    chain.withUnsafeBytes { hasher.update(bufferPointer: $0) }
                    seqBytes.withUnsafeBytes { hasher.update(bufferPointer: $0) }
                    hasher.update(bufferPointer: fields)
                }
                try insert.run(seq: seq, fields: fields, mac: chain)
            }
        }
        if all.isEmpty, let head, head.isValid(key), previous == Head(seq: head.seq, mac: head.mac) {
            return previous
        }
        var newHead = Seal(name: "head", seq: seq, mac: chain, at: now, pruned: 0, keyID: key.id)
        newHead.sign(key)
        try store(newHead, in: db)
        return Head(seq: seq, mac: chain)
    }

    /// Removes the oldest records: those beyond the newest `maxRecords`, and those made before
    /// `before` (milliseconds since 1970). The anchor moves to the last record removed, so what
    /// is left still verifies. Returns how many were removed.
    @discardableResult
    public func prune(keepingAtMost maxRecords: Int, before: Int64, key: AuditKey, now: Int64) throws(StoreError) -> Int
    {
        try database.write { db throws(StoreError) in
            guard var anchor = try Self.seal("anchor", in: db) else { return 0 }
            // By position, not by counting: records are numbered one after another from the
            // anchor on, so the newest `maxRecords` are those past `last - maxRecords`. Pruning
            // runs under load, on a table of up to 10^8 records: `count(*)` (and a search by
            // `at`, which has no index) read all of it, each time (bench/NOTES.md).
            guard let last = try db.query("SELECT max(seq) FROM audit").first?.first?.integer else { return 0 }
            var cutoff: Int64?
            if last - Int64(maxRecords) > anchor.seq { cutoff = last - Int64(maxRecords) }
            // By age: only when the oldest record is old enough, which its time says at once.
            if let oldest = try db.query("SELECT at FROM audit ORDER BY seq LIMIT 1").first?.first?.integer,
                oldest < before,
                let old = try db.query("SELECT max(seq) FROM audit WHERE at < ?", [.integer(before)]).first?.first?
                    .integer
            {
                cutoff = max(cutoff ?? old, old)
            }
            guard let cutoff,
                let mac = try db.query("SELECT mac FROM audit WHERE seq = ?", [.integer(cutoff)]).first?.first?.blob
            else { return 0 }
            try db.query("DELETE FROM audit WHERE seq <= ?", [.integer(cutoff)])
            let removed = db.changes
            anchor.seq = cutoff
            anchor.mac = mac
            anchor.at = now
            anchor.pruned += Int64(removed)
            // Sealed with this key whatever sealed it before: pruning vouches for nothing
            // removed, only for where what is left starts.
            anchor.sign(key)
            try Self.store(anchor, in: db)
            return removed
        }
    }

    static func seal(_ name: String, in db: SQLiteDatabase.Transaction) throws(StoreError) -> Seal? {
        try db.query("SELECT name, seq, mac, at, pruned, key_id, seal FROM audit_seal WHERE name = ?", [.text(name)])
            .first.map { row in
                Seal(
                    name: row[0].text ?? "", seq: row[1].integer ?? 0, mac: row[2].blob ?? [], at: row[3].integer ?? 0,
                    pruned: row[4].integer ?? 0, keyID: row[5].text ?? "", seal: row[6].blob ?? [])
            }
    }

    private static func store(_ seal: Seal, in db: SQLiteDatabase.Transaction) throws(StoreError) {
        try db.query(
            "INSERT OR REPLACE INTO audit_seal (name, seq, mac, at, pruned, key_id, seal) VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                .text(seal.name), .integer(seal.seq), .blob(seal.mac), .integer(seal.at), .integer(seal.pruned),
                .text(seal.keyID), .blob(seal.seal),
            ])
    }

    // MARK: Reading

    /// Records in the trail now.
    public func count() throws(StoreError) -> Int {
        Int(try database.query("SELECT count(*) FROM audit").first?.first?.integer ?? 0)
    }

    /// Which records `records` answers; nil matches anything.
    public struct Filter: Sendable, Equatable {
        public var token: String?
        public var kind: String?
        /// From this instant on (milliseconds since 1970), inclusive.
        public var since: Int64?
        /// Before this instant, exclusive.
        public var until: Int64?
        public var status: Int64?
        /// `ok`, `error` (an error kind, or a status of 400 and above), or one error kind.
        public var outcome: String?
        /// Only records before this `seq`: the next page of a listing.
        public var before: Int64?
        public var limit = 100

        public init() {}
    }

    /// The records `filter` matches, newest first, at most `filter.limit`; `more` when older
    /// ones match too.
    public func records(_ filter: Filter) throws(StoreError) -> (entries: [AuditEntry], more: Bool) {
        var conditions: [String] = []
        var arguments: [SQLiteValue] = []
        func add(_ condition: String, _ values: SQLiteValue...) {
            conditions.append(condition)
            arguments += values
        }
        if let token = filter.token { add("token = ?", .text(token)) }
        if let kind = filter.kind { add("kind = ?", .text(kind)) }
        if let since = filter.since { add("at >= ?", .integer(since)) }
        if let until = filter.until { add("at < ?", .integer(until)) }
        if let status = filter.status { add("status = ?", .integer(status)) }
        if let before = filter.before { add("seq < ?", .integer(before)) }
        switch filter.outcome {
        case nil: break
        case "ok": add("error IS NULL AND coalesce(status, 0) < 400")
        case "error": add("(error IS NOT NULL OR status >= 400)")
        case let kind?: add("error = ?", .text(kind))
        }
        let limit = max(0, filter.limit)
        let sql =
            "SELECT \(AuditEntry.columns), mac FROM audit"
            + (conditions.isEmpty ? "" : " WHERE " + conditions.joined(separator: " AND "))
            + " ORDER BY seq DESC LIMIT ?"
        let rows = try database.query(sql, arguments + [.integer(Int64(limit) + 1)])
        return (rows.prefix(limit).map(AuditEntry.init(row:)), rows.count > limit)
    }

    /// What `verify` found.
    public struct Verification: Sendable {
        public enum Outcome: Sendable, Equatable {
            /// Every record matches its MAC and follows the one before, from the anchor to the head.
            case intact
            /// Something was changed, removed or added: `problems` says where.
            case broken
            /// The key cannot check this trail (another key sealed it); `problems` says why.
            case uncheckable
        }

        public var outcome: Outcome
        /// Records in the trail now.
        public var records = 0
        public var first: Int64?
        public var last: Int64?
        /// Records pruned before the anchor, in all.
        public var pruned: Int64 = 0
        /// What the `gap` records say: records luaexecd could not store (the database refused
        /// them for too long), each with its `seq`. Known losses, not breaks.
        public var gaps: [String] = []
        /// Where the chain breaks, oldest first, for a person; at most `maxProblems` of them, and
        /// `moreProblems` counts the rest.
        public var problems: [String] = []
        public var moreProblems = 0

        public static let maxProblems = 20

        mutating func problem(_ text: String) {
            if problems.count < Self.maxProblems { problems.append(text) } else { moreProblems += 1 }
        }
    }

    /// Walks the whole trail, in one read snapshot, and checks each record's MAC and place
    /// against the anchor and the head.
    public func verify(key: AuditKey) throws(StoreError) -> Verification {
        try database.read { db throws(StoreError) in
            var result = Verification(outcome: .intact)
            guard let anchor = try Self.seal("anchor", in: db) else {
                let rows = try db.query("SELECT count(*) FROM audit").first?.first?.integer ?? 0
                result.outcome = .broken
                result.records = Int(rows)
                result.problem(
                    "no anchor seal: luaexecd has not written to this trail yet, or the trail was removed"
                        + (rows > 0 ? " (\(rows) records without it)" : ""))
                return result
            }
            if anchor.keyID != key.id {
                result.outcome = .uncheckable
                result.problem("the trail was sealed with key \(anchor.keyID); this key is \(key.id)")
                return result
            }
            if !anchor.isValid(key) { result.problem("the anchor seal does not match its contents: it was changed") }
            result.pruned = anchor.pruned
            let head = try Self.seal("head", in: db)
            var previous = Head(seq: anchor.seq, mac: anchor.mac)
            var after: Int64 = .min
            while true {
                let rows = try db.query(
                    "SELECT \(AuditEntry.columns), mac FROM audit WHERE seq > ? ORDER BY seq LIMIT 1000",
                    [.integer(after)])
                guard !rows.isEmpty else { break }
                for row in rows {
                    let seq = row[0].integer ?? 0
                    after = seq
                    result.records += 1
                    if result.first == nil { result.first = seq }
                    result.last = seq
                    let stored = row[16].blob ?? []
                    let computed = key.mac(
                        AuditEntry.message(label: AuditEntry.recordLabel, previous: previous.mac, row.prefix(16))
                    )
                    if seq <= anchor.seq {
                        result.problem("record \(seq) lies before the anchor (\(anchor.seq)): it was inserted")
                        continue
                    }
                    if seq > previous.seq + 1 {
                        let what = previous.seq == anchor.seq ? "after the anchor" : "after record \(previous.seq)"
                        result.problem(
                            seq == previous.seq + 2
                                ? "record \(previous.seq + 1) is missing (\(what))"
                                : "records \(previous.seq + 1) to \(seq - 1) are missing (\(what))")
                    } else if computed != stored {
                        result.problem("record \(seq) does not match its MAC: it was changed, or inserted")
                    }
                    switch row[2].text {
                    case "notice":
                        result.problem("luaexecd noted at record \(seq): \(row[15].text ?? "")")
                    case "gap":
                        result.gaps.append("record \(seq): \(row[15].text ?? "")")
                    default: break
                    }
                    previous = Head(seq: seq, mac: stored)
                }
            }
            if let head {
                if !head.isValid(key) {
                    result.problem("the head seal does not match its contents: it was changed")
                } else if head.seq > previous.seq {
                    result.problem(
                        head.seq == previous.seq + 1
                            ? "record \(head.seq) at the end is missing (the head seal names it)"
                            : "records \(previous.seq + 1) to \(head.seq) at the end are missing (the head seal names \(head.seq))"
                    )
                } else if head.seq < previous.seq {
                    result.problem(
                        (previous.seq == head.seq + 1
                            ? "record \(previous.seq) comes" : "records \(head.seq + 1) to \(previous.seq) come")
                            + " after the head seal (\(head.seq)): added without the key")
                } else if head.mac != previous.mac {
                    result.problem("the last record (\(head.seq)) is not the one the head seal names: it was replaced")
                }
            } else if previous.seq != anchor.seq {
                result.problem("no head seal: records at the end may have been removed")
            }
            if !result.problems.isEmpty { result.outcome = .broken }
            return result
        }
    }
}
