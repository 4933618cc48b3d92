import AccessControl
import Logging
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Keeps every request's audit record in the database as well as in the log (SPEC M7), without
/// a database write on the request path.
///
/// A request hands its finished `AuditRecord` to `enqueue`, which writes the record's fields as
/// bytes into the batch waiting here (`AuditBatch`), under a lock: the writer neither makes a
/// value of a field nor frees anything the request allocated (both were most of its time,
/// bench/NOTES.md). The chain's HMAC is made here later. A thread of its own (`run`) takes a
/// batch `interval` after its first record, or as soon as `batchSize` records (or `batchBytes`
/// of them) wait, and appends it to the `AuditTrail` in one transaction (an insert for each row
/// of up to 256 records, one commit and sync for the batch); it sleeps while nothing comes. The
/// log line is still written before the answer leaves; the database record follows within
/// `interval`.
///
/// What a crash can lose: the records of the last `interval` (at most `capacity`, or
/// `capacityBytes` of them), which are in the log (journal) but not yet in the database; what
/// was committed stays, chained. When the database refuses a batch (locked past its busy
/// timeout, full), the records wait and are tried again; past `capacity` (or `capacityBytes`)
/// new ones are dropped, counted, and a `gap` record says how many once the database takes
/// records again.
///
/// `@unchecked Sendable`: `pending` and `dropped` are touched only with `lock` held; `spare`,
/// `rows`, `lastWritten`, `failing`, `count` and `lastPrune` only with `writing` held (the
/// writer thread, or a shutdown's `flush`), so two writers never interleave their batches.
public final class AuditWriter: @unchecked Sendable {
    let trail: AuditTrail
    let key: AuditKey
    private let logger: Logger
    /// Records wait at most this long before they are written.
    let interval: Duration
    /// This many waiting records wake the writer before `interval` is up. 8,192: under a load
    /// of ~45,000 requests a second a batch every ~180 ms rather than every ~23 ms (at 1,024),
    /// and each batch's commit, sync and wake-up is work the request path's core gives up
    /// (bench/NOTES.md: 3-7% more requests a second, side by side). A slower box fills batches
    /// by `interval`.
    let batchSize: Int
    /// This many bytes of waiting records wake it too, whatever their count (records with long
    /// paths or details): with `batchSize`, what bounds the room the writer keeps from batch to
    /// batch (the batch filling, the one written and its rows; more than twice this is given
    /// back after the batch that needed it).
    let batchBytes: Int
    /// Most records waiting; more are dropped and counted.
    let capacity: Int
    /// Most bytes of records waiting, likewise: while the database refuses them, `capacity`
    /// records with paths of kilobytes would otherwise be gigabytes.
    let capacityBytes: Int

    /// Requests refused before any token was accepted stored one by one each minute; the rest
    /// of that minute's are folded into one `refused` record (`AnonymousRefusals`).
    let anonymousPerMinute: Int

    private let lock = ConditionLock()
    private var pending = AuditBatch()
    private var anonymous = AnonymousRefusals()
    /// The batch the writer works on, kept from batch to batch so that neither allocates.
    private var spare = AuditBatch()
    /// The rows the writer lays a batch out in, kept likewise (touched with `writing` held).
    private var rows = AuditTrail.Rows()
    private var dropped = 0

    private let writing = ConditionLock()
    private var lastWritten: AuditTrail.Head?
    private var failing = false
    /// Records in the trail, as this writer counts them: pruning by count runs when it passes
    /// the limit, not after every batch.
    private var count = 0
    private var lastPrune: MonotonicInstant?

    /// How many records the trail keeps, and for how long (`audit.max_records`,
    /// `audit.retention_days`); read before each pruning, so a reload applies.
    public struct Retention: Sendable {
        public var maxRecords: Int
        public var days: Int
        public init(maxRecords: Int, days: Int) {
            self.maxRecords = maxRecords
            self.days = days
        }
    }

    /// Opens the trail for writing: makes its anchor if it has none and notes in it what is wrong
    /// with it (a missing seal, records cut from its end), so start-up fails early on a database
    /// that cannot be written.
    public init(
        trail: AuditTrail, key: AuditKey, logger: Logger, interval: Duration = .milliseconds(250),
        batchSize: Int = 8192, batchBytes: Int = 2 << 20,
        capacity: Int = 100_000, capacityBytes: Int = 32 << 20, anonymousPerMinute: Int = 10
    ) throws(StoreError) {
        self.anonymousPerMinute = anonymousPerMinute
        self.trail = trail
        self.key = key
        self.logger = logger
        self.interval = interval
        self.batchSize = batchSize
        self.batchBytes = batchBytes
        self.capacity = capacity
        self.capacityBytes = capacityBytes
        pending.reserveCapacity(batchSize)
        spare.reserveCapacity(batchSize)
        let head = try trail.append([], key: key, now: Self.now())
        lastWritten = head
        count = try trail.count()
        // Where the trail stands, for the journal: a witness off the box against a trail later
        // rolled back to an earlier copy.
        logger.notice(
            "audit trail opened",
            metadata: ["seq": "\(head.seq)", "mac": "\(head.macHex)", "key_id": "\(key.id)", "records": "\(count)"])
    }

