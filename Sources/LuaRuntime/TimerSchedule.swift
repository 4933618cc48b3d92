import Synchronization
import SystemSupport

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// The timers one state's scripts set (SPEC V9): when each is due, where it came from, and how its
/// runs went. The state's thread changes it as scripts call `timer.after`, `timer.every` and
/// `timer.cancel` and as timers run; the transport's poller asks it what is due; any thread reads
/// it for the registry listing. The functions themselves stay in the state (CLuaSupport's
/// timer.c). A fresh state starts with none: a reset drops them, and scripts set them again.
public final class TimerSchedule: Sendable {
    public struct Entry: Sendable {
        public var id: Int64
        /// nil: `timer.after`, which runs once.
        public var interval: Double?
        public var due: MonotonicInstant
        public var origin: EndpointRegistry.Origin
        /// Set by the box's own work (`LuaVM.Caller.isOwnWork`): its runs are too.
        public var ownWork = false
        public var since: Date
        public var runs = 0
        public var errors = 0
        public var lastError: LuaFailure?
        /// A run is queued, running or waiting in `sleep`: the timer is not run again meanwhile.
        public var running = false
        /// When an error of this timer was last logged, and how many went unlogged since.
        var lastLogged: MonotonicInstant?
        var unlogged = 0
    }

    private struct Table {
        var entries: [Int64: Entry] = [:]
        var wake: (@Sendable () -> Void)?
        /// Bumped when a timer is set or goes, and when one has run: what the registry listing
        /// publishes for `luaexec endpoints` is made again when they move.
        var structure = 0
        var runs = 0
    }

    /// How often the set of timers changed, and how many runs ended: for a publisher of the
    /// listing to see that it moved.
    public var generation: (structure: Int, runs: Int) { table.withLock { ($0.structure, $0.runs) } }

    private let table = Mutex(Table())

    public init() {}

    /// Wakes whoever runs what is due when a timer becomes due earlier than anything before.
    public func setWake(_ wake: (@Sendable () -> Void)?) {
        table.withLock { $0.wake = wake }
    }

    func add(id: Int64, seconds: Double, every: Bool, origin: EndpointRegistry.Origin, ownWork: Bool = false) {
        let due = MonotonicInstant.now().advanced(by: .nanoseconds(Int64(seconds * 1e9)))
        let wake = table.withLock { table -> (@Sendable () -> Void)? in
            let earliest = table.entries.values.lazy.filter { !$0.running }.map(\.due).min()
            table.entries[id] = Entry(
                id: id, interval: every ? seconds : nil, due: due, origin: origin, ownWork: ownWork, since: Date())
            table.structure += 1
            return earliest.map { due < $0 } ?? true ? table.wake : nil
        }
        wake?()
    }

    /// Puts back an entry as it was (a timer a failed stored script's run cancelled, SPEC V8);
    /// `running` too: a run of it waiting in `sleep` meanwhile ends as if nothing happened.
    func restore(_ entry: Entry) {
        let wake = table.withLock { table -> (@Sendable () -> Void)? in
            let earliest = table.entries.values.lazy.filter { !$0.running }.map(\.due).min()
            table.entries[entry.id] = entry
            table.structure += 1
            return earliest.map { entry.due < $0 } ?? true ? table.wake : nil
        }
        wake?()
    }

    func remove(id: Int64) {
        table.withLock {
            $0.entries.removeValue(forKey: id)
            $0.structure += 1
        }
    }

    /// The timers (ids) that `matches` picks, removed from the schedule. A run of one under way
    /// (its callback waits in `sleep`) is not this schedule's to end: `LuaVM.outlivesItsRun`.
    func removeAll(where matches: (Entry) -> Bool) -> [Int64] {
        table.withLock { table in
            let ids = table.entries.values.filter(matches).map(\.id)
            for id in ids { table.entries.removeValue(forKey: id) }
            if !ids.isEmpty { table.structure += 1 }
            return ids
        }
    }

    /// When the next timer not already running is due.
    public var nextDue: MonotonicInstant? {
        // Read after every job on the state: a loop, no key path made (`\.due` is one a call).
        table.withLock { table in
            var first: MonotonicInstant?
            for entry in table.entries.values where !entry.running && first.map({ entry.due < $0 }) ?? true {
                first = entry.due
            }
            return first
        }
    }

    /// The timers due at `now`, in due order, marked running: their runs are the caller's to queue.
    public func takeDue(
        _ now: MonotonicInstant
    ) -> [(id: Int64, due: MonotonicInstant, origin: EndpointRegistry.Origin, ownWork: Bool)] {
        table.withLock { table in
            var due: [(id: Int64, due: MonotonicInstant, origin: EndpointRegistry.Origin, ownWork: Bool)] = []
            for (id, entry) in table.entries where !entry.running && entry.due <= now {
                table.entries[id]!.running = true
                due.append((id, entry.due, entry.origin, entry.ownWork))
            }
            return due.sorted { ($0.due, $0.id) < ($1.due, $1.id) }
        }
    }

    /// What to log after a failed run: nil while the timer's errors are being held back (one
    /// line a minute at most per timer), else the count held back since the last line.
    public struct Finished: Sendable {
        /// Log the failure, saying how many were not logged before it; nil: held back.
        public var logFailure: Int?
        /// `timer.after` ran (or the timer went meanwhile): the state must forget its function.
        public var drop: Bool
    }

    /// A run ended: counted, and an interval timer due again (from its due time, skipping the
    /// ticks that passed while it ran late), a one-shot one removed.
    public func finished(id: Int64, failure: LuaFailure?, now: MonotonicInstant = .now()) -> Finished {
        table.withLock { table in
            guard var entry = table.entries[id] else { return Finished(logFailure: nil, drop: true) }
            table.runs += 1
            entry.running = false
            entry.runs += 1
            var log: Int?
            if let failure {
                entry.errors += 1
                entry.lastError = failure
                if let last = entry.lastLogged, now.duration(since: last) < .seconds(60) {
                    entry.unlogged += 1
                } else {
                    log = entry.unlogged
                    entry.unlogged = 0
                    entry.lastLogged = now
                }
            }
            guard let interval = entry.interval else {
                table.entries.removeValue(forKey: id)
                table.structure += 1
                return Finished(logFailure: log, drop: true)
            }
            let step = Int64(interval * 1e9)
            var due = entry.due.advanced(by: .nanoseconds(step))
            if due <= now {
                let missed = now.nanoseconds(since: due) / step + 1
                due = due.advanced(by: .nanoseconds(missed * step))
            }
            entry.due = due
            table.entries[id] = entry
            return Finished(logFailure: log, drop: false)
        }
    }

    /// Every timer, by number.
    public var entries: [Entry] { table.withLock { $0.entries.values.sorted { $0.id < $1.id } } }
}
