import Logging
import Synchronization
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
