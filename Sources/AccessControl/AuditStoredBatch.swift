/// How the trail keeps its records (schema 7): a batch of consecutive records to a row of table
/// `audit_batch`, not a row per record.
///
/// A row per record cost SQLite's insert for every request (its values bound one by one, the
/// record built, the B-tree entered): about 40% of the audit writer's time, which on a two-core
/// box is time nginx and the request threads do not get (bench/NOTES.md). A batch's row costs
/// that once for up to `rowLimit` records (or `rowBytes` bytes).
///
/// `records` is the records one after another, each as the values `seq`, the fields of
/// `AuditEntry.columns` from `at` to `detail`, and `mac`, written as `AuditBatch` writes a value
/// (a type: 0 null, 1 text, 2 integer, 3 blob; then a big-endian 64-bit integer, or a 32-bit
/// length and the bytes). So a record's bytes before its `mac` are exactly what its MAC covers
/// after the label and the previous MAC: the verifier hashes them where they lie. The row's other
/// columns (`first_seq`, `last_seq`, `min_at`, `max_at`, and `last_mac`, the last record's MAC,
/// which the writer compares with the head seal) index the batch for queries, pruning and
/// writing without reading its records (SQLite keeps them on overflow pages, which are read one
/// by one); `verify` checks that they describe the records.
enum AuditStoredBatch {
    static let table = "audit_batch"

    /// Most records in one row: a full batch of the writer's (`AuditWriter.batchSize`) is 32
    /// rows in its one transaction.
    ///
    /// Why not a row per batch: a row's bytes are allocated three times on the way in (the row
    /// built here, SQLite's copy of the bound value, the record SQLite assembles), and luaexecd
    /// maps every allocation of 128 KiB or more on its own and unmaps it when freed (stop.c's
    /// malloc policy, for Lua's large blocks). A row of 1024 records (~240 KiB) made each batch
    /// map, fault in, zero and unmap ~180 pages, and each unmap interrupted the other core to
    /// flush its TLB, where the request thread runs (bench/NOTES.md). Rows below `rowBytes` come
    /// from the heap and reuse it.
    static let rowLimit = 256

    /// A row is closed at this many bytes too (records with long `detail`s), below the mmap
    /// threshold of 128 KiB.
    static let rowBytes = 96 << 10

    /// The table of schema 7 (`DatabaseSchema`).
    static let createTable = """
        CREATE TABLE IF NOT EXISTS audit_batch (
            first_seq INTEGER PRIMARY KEY,
            last_seq INTEGER NOT NULL,
            min_at INTEGER NOT NULL,
            max_at INTEGER NOT NULL,
            last_mac BLOB NOT NULL,
            records BLOB NOT NULL)
        """

    /// The table of schemas 5 and 6: a row per record (`pack` moves its rows into batches).
    static let createRowTable = """
        CREATE TABLE IF NOT EXISTS audit (
            seq INTEGER PRIMARY KEY,
            at INTEGER NOT NULL,
            kind TEXT NOT NULL,
            request_id TEXT,
            client TEXT,
            token TEXT,
            scope TEXT,
            method TEXT,
            path TEXT,
            status INTEGER,
            error TEXT,
            bytes_in INTEGER,
            bytes_out INTEGER,
            duration_us INTEGER,
            body_sha256 BLOB,
            detail TEXT,
            mac BLOB NOT NULL)
        """

    /// Values in a stored record: `seq`, the fifteen fields, `mac`.
    static let valuesPerRecord = 17

    /// A batch's row as it is built: records appended one by one, then `insert`ed.
    struct Row {
        var bytes: [UInt8] = []
        var first: Int64 = 0
        var last: Int64 = 0
        var minAt: Int64 = .max
        var maxAt: Int64 = .min
        var lastMAC: [UInt8] = []
        var count = 0

        var isEmpty: Bool { count == 0 }

        /// Holds `rowLimit` records or `rowBytes` bytes: `insert` it and start the next.
        func isFull(rowLimit: Int = AuditStoredBatch.rowLimit) -> Bool {
            count >= rowLimit || bytes.count >= AuditStoredBatch.rowBytes
        }

        /// Starts a record: its `seq`. The caller appends the fields, then `finish`es it.
        mutating func start(seq: Int64, at: Int64) {
            if count == 0 { first = seq }
            last = seq
            minAt = min(minAt, at)
            maxAt = max(maxAt, at)
            count += 1
            AuditBatch.integer(seq, into: &bytes)
        }

        mutating func finish(mac: [UInt8]) {
            AuditBatch.blob(mac, into: &bytes)
            lastMAC = mac
        }

        /// Appends a record: `seq`, the encoded `fields`, and the MAC that `mac` makes of the
        /// two as written (the bytes it signs, where they lie).
        mutating func append(
            seq: Int64, at: Int64, fields: UnsafeRawBufferPointer, mac: (UnsafeRawBufferPointer) -> [UInt8]
        ) {
            let start = bytes.count
            self.start(seq: seq, at: at)
            bytes.append(contentsOf: fields)
            let made = bytes.withUnsafeBytes { mac(UnsafeRawBufferPointer(rebasing: $0[start...])) }
            finish(mac: made)
        }

        /// Appends a record made of stored values (`seq`, the fields, `mac`, as a row of the
        /// table of schema 6 holds them), each with the type it has.
        mutating func append(values: [SQLiteValue]) {
            start(seq: values[0].integer ?? 0, at: values[1].integer ?? 0)
            lastMAC = values.last?.blob ?? []
            for value in values.dropFirst() { AuditBatch.value(value, into: &bytes) }
        }

