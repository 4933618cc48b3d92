import SystemSupport

/// The audit trail in luaexec's database (SPEC M7): a record per request or change, each record's
/// `mac` an HMAC-SHA-256 (key: `AuditKey`, kept outside the database) over the record before's
/// `mac` and its own fields, kept up to 256 records to a row in table `audit_batch`
/// (AuditStoredBatch); and table `audit_seal`, two rows sealed with the same key:
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

    /// `append` of records already encoded (the audit writer's batches). With `lastWritten`, the
    /// records are chained after it and laid out in rows before the transaction begins, so that
    /// the transaction holds the database (which a request's save to `persisted` waits for)
    /// only to insert them; they are chained again inside it only if the trail no longer ends
    /// where this writer left it. The rows are laid out in `rows`, which a writer keeps from
    /// batch to batch.
    @discardableResult
    public func append(
        _ records: AuditBatch, key: AuditKey, now: Int64, lastWritten: Head? = nil, rows: inout Rows
    ) throws(StoreError) -> Head {
        let chained = lastWritten.map { Self.chain(records, after: $0, key: key, into: &rows) }
        return try database.write { db throws(StoreError) in
            try Self.append(records, in: db, key: key, now: now, lastWritten: lastWritten, chained: chained, rows: &rows)
        }
    }

    /// `append` with rows of its own.
    @discardableResult
    public func append(_ records: AuditBatch, key: AuditKey, now: Int64, lastWritten: Head? = nil)
        throws(StoreError) -> Head
    {
        var rows = Rows()
        return try append(records, key: key, now: now, lastWritten: lastWritten, rows: &rows)
    }

    /// The rows a batch is laid out in before it is inserted, kept by the audit writer from batch
    /// to batch with their bytes' capacity, so that a batch allocates no row. Rows made new for
    /// each batch were freed after it: ~2 MB for a batch of 8,192 records, which glibc gave
    /// back to the system at the heap's top and faulted in again for the next (bench/NOTES.md).
    public struct Rows {
        var rows: [AuditStoredBatch.Row] = []
        /// The rows of `rows` the last chain filled; the rest are kept for their capacity.
        var used = 0

        public init() {}

        var filled: ArraySlice<AuditStoredBatch.Row> { rows[..<used] }

        /// Empties the rows, keeping them and their capacity.
        mutating func reset() {
            for index in rows.indices.prefix(used) { rows[index].removeAll() }
            used = 0
        }

        /// Gives back the rows (and their room) past the first `bytes` of room: after a batch of
        /// long records (paths or details of kilobytes), what it needed is not kept for good.
        public mutating func trim(keeping bytes: Int) {
            var room = 0
            var kept = 0
            while kept < rows.count, room + rows[kept].bytes.capacity <= bytes {
                room += rows[kept].bytes.capacity
                kept += 1
            }
            rows.removeLast(rows.count - kept)
            used = min(used, kept)
        }

        /// The room the rows hold.
        public var byteCapacity: Int { rows.reduce(0) { $0 + $1.bytes.capacity } }

        /// The next row to fill: one kept from an earlier batch if there is one.
        mutating func next(reserving bytes: Int) -> Int {
            if used == rows.count { rows.append(AuditStoredBatch.Row()) }
            used += 1
            rows[used - 1].bytes.reserveCapacity(bytes)
            return used - 1
        }
    }

    /// Where records chained after `after` end (their rows are in the `Rows` they were chained
    /// into).
    struct Chained {
        var after: Head
        var head: Head
    }

    /// Chains `records` after `after`: each record's `seq`, fields and MAC into a batch's row in
    /// `rows` (emptied first), the MAC made over the bytes just written (`AuditStoredBatch`); a
    /// row per `rowLimit` records or `rowBytes`.
    static func chain(_ records: AuditBatch, after: Head, key: AuditKey, into rows: inout Rows) -> Chained {
        var seq = after.seq
        var mac = after.mac
        rows.reset()
        guard !records.isEmpty else { return Chained(after: after, head: after) }
        let reserve = min(min(records.count, AuditStoredBatch.rowLimit) * 300, AuditStoredBatch.rowBytes + 512)
        var current = rows.next(reserving: reserve)
        records.forEach { fields in
            if rows.rows[current].isFull() { current = rows.next(reserving: reserve) }
            seq += 1
            rows.rows[current].append(seq: seq, at: AuditBatch.at(of: fields), fields: fields) { signed in
                mac = key.mac { hasher in
                    Self.recordLabel.withUnsafeBytes { hasher.update(bufferPointer: $0) }
                    mac.withUnsafeBytes { hasher.update(bufferPointer: $0) }
                    hasher.update(bufferPointer: signed)
                }
                return mac
            }
        }
        return Chained(after: after, head: Head(seq: seq, mac: mac))
    }

    /// The label and zero byte that start a record's message.
    private static let recordLabel = Array(AuditEntry.recordLabel.utf8) + [0]

    static func append(
        _ records: AuditBatch, in db: SQLiteDatabase.Transaction, key: AuditKey, now: Int64, lastWritten: Head?,
        chained: Chained? = nil, rows: inout Rows
    ) throws(StoreError) -> Head {
        var notices: [String] = []
        // The last record as its batch's row names it, without reading the records (`verify`
        // finds a row whose columns do not describe its records).
        let lastRow = try db.query("SELECT last_seq, last_mac FROM audit_batch ORDER BY first_seq DESC LIMIT 1").first
            .map { Head(seq: $0[0].integer ?? 0, mac: $0[1].blob ?? []) }
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
            let first = try db.query("SELECT min(first_seq) FROM audit_batch").first?.first?.integer
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
            if try record(lastWritten.seq, in: db)?.mac != lastWritten.mac {
                notices.append(
                    "record \(lastWritten.seq), which luaexecd wrote last, is gone or changed: the trail was rolled back or cut"
                )
            }
        }
        // Where the chain goes on: after the head, numbered after the last row (records added
        // without the key keep their numbers, and are noted above).
        let after = Head(seq: max(previous.seq, lastRow?.seq ?? previous.seq), mac: previous.mac)
        let made: Chained
        if notices.isEmpty, let chained, chained.after == after {
            made = chained
        } else {
            var all = AuditBatch()
            for notice in notices { all.append(AuditEntry(at: now, kind: "notice", detail: notice)) }
            if all.isEmpty { all = records } else { all.append(contentsOf: records) }
            made = chain(all, after: after, key: key, into: &rows)
        }
        for row in rows.filled { try row.insert(in: db) }
        if rows.used == 0, let head, head.isValid(key), previous == Head(seq: head.seq, mac: head.mac) {
            return previous
        }
        var newHead = Seal(name: "head", seq: made.head.seq, mac: made.head.mac, at: now, pruned: 0, keyID: key.id)
        newHead.sign(key)
        try store(newHead, in: db)
        return made.head
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
            // runs under load, on a trail of up to 10^8 records: the batches' columns say where
            // to cut, and only the batch across the cut is read (bench/NOTES.md).
            // Every condition names `first_seq` (the rowid): a row holds a batch's columns and the
            // first part of its records (up to 4 KB: about a page a row), so a condition on another column alone
            // read every page of the table, ~800 for 200,000 records, four times a prune; under
            // load that was ten times the bytes pruned, read every quarter second
            // (bench/NOTES.md). Batches are disjoint runs of seq in first_seq's order (`append`
            // and the cut below keep them so), so the last row holds the largest `last_seq`, the
            // first the oldest records, and a row ending by `cutoff` starts by it.
            guard let last = try db.query("SELECT last_seq FROM audit_batch ORDER BY first_seq DESC LIMIT 1")
                .first?.first?.integer
            else {
                return 0
            }
            var cutoff: Int64?
            if last - Int64(maxRecords) > anchor.seq { cutoff = last - Int64(maxRecords) }
            // By age: only when the oldest batch holds a record old enough, which its `min_at`
            // says at once; whole batches by `max_at`, the one across `before` record by record.
            // (Records are stored in the order the writer dated them: a clock set back leaves
            // the older-dated ones behind newer, to be pruned when the oldest batch is.)
            if let oldest = try db.query("SELECT min_at FROM audit_batch ORDER BY first_seq LIMIT 1").first?.first?.integer,
                oldest < before
            {
                var old = try db.query("SELECT max(last_seq) FROM audit_batch WHERE max_at < ?", [.integer(before)])
                    .first?.first?.integer
                for row in try db.query(
                    "SELECT records FROM audit_batch WHERE min_at < ? AND max_at >= ?",
                    [.integer(before), .integer(before)])
                {
                    let spans = (row[0].blob ?? []).withUnsafeBytes(AuditStoredBatch.spans) ?? []
                    for span in spans where span.at < before { old = max(old ?? span.seq, span.seq) }
                }
                if let old { cutoff = max(cutoff ?? old, old) }
            }
            // The batch that holds the cutoff: its MAC moves to the anchor, and the records after
            // it stay, cut from the batch's bytes as they lie.
            guard let cutoff,
                let holding = try db.query(
                    "SELECT first_seq, last_seq, records FROM audit_batch WHERE first_seq <= ? ORDER BY first_seq DESC LIMIT 1",
                    [.integer(cutoff)]
                ).first, let bytes = holding[2].blob,
                let spans = bytes.withUnsafeBytes(AuditStoredBatch.spans),
                let cut = spans.firstIndex(where: { $0.seq == cutoff })
            else { return 0 }
            let mac = Array(bytes[spans[cut].mac])
            // SQLite as Debian builds it overwrites what it deletes (`secure_delete`): the pages
            // of every pruned batch written again as zeros, as much again as storing them. The
            // records pruned are the oldest of a trail that holds no secret (no token, no body),
            // and their pages are taken by the next batches; `FAST` zeroes only what is written
            // anyway. Put back as it was for the rest of the connection's work.
            let secureDelete = try db.query("PRAGMA secure_delete").first?.first?.integer ?? 0
            try db.query("PRAGMA secure_delete = FAST")
            defer { _ = try? db.query("PRAGMA secure_delete = \(secureDelete == 1 ? "ON" : "OFF")") }
            var removed = Int(
                try db.query(
                    "SELECT coalesce(sum(last_seq - first_seq + 1), 0) FROM audit_batch WHERE first_seq <= ? AND last_seq <= ?",
                    [.integer(cutoff), .integer(cutoff)]
                ).first?.first?.integer ?? 0)
            try db.query("DELETE FROM audit_batch WHERE first_seq <= ? AND last_seq <= ?", [.integer(cutoff), .integer(cutoff)])
            if (holding[1].integer ?? 0) > cutoff {
                let kept = spans[(cut + 1)...]
                removed += cut + 1
                try db.query("DELETE FROM audit_batch WHERE first_seq = ?", [holding[0]])
                if let first = kept.first, let last = kept.last {
                    let row = AuditStoredBatch.Row(
                        bytes: Array(bytes[first.range.lowerBound..<last.range.upperBound]), first: first.seq,
                        last: last.seq, minAt: kept.map(\.at).min() ?? 0, maxAt: kept.map(\.at).max() ?? 0,
                        lastMAC: Array(bytes[last.mac]), count: kept.count)
                    try row.insert(in: db)
                }
            }
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

    /// Record `seq`, read from the batch that holds it; nil when there is none.
    static func record(_ seq: Int64, in db: SQLiteDatabase.Transaction) throws(StoreError) -> AuditStoredBatch.Record? {
        let rows = try db.query(
            "SELECT records FROM audit_batch WHERE first_seq <= ? ORDER BY first_seq DESC LIMIT 1", [.integer(seq)])
        return rows.first.flatMap { AuditStoredBatch.records($0[0].blob ?? [])?.first { $0.seq == seq } }
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

    /// The records in the trail, as the batches' rows count them (`verify` checks that they
    /// say what they hold).
    static let countSQL = "SELECT coalesce(sum(last_seq - first_seq + 1), 0) FROM audit_batch"

    /// Records in the trail now.
    public func count() throws(StoreError) -> Int {
        Int(try database.query(Self.countSQL).first?.first?.integer ?? 0)
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

        func matches(_ entry: AuditEntry) -> Bool {
            if let token, entry.token != token { return false }
            if let kind, entry.kind != kind { return false }
            if let since, entry.at < since { return false }
            if let until, entry.at >= until { return false }
            if let status, entry.status != status { return false }
            if let before, entry.seq >= before { return false }
            switch outcome {
            case nil: return true
            case "ok": return entry.error == nil && (entry.status ?? 0) < 400
            case "error": return entry.error != nil || (entry.status ?? 0) >= 400
            case let kind?: return entry.error == kind
            }
        }
    }

    /// The records `filter` matches, newest first, at most `filter.limit`; `more` when older
    /// ones match too.
    public func records(_ filter: Filter) throws(StoreError) -> (entries: [AuditEntry], more: Bool) {
        // The batches that can hold a match, newest first, a few at a time (a batch is up to
        // `rowLimit` records); the records in them filtered here.
        var conditions = ["first_seq < ?"]
        var arguments: [SQLiteValue] = []
        if let since = filter.since {
            conditions.append("max_at >= ?")
            arguments.append(.integer(since))
        }
        if let until = filter.until {
            conditions.append("min_at < ?")
            arguments.append(.integer(until))
        }
        let sql =
            "SELECT first_seq, records FROM audit_batch WHERE " + conditions.joined(separator: " AND ")
            + " ORDER BY first_seq DESC LIMIT 8"
        let limit = max(0, filter.limit)
        var found: [AuditEntry] = []
        var below = filter.before ?? .max
        while found.count <= limit {
            let rows = try database.query(sql, [.integer(below)] + arguments)
            guard let last = rows.last else { break }
            below = last[0].integer ?? .min
            for row in rows {
                for record in (AuditStoredBatch.records(row[1].blob ?? []) ?? []).reversed() {
                    let entry = record.entry
                    if filter.matches(entry) { found.append(entry) }
                    if found.count > limit { break }
                }
                if found.count > limit { break }
            }
        }
        return (Array(found.prefix(limit)), found.count > limit)
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

    /// Checks one record's MAC and place after `previous`, for `verify`.
    private func check(
        _ record: AuditStoredBatch.Record, _ result: inout Verification, _ previous: inout Head, anchor: Seal,
        key: AuditKey
    ) {
        let seq = record.seq
        result.records += 1
        if result.first == nil { result.first = seq }
        result.last = seq
        let stored = record.mac
        let computed = key.mac { hasher in
            Self.recordLabel.withUnsafeBytes { hasher.update(bufferPointer: $0) }
            previous.mac.withUnsafeBytes { hasher.update(bufferPointer: $0) }
            record.signed.withUnsafeBytes { hasher.update(bufferPointer: $0) }
        }
        if seq <= anchor.seq {
            result.problem("record \(seq) lies before the anchor (\(anchor.seq)): it was inserted")
            return
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
        switch record.values[2].text {
        case "notice":
            result.problem("luaexecd noted at record \(seq): \(record.values[15].text ?? "")")
        case "gap":
            result.gaps.append("record \(seq): \(record.values[15].text ?? "")")
        default: break
        }
        previous = Head(seq: seq, mac: stored)
    }

    /// Walks the whole trail, in one read snapshot, and checks each record's MAC and place
    /// against the anchor and the head.
    public func verify(key: AuditKey) throws(StoreError) -> Verification {
        try database.read { db throws(StoreError) in
            var result = Verification(outcome: .intact)
            guard let anchor = try Self.seal("anchor", in: db) else {
                let rows = try db.query(Self.countSQL).first?.first?.integer ?? 0
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
                let batches = try db.query(
                    "SELECT first_seq, last_seq, min_at, max_at, last_mac, records FROM audit_batch WHERE first_seq > ? "
                        + "ORDER BY first_seq LIMIT 8",
                    [.integer(after)])
                guard let lastBatch = batches.last else { break }
                after = lastBatch[0].integer ?? .max
                for batch in batches {
                    let first = batch[0].integer ?? 0
                    guard let records = AuditStoredBatch.records(batch[5].blob ?? []), !records.isEmpty else {
                        result.problem(
                            "the batch stored as records \(first) to \(batch[1].integer ?? 0) cannot be read: it was changed"
                        )
                        continue
                    }
                    let ats = records.map(\.at)
                    if first != records[0].seq || batch[1].integer != records[records.count - 1].seq
                        || batch[2].integer != ats.min() || batch[3].integer != ats.max()
                        || batch[4].blob != records[records.count - 1].mac
                    {
                        result.problem(
                            "the batch stored as records \(first) to \(batch[1].integer ?? 0) does not say what it holds "
                                + "(records \(records[0].seq) to \(records[records.count - 1].seq)): it was changed")
                    }
                    for record in records { check(record, &result, &previous, anchor: anchor, key: key) }
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