    /// Takes a request's record (on the request path: keep this cheap).
    func enqueue(_ record: AuditRecord, at: Int64 = now()) {
        let head = record.head
        lock.lock()
        if record.refused && record.tokenName == nil {
            // A flood of requests that name no valid token (unknown paths, wrong tokens) would
            // otherwise fill the trail and prune a token's records out of it: past the first few
            // a minute they are counted, and each is still in the log.
            if let summary = anonymous.closing(minute: at / 60_000, at: at) { add(summary) }
            if anonymous.stored >= anonymousPerMinute {
                anonymous.fold(client: head.clientAddress, method: head.method, path: head.shownPath, status: record.status)
                lock.unlock()
                return
            }
            anonymous.stored += 1
        }
        if hasRoom {
            let before = pending.byteCount
            AuditBatch.withBytes(of: record.digest) { digest in
                pending.append(
                    at: at, kind: record.kind, requestID: head.requestID, client: head.clientAddress,
                    token: record.tokenName, scope: record.scope, method: head.method, path: head.shownPath,
                    status: Int64(record.status), error: record.errorKind, bytesIn: Int64(record.bytesIn),
                    bytesOut: Int64(record.bytesOut), durationMicros: record.elapsedNanoseconds / 1000,
                    bodySHA256: digest, detail: record.detail)
            }
            // The first record of a batch wakes the idle writer, which then gives the batch
            // `interval` to fill; a full batch wakes it at once. Once per batch, not per request.
            if pending.count == 1 || pending.count == batchSize
                || (before < batchBytes && pending.byteCount >= batchBytes)
            {
                lock.signal()
            }
        } else {
            dropped += 1
        }
        lock.unlock()
    }

    /// Whether another record may wait. Called with `lock` held.
    private var hasRoom: Bool { pending.count < capacity && pending.byteCount < capacityBytes }

    /// Queues a record the writer made (a `refused` summary). Called with `lock` held.
    private func add(_ entry: AuditEntry) {
        if hasRoom {
            pending.append(entry)
            if pending.count == 1 { lock.signal() }
        } else {
            dropped += 1
        }
    }

    /// The writer's loop: a batch `interval` after its first record (or at `batchSize` records),
    /// pruning once a minute and whenever the trail passes `retention().maxRecords`. An idle
    /// luaexecd's writer sleeps until a record comes, or a minute has passed. Never returns.
    public func run(retention: @Sendable () -> Retention) -> Never {
        while true {
            lock.lock()
            let idle = MonotonicInstant.now().advanced(by: .seconds(60))
            while pending.isEmpty, dropped == 0, MonotonicInstant.now() < idle {
                lock.wait(until: idle)
            }
            let deadline = MonotonicInstant.now().advanced(by: interval)
            while !pending.isEmpty, pending.count < batchSize, pending.byteCount < batchBytes,
                MonotonicInstant.now() < deadline
            {
                lock.wait(until: deadline)
            }
            lock.unlock()
            flush(retention: retention())
        }
    }

    /// Writes what waits now, then prunes when it is time; on SIGTERM, before luaexecd exits.
    public func flush(retention: Retention? = nil) {
        writing.lock()
        defer { writing.unlock() }
        lock.lock()
        // A minute over (or luaexecd stopping: no `retention`): its folded refusals are told.
        let at = Self.now()
        if let summary = anonymous.closing(minute: at / 60_000, at: at, force: retention == nil) { add(summary) }
        swap(&pending, &spare)
        let lost = dropped
        dropped = 0
        lock.unlock()
        defer { keepRoom() }
        guard !spare.isEmpty || lost > 0 || retention != nil else { return }

        if lost > 0 {
            spare.append(
                AuditEntry(
                    at: Self.now(), kind: "gap",
                    detail:
                        "\(lost) records were not stored: the database did not take them in time (they are in the log)")
            )
        }
        if !spare.isEmpty {
            do {
                lastWritten = try trail.append(spare, key: key, now: Self.now(), lastWritten: lastWritten, rows: &rows)
                count += spare.count
                if failing {
                    failing = false
                    logger.notice("audit records are stored again", metadata: ["records": "\(spare.count)"])
                }
            } catch {
                if !failing {
                    failing = true
                    logger.error("audit records not stored yet; trying again", metadata: ["error": "\(error)"])
                }
                // Back to the front of the queue, in order, as far as the capacity allows (the
                // gap record, if any, is one of them: it is made again if it is dropped).
                lock.lock()
                var batch = spare
                if lost > 0 { batch = batch.prefix(batch.count - 1) }
                batch.append(contentsOf: pending)
                let kept = min(batch.count, capacity, batch.count(fittingIn: capacityBytes))
                dropped += lost + batch.count - kept
                pending = batch.prefix(kept)
                lock.unlock()
                return
            }
        }
        guard let retention else { return }
        let now = MonotonicInstant.now()
        let minuteOver = lastPrune.map({ now.duration(since: $0) >= .seconds(60) }) ?? true
        if count > retention.maxRecords || minuteOver {
            // The minute's prune (by age as well, and a count read again) comes every minute,
            // however often the count prunes meanwhile.
            if minuteOver { lastPrune = now }
            let before = Self.now() - Int64(retention.days) * 86_400_000
            // Below the limit by a margin (eight batches, or 2% of the limit if more, and at
            // most a tenth of it), so that a full trail under load is pruned every so many
            // batches, not after each: a prune deletes whole batches and writes the one across
            // its cut again (AuditTrail.prune; bench/NOTES.md).
            let margin = min(retention.maxRecords / 10, max(8 * batchSize, retention.maxRecords / 50))
            do {
                let removed = try trail.prune(
                    keepingAtMost: retention.maxRecords - margin, before: before, key: key, now: Self.now())
                // Counted again once a minute (the command line appends too); a count reads the
                // whole table, too much for every prune under load.
                count = minuteOver ? try trail.count() : max(0, count - removed)
                if removed > 0 {
                    logger.info("audit records pruned", metadata: ["removed": "\(removed)", "kept": "\(count)"])
                }
            } catch {
                logger.error("audit records not pruned", metadata: ["error": "\(error)"])
            }
        }
    }

