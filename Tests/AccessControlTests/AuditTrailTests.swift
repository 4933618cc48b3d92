import Foundation
import Testing

@testable import AccessControl

/// The audit trail's HMAC chain (SPEC M7): whatever is changed, removed or added without the key
/// is found, and says where; pruning keeps what is left verifiable.
@Suite("The audit trail's chain")
struct AuditTrailTests {
    let path = "/tmp/luaexec-audit-\(UUID().uuidString).db"
    let key = AuditKey.random()

    private func remove() {
        for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) }
    }

    /// A trail with `count` request records, one a second from `start` (ms).
    private func trail(_ count: Int, start: Int64 = 1_800_000_000_000) throws -> (AuditTrail, TokenStore) {
        let store = try TokenStore(path: path)
        let trail = AuditTrail(sharing: store.database)
        var entries: [AuditEntry] = []
        for n in 1...count {
            let kind = n % 2 == 0 ? "admin" : "exec"
            let token = n % 3 == 0 ? "ops" : "admin"
            let status: Int64 = n == 4 ? 400 : 200
            let error: String? = n == 4 ? "syntax" : nil
            let at: Int64 = start + Int64(n) * 1000
            let digest = [UInt8](repeating: UInt8(truncatingIfNeeded: n), count: 32)
            entries.append(
                AuditEntry(
                    at: at, kind: kind, requestID: "r\(n)", client: "127.0.0.1", token: token, scope: "exec",
                    method: "POST", path: "/api/v1/exec/interactive.lua", status: status, error: error, bytesIn: 8,
                    bytesOut: 1, durationMicros: 120, bodySHA256: digest))
        }
        try trail.append(entries, key: key, now: start)
        return (trail, store)
    }

    /// Runs `statements` on the trail a row per record (table `audit`, as schema 6 kept it and
    /// `AuditStoredBatch.unpack` shows it), then stores it in batches of `perRow` again: an edit
    /// made with sqlite3 by someone who knows the format, without the key.
    private func edit(_ store: TokenStore, perRow: Int = 2, _ statements: [String]) throws {
        try store.database.connection.write { db throws(StoreError) in
            try AuditStoredBatch.unpack(in: db)
            for statement in statements { try db.query(statement) }
            try AuditStoredBatch.pack(in: db, rowLimit: perRow)
            try db.query("DROP TABLE audit")
        }
    }

    private func problems(_ trail: AuditTrail) throws -> [String] {
        let result = try trail.verify(key: key)
        #expect(result.outcome == (result.problems.isEmpty ? .intact : .broken))
        return result.problems
    }

    @Test("a record's bytes as a request writes them are the stored values, and the message the verifier makes of them")
    func encodedMessage() throws {
        let full = AuditEntry(
            at: 1_800_000_000_123, kind: "exec", requestID: "5f0c", client: "10.0.0.1", token: "ops", scope: "exec",
            method: "POST", path: "/api/v1/exec/interactive.lua", status: 200, error: "runtime", bytesIn: 10,
            bytesOut: 1, durationMicros: 42, bodySHA256: [UInt8](repeating: 7, count: 32), detail: "é\u{0}x")
        let bare = AuditEntry(at: -1, kind: "")
        let previous = [UInt8](repeating: 9, count: 32)
        AuditBatch([full, bare, full]).forEach { fields in
            // Each value, read back from where it lies, is the one the table stores.
            var reader = AuditBatch.Fields(fields)
            var read: [SQLiteValue] = [.integer(77)]
            while let field = reader.next() {
                switch field {
                case .null: read.append(.null)
                case .integer(let number): read.append(.integer(number))
                case .text(let text): read.append(.text(String(decoding: text, as: UTF8.self)))
                case .blob(let blob): read.append(.blob(Array(blob)))
                }
            }
            #expect(reader.offset == fields.count)
            let entry = read[2] == .text("") ? bare : full
            #expect(read == entry.values(seq: 77))
            // The writer's message (the label, the previous MAC, seq, these bytes) is the
            // verifier's.
            var message = Array(AuditEntry.recordLabel.utf8) + [0] + previous
            AuditBatch.integer(77, into: &message)
            message += fields
            #expect(
                message == AuditEntry.message(label: AuditEntry.recordLabel, previous: previous, entry.values(seq: 77)))
        }
        // Cut short or mistyped, a record's bytes are no values.
        for broken: [UInt8] in [[1, 0, 0, 0, 9, 65], [2, 1, 2], [4]] {
            broken.withUnsafeBytes { bytes in
                var cut = AuditBatch.Fields(bytes)
                #expect(cut.next() == nil)
            }
        }
    }

    @Test("an untouched trail verifies, record by record")
    func intact() throws {
        defer { remove() }
        let (trail, _) = try trail(5)
        let result = try trail.verify(key: key)
        #expect(result.outcome == .intact)
        #expect(result.records == 5)
        #expect(result.first == 1 && result.last == 5)
        #expect(result.problems == [])
        // Appending goes on from the head.
        try trail.append([AuditEntry(at: 1, kind: "cli", detail: "token create x")], key: key, now: 2)
        #expect(try trail.verify(key: key).records == 6)
        #expect(try problems(trail) == [])
    }

    @Test(
        "a change, a removal or an insertion made without the key is found, and where",
        arguments: [
            (["DELETE FROM audit WHERE seq = 3"], ["record 3 is missing (after record 2)"]),
            (["DELETE FROM audit WHERE seq IN (2, 3)"], ["records 2 to 3 are missing (after record 1)"]),
            (["DELETE FROM audit WHERE seq = 1"], ["record 1 is missing (after the anchor)"]),
            (
                ["UPDATE audit SET status = 200, error = NULL WHERE seq = 4"],
                ["record 4 does not match its MAC: it was changed, or inserted"]
            ),
            (
                ["UPDATE audit SET token = 'nobody' WHERE seq = 5"],
                ["record 5 does not match its MAC: it was changed, or inserted"]
            ),
            // The same value stored as another type.
            (
                ["UPDATE audit SET token = CAST(token AS BLOB) WHERE seq = 2"],
                ["record 2 does not match its MAC: it was changed, or inserted"]
            ),
            (
                ["DELETE FROM audit WHERE seq = 5"],
                ["record 5 at the end is missing (the head seal names it)"]
            ),
            (
                ["DELETE FROM audit WHERE seq >= 4"],
                ["records 4 to 5 at the end are missing (the head seal names 5)"]
            ),
            (
                ["INSERT INTO audit (seq, at, kind, mac) SELECT 6, at, kind, mac FROM audit WHERE seq = 5"],
                [
                    "record 6 does not match its MAC: it was changed, or inserted",
                    "record 6 comes after the head seal (5): added without the key",
                ]
            ),
            (
                // Made room for, in the middle: every record from there on is out of place.
                [
                    "UPDATE audit SET seq = seq + 10 WHERE seq >= 3", "UPDATE audit SET seq = seq - 9 WHERE seq >= 13",
                    "INSERT INTO audit (seq, at, kind, mac) VALUES (3, 0, 'exec', x'00')",
                ],
                [
                    "record 3 does not match its MAC: it was changed, or inserted",
                    "record 4 does not match its MAC: it was changed, or inserted",
                    "record 5 does not match its MAC: it was changed, or inserted",
                    "record 6 does not match its MAC: it was changed, or inserted",
                    "record 6 comes after the head seal (5): added without the key",
                ]
            ),
            (
                ["UPDATE audit_seal SET seq = 4 WHERE name = 'head'"],
                ["the head seal does not match its contents: it was changed"]
            ),
            (
                ["DELETE FROM audit_seal WHERE name = 'head'"],
                ["no head seal: records at the end may have been removed"]
            ),
            (
                ["UPDATE audit_seal SET pruned = 0, seq = 1 WHERE name = 'anchor'"],
                [
                    "the anchor seal does not match its contents: it was changed",
                    "record 1 lies before the anchor (1): it was inserted",
                    "record 2 does not match its MAC: it was changed, or inserted",
                ]
            ),
        ])
    func tampering(statements: [String], found: [String]) throws {
        defer { remove() }
        let (trail, store) = try trail(5)
        let (sealChanges, recordChanges) = (
            statements.filter { $0.contains("audit_seal") }, statements.filter { !$0.contains("audit_seal") }
        )
        for statement in sealChanges { try store.database.connection.query(statement) }
        if !recordChanges.isEmpty { try edit(store, recordChanges) }
        #expect(try problems(trail) == found)
    }

    @Test("another key cannot check the trail, and says which key sealed it")
    func wrongKey() throws {
        defer { remove() }
        let (trail, _) = try trail(2)
        let other = AuditKey.random()
        let result = try trail.verify(key: other)
        #expect(result.outcome == .uncheckable)
        #expect(result.problems == ["the trail was sealed with key \(key.id); this key is \(other.id)"])
    }

    @Test("a database whose trail was never started, or was wiped, does not verify")
    func noAnchor() throws {
        defer { remove() }
        let (trail, store) = try trail(2)
        try store.database.connection.query("DELETE FROM audit_batch")
        try store.database.connection.query("DELETE FROM audit_seal")
        let result = try trail.verify(key: key)
        #expect(result.outcome == .broken)
        #expect(
            result.problems == ["no anchor seal: luaexecd has not written to this trail yet, or the trail was removed"])
    }

    @Test("pruning by count and by age keeps what is left verifiable, and removing more is still found")
    func pruning() throws {
        defer { remove() }
        let (trail, store) = try trail(10)
        #expect(try trail.prune(keepingAtMost: 6, before: 0, key: key, now: 5) == 4)
        var result = try trail.verify(key: key)
        #expect(result.outcome == .intact)
        #expect(result.records == 6 && result.first == 5 && result.last == 10 && result.pruned == 4)
        // Records 5 and 6 were made at start + 5 s and + 6 s.
        #expect(try trail.prune(keepingAtMost: 100, before: 1_800_000_000_000 + 6500, key: key, now: 6) == 2)
        result = try trail.verify(key: key)
        #expect(result.outcome == .intact && result.records == 4 && result.first == 7 && result.pruned == 6)
        #expect(try trail.prune(keepingAtMost: 100, before: 0, key: key, now: 7) == 0)
        try trail.append([AuditEntry(at: 9, kind: "exec")], key: key, now: 9)
        #expect(try problems(trail) == [])
        // Removing the oldest without moving the anchor (which takes the key) is found.
        try edit(store, ["DELETE FROM audit WHERE seq = 7"])
        #expect(try problems(trail) == ["record 7 is missing (after the anchor)"])
    }

    @Test("pruning everything leaves an empty trail that still verifies and goes on")
    func pruneAll() throws {
        defer { remove() }
        let (trail, _) = try trail(3)
        #expect(try trail.prune(keepingAtMost: 0, before: 0, key: key, now: 1) == 3)
        #expect(try trail.verify(key: key).outcome == .intact)
        try trail.append([AuditEntry(at: 2, kind: "exec")], key: key, now: 2)
        let result = try trail.verify(key: key)
        #expect(result.outcome == .intact && result.first == 4 && result.records == 1)
    }

    @Test("the writer records what it finds wrong before going on, so the trail keeps the break")
    func notices() throws {
        defer { remove() }
        let (trail, store) = try trail(5)
        try edit(store, ["DELETE FROM audit WHERE seq >= 4"])
        let head = try trail.append([AuditEntry(at: 1, kind: "exec")], key: key, now: 7)
        #expect(head.seq == 7)
        let notice = try #require(try trail.records(.init()).entries.first { $0.kind == "notice" })
        #expect(notice.seq == 6)
        #expect(notice.detail == "records 4 to 5 at the end were removed")
        #expect(
            try problems(trail) == [
                "records 4 to 5 are missing (after record 3)",
                "luaexecd noted at record 6: records 4 to 5 at the end were removed",
            ])
    }

    @Test("a trail rolled back to an earlier copy, seals and all, is noted by the writer that wrote past it")
    func rollback() throws {
        defer { remove() }
        let (trail, store) = try trail(2)
        let copy = path + ".copy"
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: copy + suffix) } }
        try DatabaseBackup.backup(path, to: copy)
        let written = try trail.append([AuditEntry(at: 3, kind: "exec")], key: key, now: 3)
        // Put the earlier trail back, as a copy of the file would.
        try store.database.connection.query("ATTACH DATABASE '\(copy)' AS old")
        try store.database.connection.query("DELETE FROM audit_batch")
        try store.database.connection.query("INSERT INTO audit_batch SELECT * FROM old.audit_batch")
        try store.database.connection.query("DELETE FROM audit_seal")
        try store.database.connection.query("INSERT INTO audit_seal SELECT * FROM old.audit_seal")
        try store.database.connection.query("DETACH DATABASE old")
        #expect(try problems(trail) == [])  // the database alone cannot tell
        try trail.append([AuditEntry(at: 4, kind: "exec")], key: key, now: 4, lastWritten: written)
        #expect(
            try problems(trail) == [
                "luaexecd noted at record 3: record 3, which luaexecd wrote last, is gone or changed: the trail was rolled back or cut"
            ])
    }

    @Test("the writer's records, chained before its transaction, go after records another writer added meanwhile")
    func chainedAfterAnother() throws {
        defer { remove() }
        let (trail, _) = try trail(2)
        // luaexecd's writer: what it wrote last, then the command line's record, then the writer
        // again with the head it left (its records were chained after that head, made again).
        let written = try trail.append(AuditBatch([AuditEntry(at: 3, kind: "exec")]), key: key, now: 3, lastWritten: nil)
        try trail.append([AuditEntry(at: 4, kind: "cli", detail: "token create")], key: key, now: 4)
        let next = try trail.append(
            AuditBatch([AuditEntry(at: 5, kind: "exec"), AuditEntry(at: 6, kind: "exec")]), key: key, now: 6,
            lastWritten: written)
        #expect(next.seq == 6)
        #expect(try problems(trail) == [])
        let kinds = try trail.records(.init()).entries.sorted { $0.seq < $1.seq }.map(\.kind)
        #expect(kinds == ["exec", "admin", "exec", "cli", "exec", "exec"])
        // And when nothing came between: the records chained before the transaction are stored.
        let after = try trail.append(AuditBatch([AuditEntry(at: 7, kind: "exec")]), key: key, now: 7, lastWritten: next)
        #expect(after.seq == 7)
        #expect(try problems(trail) == [])
    }

    @Test("rows kept from a larger batch lay out the next, smaller one: only its own rows are stored")
    func rowsKeptFromBatchToBatch() throws {
        defer { remove() }
        let (trail, store) = try trail(1)
        var rows = AuditTrail.Rows()
        var head = try trail.append(AuditBatch([]), key: key, now: 1, lastWritten: nil, rows: &rows)
        // 600 records: three rows of up to 256; then 10 records in the first of them again.
        let big = AuditBatch((0..<600).map { AuditEntry(at: 2 + Int64($0), kind: "exec", requestID: "big\($0)") })
        head = try trail.append(big, key: key, now: 700, lastWritten: head, rows: &rows)
        #expect(rows.rows.count == 3)
        let small = AuditBatch((0..<10).map { AuditEntry(at: 800 + Int64($0), kind: "exec", requestID: "small\($0)") })
        head = try trail.append(small, key: key, now: 900, lastWritten: head, rows: &rows)
        #expect(head.seq == 611)
        #expect(rows.used == 1 && rows.rows.count == 3)
        #expect(try problems(trail) == [])
        let batches = try store.database.connection.read { db throws(StoreError) in
            try db.query("SELECT first_seq, last_seq FROM audit_batch ORDER BY first_seq").map {
                [$0[0].integer ?? 0, $0[1].integer ?? 0]
            }
        }
        #expect(batches == [[1, 1], [2, 257], [258, 513], [514, 601], [602, 611]])
        let ids = try trail.records(.init()).entries.sorted { $0.seq < $1.seq }.compactMap(\.requestID)
        #expect(ids.suffix(10) == (0..<10).map { "small\($0)" })
    }

    @Test("a restore keeps the box's trail, adds itself to it, and brings a backup's trail to a database with none")
    func restore() throws {
        defer { remove() }
        let (trail, store) = try trail(2)
        _ = try store.create(name: "in-backup", scopes: [.exec], expiresAt: nil)
        let backup = path + ".backup"
        let fresh = path + ".fresh"
        defer {
            for file in [backup, fresh] {
                for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: file + suffix) }
            }
        }
        try DatabaseBackup.backup(path, to: backup)
        try trail.append([AuditEntry(at: 3, kind: "exec"), AuditEntry(at: 4, kind: "exec")], key: key, now: 4)
        _ = try store.create(name: "after-backup", scopes: [.exec], expiresAt: nil)

        let entry = AuditEntry(at: 5, kind: "cli", client: "cli", detail: "restore \(backup)")
        try DatabaseBackup.restore(backup, into: path, record: (entry, key))
        #expect(try store.list().map(\.name) == ["in-backup"])
        var result = try trail.verify(key: key)
        #expect(result.outcome == .intact && result.records == 5)
        #expect(try trail.records(.init()).entries.first?.detail == "restore \(backup)")

        _ = try TokenStore(path: fresh)
        try DatabaseBackup.restore(backup, into: fresh)
        result = try AuditTrail(sharing: LuaexecDatabase(path: fresh)).verify(key: key)
        #expect(result.outcome == .intact && result.records == 2)
    }

    @Test("records are listed newest first and filtered by token, kind, time, status and outcome")
    func filters() throws {
        defer { remove() }
        let (trail, _) = try trail(6)
        func seqs(_ change: (inout AuditTrail.Filter) -> Void) throws -> [Int64] {
            var filter = AuditTrail.Filter()
            change(&filter)
            return try trail.records(filter).entries.map(\.seq)
        }
        #expect(try seqs { _ in } == [6, 5, 4, 3, 2, 1])
        #expect(try seqs { $0.token = "ops" } == [6, 3])
        #expect(try seqs { $0.kind = "admin" } == [6, 4, 2])
        #expect(try seqs { $0.outcome = "syntax" } == [4])
        #expect(try seqs { $0.outcome = "error" } == [4])
        #expect(try seqs { $0.outcome = "ok" } == [6, 5, 3, 2, 1])
        #expect(try seqs { $0.status = 400 } == [4])
        #expect(
            try seqs {
                $0.since = 1_800_000_002_000
                $0.until = 1_800_000_005_000
            } == [4, 3, 2])
        #expect(try seqs { $0.limit = 2 } == [6, 5])
        #expect(
            try trail.records(
                {
                    var f = AuditTrail.Filter()
                    f.limit = 2
                    return f
                }()
            ).more)
        #expect(try seqs { $0.before = 3 } == [2, 1])
        let record = try #require(try trail.records(.init()).entries.last)
        #expect(
            record.requestID == "r1" && record.client == "127.0.0.1"
                && record.bodySHA256 == Array(repeating: 1, count: 32))
    }

    @Test("a trail longer than a row holds is listed, pruned and verified across its rows")
    func acrossRows() throws {
        defer { remove() }
        let perRow = Int64(AuditStoredBatch.rowLimit)
        let count = 2 * perRow + perRow / 2
        let (trail, store) = try trail(Int(count))
        #expect(
            try store.database.connection.query("SELECT first_seq, last_seq FROM audit_batch ORDER BY first_seq")
                == [
                    [.integer(1), .integer(perRow)], [.integer(perRow + 1), .integer(2 * perRow)],
                    [.integer(2 * perRow + 1), .integer(count)],
                ])
        var result = try trail.verify(key: key)
        #expect(result.outcome == .intact && result.records == count && result.first == 1 && result.last == count)
        // Every third record is the token "ops": the newest four before perRow + 3 lie in two rows.
        var filter = AuditTrail.Filter()
        filter.before = perRow + 3
        filter.limit = 4
        filter.token = "ops"
        let listed = try trail.records(filter)
        let expected = Array((1...perRow + 2).filter { $0 % 3 == 0 }.reversed().prefix(4))
        #expect(expected.first! > perRow && expected.last! <= perRow)
        #expect(listed.entries.map(\.seq) == expected && listed.more)
        // Cut the second row in its middle: the records after the cut stay in it.
        let cut = perRow + perRow / 2
        let secureDelete = try store.database.connection.query("PRAGMA secure_delete")
        #expect(try trail.prune(keepingAtMost: Int(count - cut), before: 0, key: key, now: 9) == Int(cut))
        // Pruning deletes without zeroing; the connection's other work goes on as it was.
        #expect(try store.database.connection.query("PRAGMA secure_delete") == secureDelete)
        #expect(
            try store.database.connection.query("SELECT first_seq, last_seq FROM audit_batch ORDER BY first_seq")
                == [[.integer(cut + 1), .integer(2 * perRow)], [.integer(2 * perRow + 1), .integer(count)]])
        result = try trail.verify(key: key)
        #expect(
            result.outcome == .intact && result.records == count - cut && result.first == cut + 1
                && result.pruned == cut)
        #expect(try trail.count() == Int(count - cut))
        // By age inside a row: records cut + 1 to cut + 100 were made before start + (cut + 100.5) s.
        #expect(
            try trail.prune(
                keepingAtMost: 5000, before: 1_800_000_000_000 + (cut + 100) * 1000 + 500, key: key, now: 10)
                == 100)
        result = try trail.verify(key: key)
        #expect(result.outcome == .intact && result.first == cut + 101 && result.records == count - cut - 100)
    }

    @Test("pruning reads the batches it removes, however long the trail is")
    func pruneReadsWhatItRemoves() throws {
        defer { remove() }
        let perRow = AuditStoredBatch.rowLimit
        // Pages read to prune the oldest row of a trail of `rows` rows, from an empty cache.
        func pagesToPrune(rows: Int) throws -> Int {
            remove()
            let (trail, store) = try trail(rows * perRow)
            let database = store.database.connection
            try database.query("PRAGMA shrink_memory")
            _ = database.pagesRead()
            #expect(try trail.prune(keepingAtMost: (rows - 1) * perRow, before: 0, key: key, now: 9) == perRow)
            let read = database.pagesRead()
            let result = try trail.verify(key: key)
            #expect(result.outcome == .intact && result.first == Int64(perRow) + 1 && result.pruned == Int64(perRow))
            return read
        }
        // A statement that looked at every row read a page or more for every few rows (the
        // writer's prunes made four such, every eighth batch under load: ten times the bytes
        // they removed). Three times the rows: at most an index level more to read.
        let short = try pagesToPrune(rows: 40)
        let long = try pagesToPrune(rows: 120)
        #expect(short > 0 && long <= short + 2, "pages read: \(short) of 40 rows, \(long) of 120")
    }

    @Test("a row is closed below glibc's mmap threshold: records with long details take more rows")
    func rowBytes() throws {
        defer { remove() }
        let store = try TokenStore(path: path)
        let trail = AuditTrail(sharing: store.database)
        let detail = String(repeating: "x", count: 20_000)
        let entries = (1...12).map { AuditEntry(at: 1_800_000_000_000 + Int64($0), kind: "script", detail: detail) }
        try trail.append(entries, key: key, now: 1_800_000_000_000)
        let rows = try store.database.connection.query(
            "SELECT first_seq, last_seq, length(records) FROM audit_batch ORDER BY first_seq")
        // 20 KB a record: the fifth passes 96 KiB and closes its row.
        #expect(
            rows.map { [$0[0], $0[1]] } == [
                [.integer(1), .integer(5)], [.integer(6), .integer(10)], [.integer(11), .integer(12)],
            ])
        #expect(rows.allSatisfy { ($0[2].integer ?? .max) < 128 << 10 })
        let result = try trail.verify(key: key)
        #expect(result.outcome == .intact && result.records == 12)
    }

    @Test(
        "a batch's row changed without the key is found: its index columns, or bytes that are no records",
        arguments: [
            (
                "UPDATE audit_batch SET last_seq = 6",
                "the batch stored as records 1 to 6 does not say what it holds (records 1 to 5): it was changed"
            ),
            (
                "UPDATE audit_batch SET max_at = 0",
                "the batch stored as records 1 to 5 does not say what it holds (records 1 to 5): it was changed"
            ),
            (
                "UPDATE audit_batch SET last_mac = zeroblob(32)",
                "the batch stored as records 1 to 5 does not say what it holds (records 1 to 5): it was changed"
            ),
            (
                "UPDATE audit_batch SET records = substr(records, 1, 300)",
                "the batch stored as records 1 to 5 cannot be read: it was changed"
            ),
        ])
    func batchRow(statement: String, found: String) throws {
        defer { remove() }
        let (trail, store) = try trail(5)
        try store.database.connection.query(statement)
        #expect(try problems(trail).first == found)
    }

    @Test("a trail of schema 6, a row per record, moves into batches at start and still verifies")
    func fromRows() throws {
        defer { remove() }
        let (trail, store) = try trail(7)
        let before = try trail.records(.init()).entries
        try store.database.connection.write { db throws(StoreError) in
            try AuditStoredBatch.unpack(in: db)
            try db.query("DROP TABLE audit_batch")
            try db.query("PRAGMA user_version = 6")
        }
        #expect(try store.database.connection.query("SELECT count(*) FROM audit") == [[.integer(7)]])
        let reopened = try TokenStore(path: path)
        #expect(try reopened.database.connection.query("PRAGMA user_version") == [[.integer(7)]])
        let moved = AuditTrail(sharing: reopened.database)
        #expect(try moved.records(.init()).entries == before)
        let result = try moved.verify(key: key)
        #expect(result.outcome == .intact && result.records == 7)
        try moved.append([AuditEntry(at: 1, kind: "cli")], key: key, now: 1)
        #expect(try problems(moved) == [])
    }

    @Test("the MAC is HMAC-SHA-256: RFC 4231's test case 2")
    func hmac() {
        let key = AuditKey(bytes: Array("Jefe".utf8))
        #expect(
            AuditKey.hex(key.mac(Array("what do ya want for nothing?".utf8)))
                == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
    }

    @Test("the key file: made 0600 when missing, read back, refused when others may read it or it is not a key")
    func keyFile() throws {
        let file = path + ".key"
        defer { try? FileManager.default.removeItem(atPath: file) }
        let (made, created) = try AuditKey.loadOrCreate(path: file)
        #expect(created)
        var info = stat()
        #expect(stat(file, &info) == 0 && info.st_mode & 0o777 == 0o600)
        let text = try String(contentsOfFile: file, encoding: .utf8)
        #expect(text.count == 65 && text.hasSuffix("\n"))
        let (again, createdAgain) = try AuditKey.loadOrCreate(path: file)
        #expect(!createdAgain && again.id == made.id)
        chmod(file, 0o640)
        #expect(throws: StoreError.self) { try AuditKey.load(path: file) }
        do {
            _ = try AuditKey.load(path: file)
        } catch {
            #expect(
                error.description
                    == "the audit key \(file) may be read or written by others (mode 640): chmod 600 \(file)")
        }
        chmod(file, 0o600)
        try "not a key\n".write(toFile: file, atomically: false, encoding: .utf8)
        do {
            _ = try AuditKey.load(path: file)
            Issue.record("loaded")
        } catch {
            #expect(
                error.description == "the audit key \(file) is not 64 hex digits (make one with: openssl rand -hex 32)")
        }
        do {
            _ = try AuditKey.load(path: file + ".missing")
            Issue.record("loaded")
        } catch {
            #expect(error.description == "cannot read the audit key \(file).missing: No such file or directory")
        }
    }
}
