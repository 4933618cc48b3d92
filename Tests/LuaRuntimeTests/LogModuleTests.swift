import Logging
import Synchronization
import SystemSupport
import Testing

@testable import LuaRuntime

@Suite("log.write: a script's line, handed to the logger as values")
struct LogModuleTests {
    /// What was logged: level, message, metadata.
    final class Records: Sendable {
        let list = Mutex<[(Logger.Level, String, [String: String])]>([])
    }

    /// Keeps what is logged.
    struct Recorder: LogHandler {
        let records: Records
        var metadata: Logger.Metadata = [:]
        var logLevel: Logger.Level = .trace
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let fields = (event.metadata ?? [:]).mapValues { $0.description }
            records.list.withLock { $0.append((event.level, event.message.description, fields)) }
        }
    }

    @Test("the tag chooses the level when it names one, else info; the text is tostring of the value, bytes and all")
    func levelsAndValues() throws {
        let vm = try LuaVM()
        let records = Records()
        vm.logger = Logger(label: "test") { _ in Recorder(records: records) }
        let chunk = #"log.write("toast", "x\nINFO luaexecd: request id=forged") log.write("warning", 42) log.write("error", nil)"#
        _ = try vm.evaluate(Array(chunk.utf8), chunkName: "interactive.lua", rendering: .text).outcome.get()
        let logged = records.list.withLock { $0 }
        #expect(logged.map(\.0) == [.info, .warning, .error])
        #expect(logged.map(\.1) == ["lua", "lua", "lua"])
        #expect(logged.map(\.2) == [
            ["tag": "toast", "text": "x\nINFO luaexecd: request id=forged"], ["tag": "warning", "text": "42"],
            ["tag": "error", "text": "nil"],
        ])
    }

    @Test("a tag that is not a string is a Lua error, and nothing is logged")
    func badTag() throws {
        let vm = try LuaVM()
        let records = Records()
        vm.logger = Logger(label: "test") { _ in Recorder(records: records) }
        let evaluation = vm.evaluate(Array("log.write({}, 'x')".utf8), chunkName: "interactive.lua", rendering: .text)
        guard case .failure(let failure) = evaluation.outcome else {
            Issue.record("log.write({}) ran")
            return
        }
        #expect(failure.message == "interactive.lua:1: bad argument #1 to 'write' (string expected, got table)")
        #expect(records.list.withLock { $0.isEmpty })
    }
}

@Suite("log.write: rationed and cut, so that a loop cannot flood the log")
struct LogBudgetTests {
    typealias Records = LogModuleTests.Records

    func vm(_ records: Records, budget: LogLineBudget) throws -> LuaVM {
        let vm = try LuaVM()
        vm.logger = Logger(label: "test") { _ in LogModuleTests.Recorder(records: records) }
        vm.logBudget = budget
        return vm
    }

    @Test("past the burst lines are dropped, log.write says false, one warning says so, the next line written counts them")
    func dropped() throws {
        let records = Records()
        // No refill: what is written is exactly the burst, however fast the loop runs.
        let vm = try vm(records, budget: LogLineBudget(perSecond: 0, burst: 5))
        let chunk = "local n = 0 for i = 1, 20 do if log.write('info', i) then n = n + 1 end end return n"
        let written = try vm.evaluate(Array(chunk.utf8), chunkName: "interactive.lua", rendering: .text).outcome.get()
        #expect(written == [.string(Array("5".utf8))])
        let logged = records.list.withLock { $0 }
        #expect(logged.map { $0.2["text"] } == ["1", "2", "3", "4", "5", nil])
        #expect(logged.last?.0 == .warning)
        #expect(logged.last?.1 == "log.write: lines dropped")
        // Room again: the next line says how many were lost before it.
        // (A nanosecond's refill is a line at this rate.)
        vm.logBudget.burst = 1
        vm.logBudget.perSecond = 1_000_000_000
        _ = try vm.evaluate(Array("return log.write('info', 'back')".utf8), chunkName: "interactive.lua", rendering: .text)
            .outcome.get()
        let back = records.list.withLock { $0.last }
        #expect(back?.2 == ["tag": "info", "text": "back", "dropped_before": "15"])
    }

    @Test("requests' lines and the box's own scripts' come from two budgets: a token's loop cannot silence a stored script, an init script or their timers")
    func ownWork() throws {
        let records = Records()
        let vm = try vm(records, budget: LogLineBudget(perSecond: 0, burst: 3))
        vm.ownLogBudget = LogLineBudget(perSecond: 0, burst: 3)
        func written(_ caller: LuaVM.Caller) throws -> [LuaValue] {
            vm.caller = caller
            let chunk = "local n = 0 for i = 1, 2 do if log.write('info', 'x') then n = n + 1 end end return n"
            return try vm.evaluate(Array(chunk.utf8), chunkName: "interactive.lua", rendering: .text).outcome.get()
        }
        let two: [LuaValue] = [.string(Array("2".utf8))]
        let one: [LuaValue] = [.string(Array("1".utf8))]
        let none: [LuaValue] = [.string(Array("0".utf8))]
        // A token takes the requests' three lines; a timer it set shares them.
        #expect(try written(.request(token: "ops")) == two)
        #expect(try written(.timer(.token("ops"), ownWork: false)) == one)
        #expect(try written(.handler(.storedScript(name: "door.lua", version: 1, line: 1))) == none)
        // The box's own work writes from its own three.
        #expect(try written(.storedScript(name: "door.lua", version: 1)) == two)
        #expect(try written(.timer(.script(path: "init.d/10-x.lua", line: 2), ownWork: true)) == one)
        #expect(try written(.initScript("init.d/10-x.lua")) == none)
        #expect(try written(.request(token: "ops")) == none)
    }

    @Test("the bucket fills at its rate and holds at most its burst")
    func refill() {
        var budget = LogLineBudget(perSecond: 10, burst: 3)
        let start = MonotonicInstant.now()
        var taken: [Bool] = []
        for _ in 0..<5 { taken.append(budget.take(now: start)) }
        #expect(taken == [true, true, true, false, false])
        // A tenth of a second: one line.
        let tenth = start.advanced(by: .milliseconds(100))
        let first = budget.take(now: tenth)
        let second = budget.take(now: tenth)
        #expect(first && !second)
        // An hour: the burst, no more.
        let hour = start.advanced(by: .seconds(3600))
        taken = []
        for _ in 0..<4 { taken.append(budget.take(now: hour)) }
        #expect(taken == [true, true, true, false])
    }

    @Test("a text past 4096 bytes is cut, and the line says from how many")
    func cut() throws {
        let records = Records()
        let vm = try vm(records, budget: LogLineBudget())
        _ = try vm.evaluate(Array("log.write('info', string.rep('x', 100000))".utf8), chunkName: "interactive.lua", rendering: .text)
            .outcome.get()
        let line = try #require(records.list.withLock { $0.first })
        #expect(line.2["text"] == String(repeating: "x", count: 4096))
        #expect(line.2["truncated_from"] == "100000")
    }

    @Test("lines below the log level cost nothing of the budget")
    func belowLevel() throws {
        let records = Records()
        let vm = try vm(records, budget: LogLineBudget(perSecond: 0, burst: 1))
        vm.logger.logLevel = .info
        let chunk = "for i = 1, 10 do log.write('debug', i) end return log.write('info', 'kept')"
        #expect(try vm.evaluate(Array(chunk.utf8), chunkName: "interactive.lua", rendering: .text).outcome.get() == [.string(Array("true".utf8))])
        #expect(records.list.withLock { $0.map { $0.2["text"] } } == ["kept"])
    }
}
