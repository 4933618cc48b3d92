import AccessControl
import Foundation
import HTTPCore
import Logging
import SystemSupport
import Testing

@testable import ExecService

@Suite("Audit writer")
struct AuditWriterTests {
    /// A fresh database and a writer on it; `capacity` records may wait.
    func writer(
        capacity: Int, capacityBytes: Int = 32 << 20, interval: Duration = .milliseconds(250), batchSize: Int = 8192,
        batchBytes: Int = 2 << 20
    ) throws -> (AuditWriter, AuditTrail, String) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("auditwriter-\(UUID())").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let path = directory + "/luaexec.db"
        let trail = AuditTrail(sharing: try LuaexecDatabase(path: path))
        let writer = try AuditWriter(
            trail: trail, key: AuditKey(bytes: Array("writer test key".utf8)), logger: Logger(label: "test"),
            interval: interval, batchSize: batchSize, batchBytes: batchBytes, capacity: capacity,
            capacityBytes: capacityBytes)
        return (writer, trail, path)
    }

    func record(_ number: Int, token: String? = "ops", path: String = "/api/v1/exec/interactive.lua") -> AuditRecord {
        var record = AuditRecord(
            head: RequestHead(
                method: "POST", path: path, query: "", clientAddress: "10.0.0.\(number)",
                requestID: "r\(number)"))
        record.tokenName = token
        record.kind = "exec"
        record.scope = "exec"
        record.body = Array("return \(number)".utf8)
        record.finish(response: Response(status: 200, body: [0x31]), nanoseconds: Int64(number) * 1000)
        return record
    }

    /// Runs SQL on the database through another connection (the `sqlite3` command), as another
    /// process would.
    func sqlite(_ path: String, _ sql: String) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        process.arguments = [path, sql]
        try process.run()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0)
    }

    /// Makes the database refuse the trail's inserts (as a full or locked one would) until
    /// `DELETE FROM refuse`.
    func refuseRecords(_ path: String) throws {
        try sqlite(
            path,
            """
            CREATE TABLE refuse (x); INSERT INTO refuse VALUES (1);
            CREATE TRIGGER refuse_audit BEFORE INSERT ON audit_batch WHEN EXISTS (SELECT 1 FROM refuse)
            BEGIN SELECT RAISE(ABORT, 'refused for the test'); END;
            """)
    }

    @Test("each request's record is stored with its fields, in order, and the trail verifies")
    func stored() throws {
        let (writer, trail, _) = try writer(capacity: 100)
        let before = try trail.count()
        for number in 1...3 { writer.enqueue(record(number, token: number == 2 ? nil : "ops")) }
        writer.flush()
        var filter = AuditTrail.Filter()
        filter.kind = "exec"
        let stored = try trail.records(filter).entries.reversed().map { $0 }
        #expect(try trail.count() == before + 3)
        #expect(stored.map(\.requestID) == ["r1", "r2", "r3"])
        #expect(stored.map(\.client) == ["10.0.0.1", "10.0.0.2", "10.0.0.3"])
        #expect(stored.map(\.token) == ["ops", nil, "ops"])
        #expect(stored.map(\.durationMicros) == [1, 2, 3])
        #expect(stored.map(\.bytesIn) == [8, 8, 8])
        #expect(stored.map(\.method) == ["POST", "POST", "POST"])
        #expect(stored[0].path == "/api/v1/exec/interactive.lua")
        #expect(stored[0].status == 200 && stored[0].error == nil && stored[0].bytesOut == 1)
        // `printf "return 1" | sha256sum`
        #expect(stored[0].bodySHA256.map { $0.map { String(format: "%02x", $0) }.joined() } == "486d9affb60dbb0063b03d8e23a6ccf6364ce203dc3a9f56f20e750eb41ecade")
        let verified = try trail.verify(key: writer.key)
        #expect(verified.outcome == .intact)
        #expect(verified.problems.isEmpty)
    }

    /// A path of 16 KiB, as a client may send one (nginx takes request lines up to its
    /// `large_client_header_buffers`).
    static let longPath = "/api/v1/endpoints/" + String(repeating: "x", count: 16 << 10)

    @Test("long records wake the writer at batchBytes, not only at batchSize records or the interval")
    func wokenByBytes() throws {
        // An hour's interval and 8,192 records a batch: only the records' bytes (64 KiB, four of
        // these records) can make the writer store them within this test.
        let (writer, trail, _) = try writer(
            capacity: 10_000, interval: .seconds(3600), batchSize: 8192, batchBytes: 64 << 10)
        // The writer's own loop, as luaexecd runs it (it never returns: it sleeps with this
        // test's database until the test process ends).
        startThread(name: "audit-test", stackSize: 256 << 10) {
            writer.run { AuditWriter.Retention(maxRecords: 1_000_000, days: 365) }
        }
        let before = try trail.count()
        for number in 1...100 { writer.enqueue(record(number, path: Self.longPath)) }
        // What stays waiting is under 64 KiB: at most three of them.
        let deadline = MonotonicInstant.now().advanced(by: .seconds(60))
        while try trail.count() < before + 97, MonotonicInstant.now() < deadline {
            pauseThread(for: .milliseconds(20))
        }
        #expect(try trail.count() >= before + 97)
    }

    @Test("the room a batch of long records needed is given back after it: the writer keeps about batchBytes")
    func roomGivenBack() throws {
        let batchBytes = 64 << 10
        let (writer, trail, _) = try writer(capacity: 10_000, batchSize: 256, batchBytes: batchBytes)
        let before = try trail.count()
        // One batch of ~1.6 MB (no writer thread: `flush` takes all that waits).
        for number in 1...100 { writer.enqueue(record(number, path: Self.longPath)) }
        writer.flush()
        #expect(try trail.count() == before + 100)
        // Each of the two batches has been the one written once more, and the rows laid out again.
        writer.enqueue(record(101))
        writer.flush()
        writer.flush()
        #expect(try trail.count() == before + 101)
        // The two batches' room (256 records of 256 bytes reserved each, or at most twice
        // `batchBytes`) and the rows' (at most twice `batchBytes`): not the 1.6 MB again and again.
        #expect(writer.roomKept <= 6 * batchBytes)
        #expect(try trail.verify(key: writer.key).outcome == .intact)
    }

    @Test("records the database refuses wait and are stored in order once it takes them; past the capacity a gap record counts those lost")
    func refusedThenGap() throws {
        let (writer, trail, path) = try writer(capacity: 3)
        try refuseRecords(path)
        let before = try trail.count()
        for number in 1...2 { writer.enqueue(record(number)) }
        writer.flush()
        // Refused: nothing stored, both wait; two more come, one of them beyond the capacity.
        #expect(try trail.count() == before)
        for number in 3...4 { writer.enqueue(record(number)) }
        writer.flush()
        #expect(try trail.count() == before)
        try sqlite(path, "DELETE FROM refuse")
        writer.flush()
        let stored = try trail.records(AuditTrail.Filter()).entries.reversed().suffix(4).map { $0 }
        #expect(stored.map(\.requestID) == ["r1", "r2", "r3", nil])
        #expect(stored.last?.kind == "gap")
        #expect(
            stored.last?.detail
                == "1 records were not stored: the database did not take them in time (they are in the log)")
        #expect(try trail.verify(key: writer.key).outcome == .intact)
    }

    @Test("while the database refuses them, long records wait up to capacityBytes; past it they are counted in the gap record")
    func refusedLongRecordsBounded() throws {
        // Room for 100 records by count, but 64 KiB by bytes: a record is taken while less than
        // that waits, so four of these records of 16 KiB.
        let (writer, trail, path) = try writer(capacity: 100, capacityBytes: 64 << 10)
        try refuseRecords(path)
        let before = try trail.count()
        for number in 1...3 { writer.enqueue(record(number, path: Self.longPath)) }
        writer.flush()
        #expect(try trail.count() == before)
        // Back in the queue, the three leave room for one more: the next four are dropped, counted.
        for number in 4...8 { writer.enqueue(record(number, path: Self.longPath)) }
        try sqlite(path, "DELETE FROM refuse")
        writer.flush()
        let stored = try trail.records(AuditTrail.Filter()).entries.reversed().suffix(5).map { $0 }
        #expect(stored.map(\.requestID) == ["r1", "r2", "r3", "r4", nil])
        #expect(
            stored.last?.detail
                == "4 records were not stored: the database did not take them in time (they are in the log)")
        #expect(try trail.verify(key: writer.key).outcome == .intact)
    }

    /// A request refused at admission (an unknown path, a wrong token): `token` nil unless a
    /// valid token was refused its scope.
    func refusal(_ number: Int, client: String, status: Int = 401, token: String? = nil) -> AuditRecord {
        var record = AuditRecord(
            head: RequestHead(
                method: "GET", path: "/api/v1/nowhere", query: "", clientAddress: client, requestID: "x\(number)"))
        record.tokenName = token
        record.refused = true
        record.finish(response: Response(status: status, body: []), nanoseconds: 1000)
        return record
    }

    /// Every record after the anchor, oldest first.
    func stored(_ trail: AuditTrail) throws -> [AuditEntry] {
        var filter = AuditTrail.Filter()
        filter.limit = 1000
        return try trail.records(filter).entries.reversed().filter { $0.kind != "notice" }
    }

    @Test("refusals without a valid token: ten a minute stored, the rest folded into one record that counts them by status and address")
    func anonymousFlood() throws {
        let (writer, trail, _) = try writer(capacity: 1000)
        // The next minute of the clock (the trail refuses records older than its last).
        let minute = (AuditWriter.now() / 60_000 + 1) * 60_000
        for number in 1...25 {
            writer.enqueue(refusal(number, client: "10.9.0.\(number % 3)", status: number <= 20 ? 401 : 404), at: minute + Int64(number))
        }
        // A token's records and a named token's refusals are never folded.
        writer.enqueue(record(1), at: minute + 30)
        writer.enqueue(refusal(26, client: "10.9.0.1", status: 403, token: "narrow"), at: minute + 31)
        // The next minute: the last one's summary first, then its own ten.
        writer.enqueue(refusal(27, client: "10.9.0.7"), at: minute + 60_000)
        writer.flush(retention: .init(maxRecords: 1000, days: 90))
        let entries = try stored(trail)
        #expect(entries.map { $0.requestID ?? $0.kind } == (1...10).map { "x\($0)" } + ["r1", "x26", "refused", "x27"])
        let summary = try #require(entries.first { $0.kind == "refused" })
        #expect(
            summary.detail
                == "15 more requests refused without a valid token in the minute from "
                + UTCTime.iso8601(secondsSince1970: Double(minute / 1000)) + " (not stored one by one; each is in the log): status 401 ×10, 404 ×5; from 10.9.0.0 ×5, 10.9.0.1 ×5, 10.9.0.2 ×5; "
                + "to GET /api/v1/nowhere ×15")
        #expect(summary.at == minute + 60_000)
        #expect(try trail.verify(key: writer.key).outcome == .intact)
    }

    @Test("the summary names the eight addresses and paths sent the most, not the first; the rest as one count")
    func mostFrequentNamed() throws {
        let (writer, trail, _) = try writer(capacity: 1000)
        let now = AuditWriter.now()
        // Ten cheap ones first take the stored slots; then twelve addresses, one of them busy.
        for number in 1...10 { writer.enqueue(refusal(number, client: "10.1.1.\(number)"), at: now) }
        for number in 1...12 { writer.enqueue(refusal(100 + number, client: "10.2.2.\(number)"), at: now) }
        for number in 1...20 { writer.enqueue(refusal(200 + number, client: "10.2.2.12"), at: now) }
        writer.flush()
        let detail = try #require(try stored(trail).last?.detail)
        #expect(detail.hasSuffix(
            "status 401 ×32; from 10.2.2.12 ×21, 10.2.2.1 ×1, 10.2.2.10 ×1, 10.2.2.11 ×1, 10.2.2.2 ×1, 10.2.2.3 ×1, "
                + "10.2.2.4 ×1, 10.2.2.5 ×1, other addresses ×4; to GET /api/v1/nowhere ×32"), "\(detail)")
    }

    @Test("what a minute folded is told when the writer passes the minute, or when luaexecd stops")
    func foldedToldAtStop() throws {
        let (writer, trail, _) = try writer(capacity: 1000)
        let now = AuditWriter.now()
        for number in 1...13 { writer.enqueue(refusal(number, client: "10.9.9.9"), at: now) }
        writer.flush()
        let entries = try stored(trail)
        #expect(entries.count == 11)
        #expect(entries.last?.kind == "refused")
        #expect(entries.last?.detail?.hasPrefix("3 more requests refused without a valid token in the minute from ") == true)
        #expect(entries.last?.detail?.hasSuffix("each is in the log): status 401 ×3; from 10.9.9.9 ×3; to GET /api/v1/nowhere ×3") == true)
    }
}