    /// Empties the batch just written for the next, keeping its room and its rows' unless a
    /// batch of long records made them more than twice `batchBytes` (`pending` is `spare` after
    /// the next swap: both are bounded so). Called with `writing` held.
    private func keepRoom() {
        spare.removeAll()
        if spare.byteCapacity > 2 * batchBytes {
            spare = AuditBatch()
            spare.reserveCapacity(batchSize)
        }
        if rows.byteCapacity > 2 * batchBytes { rows.trim(keeping: batchBytes) }
    }

    /// The room the writer keeps between batches: its two batches' and its rows' (a test's view).
    var roomKept: Int {
        writing.lock()
        defer { writing.unlock() }
        lock.lock()
        defer { lock.unlock() }
        return pending.byteCapacity + spare.byteCapacity + rows.byteCapacity
    }

    /// Milliseconds since 1970, UTC.
    static func now() -> Int64 { nowNanoseconds() / 1_000_000 }

    private static func nowNanoseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_REALTIME, &now)
        return Int64(now.tv_sec) * 1_000_000_000 + Int64(now.tv_nsec)
    }
}

/// The requests refused this minute before any token was accepted, past the ones stored: how
/// many, with which statuses, from which addresses and to which paths (the most frequent eight
/// of each: a prober that spends the stored ten on cheap requests still shows where it sent the
/// rest).
struct AnonymousRefusals {
    var minute: Int64 = 0
    var stored = 0
    var folded = 0
    var statuses: [Int: Int] = [:]
    var clients = Tally()
    var targets = Tally()

    /// Counts by name, for at most `names` names; the rest together.
    struct Tally {
        static let names = 64
        var counts: [String: Int] = [:]
        var others = 0

        mutating func add(_ name: String) {
            if counts[name] != nil || counts.count < Self.names {
                counts[name, default: 0] += 1
            } else {
                others += 1
            }
        }

        /// The eight counted most (by name when even), then the rest as `other`.
        func summary(other: String) -> String {
            let sorted = counts.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            var parts = sorted.prefix(8).map { "\($0.key) ×\($0.value)" }
            let rest = others + sorted.dropFirst(8).reduce(0) { $0 + $1.value }
            if rest > 0 { parts.append("\(other) ×\(rest)") }
            return parts.joined(separator: ", ")
        }
    }

    mutating func fold(client: String, method: String, path: String, status: Int) {
        folded += 1
        statuses[status, default: 0] += 1
        clients.add(client)
        // A path is the client's text: cut, so that a flood of long ones stays small.
        targets.add(method + " " + String(decoding: path.utf8.prefix(80), as: UTF8.self))
    }

    /// When `minute` is past the one counted (or `force`: luaexecd stops): the record made at
    /// `at` that tells what was folded (nil when nothing was), and counting starts again for
    /// `minute`.
    mutating func closing(minute now: Int64, at: Int64, force: Bool = false) -> AuditEntry? {
        guard now > minute || force else { return nil }
        defer { self = AnonymousRefusals(minute: now) }
        guard folded > 0 else { return nil }
        let byStatus = statuses.sorted { $0.key < $1.key }.map { "\($0.key) ×\($0.value)" }.joined(separator: ", ")
        let from = UTCTime.iso8601(secondsSince1970: Double(minute * 60))
        return AuditEntry(
            at: at, kind: "refused",
            detail:
                "\(folded) more requests refused without a valid token in the minute from \(from) "
                + "(not stored one by one; each is in the log): status \(byStatus); "
                + "from \(clients.summary(other: "other addresses")); to \(targets.summary(other: "other paths"))")
    }
}
