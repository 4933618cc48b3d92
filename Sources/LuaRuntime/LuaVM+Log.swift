import Logging
import SystemSupport

extension LuaVM {
    /// `log.write(tag, text)` (CLuaSupport's log.c): one line in the log, at the level the tag
    /// names (`debug` to `critical`), else at info: `lua tag=toast text="hello world"`. The tag
    /// and text are values of the line, never its message, so a script's text cannot pass for
    /// luaexecd's own; the log handler escapes what they hold (SystemSupport's `LogLine`).
    ///
    /// A chunk in a loop could write lines as fast as Lua runs, and the log (a file, or the
    /// journal, which drops a whole service's lines past its own rate) is the administrator's
    /// and the audit's. So the text is cut at `LogLineBudget.maxText` bytes, and the lines are
    /// rationed (`logBudget`): past it a line is dropped, `log.write` returns false, a warning
    /// says so (at most one a minute), and the next line written carries how many were dropped
    /// (`dropped_before`). Returns 1 when written (or below the log level), 0 when dropped.
    func scriptLogged(tag: UnsafeRawBufferPointer, text: UnsafeRawBufferPointer) -> Int32 {
        let tag = String(decoding: tag.prefix(LogLineBudget.maxTag), as: UTF8.self)
        let level = Logger.Level(rawValue: tag) ?? .info
        guard logger.logLevel <= level else { return 1 }
        let now = MonotonicInstant.now()
        // Requests' lines and the box's own scripts' from two budgets: a token's loop cannot
        // silence the box's scripts.
        let own = caller.isOwnWork
        var budget = own ? ownLogBudget : logBudget
        defer { if own { ownLogBudget = budget } else { logBudget = budget } }
        guard budget.take(now: now) else {
            if budget.shouldWarn(now: now) {
                logger.warning(
                    "log.write: lines dropped",
                    metadata: [
                        "limit":
                            "\(budget.perSecond) a second, \(budget.burst) at once; the next line written says how many",
                        "from": "\(own ? "the box's own scripts" : "requests")",
                    ])
            }
            return 0
        }
        let kept = String(decoding: text.prefix(LogLineBudget.maxText), as: UTF8.self)
        var metadata: Logger.Metadata = ["tag": "\(tag)", "text": "\(kept)"]
        if text.count > LogLineBudget.maxText { metadata["truncated_from"] = "\(text.count)" }
        let dropped = budget.takeDropped()
        if dropped > 0 { metadata["dropped_before"] = "\(dropped)" }
        logger.log(level: level, "lua", metadata: metadata)
        return 1
    }
}

/// How many lines `log.write` may write: a bucket of `burst` lines that fills at `perSecond`.
/// The state's thread alone uses it (one per `LuaVM`: a reset starts a full one).
public struct LogLineBudget: Sendable {
    /// The most bytes of a line's text written; the rest is cut, and the line says from how many.
    public static let maxText = 4096
    static let maxTag = 64

    public var perSecond: Int
    public var burst: Int
    private var tokens: Double
    private var last: MonotonicInstant?
    /// Lines dropped since the last one written.
    public private(set) var dropped = 0

    public init(perSecond: Int = 100, burst: Int = 1000) {
        self.perSecond = perSecond
        self.burst = burst
        tokens = Double(burst)
    }

    /// Whether a line may be written at `now`; counts it as dropped if not.
    public mutating func take(now: MonotonicInstant) -> Bool {
        if let last {
            let seconds = Double(now.nanoseconds(since: last)) / 1e9
            tokens = min(Double(burst), tokens + max(0, seconds) * Double(perSecond))
        }
        last = now
        guard tokens >= 1 else {
            dropped += 1
            return false
        }
        tokens -= 1
        return true
    }

    private var lastWarning: MonotonicInstant?

    /// Whether to say that lines are being dropped: at most once a minute, however the flood
    /// comes and goes.
    mutating func shouldWarn(now: MonotonicInstant) -> Bool {
        if let lastWarning, now.nanoseconds(since: lastWarning) < 60_000_000_000 { return false }
        lastWarning = now
        return true
    }

    /// The count of dropped lines, set back to zero.
    mutating func takeDropped() -> Int {
        defer { dropped = 0 }
        return dropped
    }
}