        func insert(in db: SQLiteDatabase.Transaction) throws(StoreError) {
            try db.query(
                "INSERT INTO audit_batch (first_seq, last_seq, min_at, max_at, last_mac, records) VALUES (?, ?, ?, ?, ?, ?)",
                [.integer(first), .integer(last), .integer(minAt), .integer(maxAt), .blob(lastMAC), .blob(bytes)])
        }

        mutating func removeAll() {
            bytes.removeAll(keepingCapacity: true)
            (first, last, minAt, maxAt, lastMAC, count) = (0, 0, .max, .min, [], 0)
        }
    }

    /// One record read back from a batch.
    struct Record {
        var seq: Int64
        /// `seq` and the fields, as stored: what the MAC covers after the label and the
        /// previous MAC.
        var signed: ArraySlice<UInt8>
        /// The stored values: `seq`, the fields, `mac` (as `AuditEntry(row:)` takes them).
        var values: [SQLiteValue]

        var mac: [UInt8] { values[16].blob ?? [] }
        var at: Int64 { values[1].integer ?? 0 }
        var entry: AuditEntry { AuditEntry(row: values) }
    }

    /// The records of a batch's bytes, in the order stored; nil when the bytes do not hold whole
    /// records (changed without the key, or cut). The records are where `spans` finds them;
    /// here each field is made a value too.
    static func records(_ bytes: [UInt8]) -> [Record]? {
        bytes.withUnsafeBytes { buffer -> [Record]? in
            guard let spans = spans(buffer) else { return nil }
            var records: [Record] = []
            records.reserveCapacity(spans.count)
            for span in spans {
                var fields = AuditBatch.Fields(buffer)
                fields.offset = span.range.lowerBound
                var values: [SQLiteValue] = []
                values.reserveCapacity(valuesPerRecord)
                // `spans` read each of these fields already.
                while values.count < valuesPerRecord, let field = fields.next() {
                    switch field {
                    case .null: values.append(.null)
                    case .integer(let number): values.append(.integer(number))
                    case .text(let text): values.append(.text(String(decoding: text, as: UTF8.self)))
                    case .blob(let blob): values.append(.blob(Array(blob)))
                    }
                }
                records.append(Record(seq: span.seq, signed: bytes[span.signed], values: values))
            }
            return records
        }
    }

    /// Where a record lies in a batch's bytes, read without making a value of any field.
    struct Span {
        var seq: Int64
        var at: Int64
        /// The whole record.
        var range: Range<Int>
        /// `seq` and the fields, without the MAC: what the MAC covers after the label and the
        /// previous MAC.
        var signed: Range<Int>
        /// Its MAC's bytes (empty when the last value is no blob).
        var mac: Range<Int>
    }

    /// The records of a batch's bytes as spans, in the order stored; nil when the bytes do not
    /// hold whole records. Pruning cuts a batch with it under load: `records` would make a
    /// string of every field of a thousand records (bench/NOTES.md).
    static func spans(_ bytes: UnsafeRawBufferPointer) -> [Span]? {
        var spans: [Span] = []
        var fields = AuditBatch.Fields(bytes)
        while fields.offset < bytes.count {
            let start = fields.offset
            var seq: Int64?
            var at: Int64 = 0
            var signedEnd = start
            var mac = 0..<0
            for index in 0..<valuesPerRecord {
                let before = fields.offset
                if index == valuesPerRecord - 1 { signedEnd = before }
                guard let field = fields.next() else { return nil }
                switch (index, field) {
                case (0, .integer(let number)): seq = number
                case (1, .integer(let number)): at = number
                case (valuesPerRecord - 1, .blob): mac = (before + 5)..<fields.offset
                default: break
                }
            }
            guard let seq else { return nil }
            spans.append(Span(seq: seq, at: at, range: start..<fields.offset, signed: start..<signedEnd, mac: mac))
        }
        return spans
    }

    /// Moves the rows of the table of schema 6 (`audit`, a row per record) into batches, in
    /// `seq` order, each with the values as stored (so every MAC still covers the same bytes,
    /// and a row changed before the move stays found), and empties it.
    static func pack(in db: SQLiteDatabase.Transaction, rowLimit: Int = rowLimit) throws(StoreError) {
        var row = Row()
        var after = Int64.min
        while true {
            let rows = try db.query(
                "SELECT \(AuditEntry.columns), mac FROM audit WHERE seq > ? ORDER BY seq LIMIT 1000", [.integer(after)])
            guard let last = rows.last else { break }
            after = last[0].integer ?? .max
            for values in rows {
                row.append(values: values)
                if row.isFull(rowLimit: rowLimit) {
                    try row.insert(in: db)
                    row.removeAll()
                }
            }
        }
        if !row.isEmpty { try row.insert(in: db) }
        try db.query("DELETE FROM audit")
    }

    /// The reverse of `pack`: the batches as a table `audit` of schema 6, a row per record with
    /// its values as stored, for a person (or a test) to read and edit with SQL as an attacker
    /// with sqlite3 would; `pack` puts them back. Batches whose bytes are not records stay.
    static func unpack(in db: SQLiteDatabase.Transaction) throws(StoreError) {
        try db.query(createRowTable)
        let insert =
            "INSERT INTO audit (\(AuditEntry.columns), mac) VALUES (\(Array(repeating: "?", count: valuesPerRecord).joined(separator: ", ")))"
        for batch in try db.query("SELECT first_seq, records FROM audit_batch") {
            guard let records = records(batch[1].blob ?? []) else { continue }
            for record in records { try db.query(insert, record.values) }
            try db.query("DELETE FROM audit_batch WHERE first_seq = ?", [batch[0]])
        }
    }
}
