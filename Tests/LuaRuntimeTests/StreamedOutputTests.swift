import SystemSupport
import Testing

@testable import LuaRuntime

/// SPEC E13 in the state: what a chunk prints reaches `LuaVM.outputSink` while the chunk runs.
@Suite("Streamed output from the state")
struct StreamedOutputTests {
    /// What the sink was given, each part with the time since the evaluation began.
    final class Received {
        var parts: [(at: Duration, text: String)] = []
    }

    /// A spin of `seconds` of wall-clock time (the kernel's uptime): not os.clock, the process's
    /// CPU time, which parallel tests make run faster than the wall clock.
    static func spin(_ seconds: Double) -> String {
        "do local function now() local f = io.open('/proc/uptime') local t = f:read('n') f:close() return t end "
            + "local t = now() while now() - t < \(seconds) do end end"
    }

    func evaluate(_ vm: LuaVM, _ chunk: String) -> (Evaluation, Received) {
        let received = Received()
        let start = MonotonicInstant.now()
        vm.outputSink = { bytes in
            received.parts.append(
                (MonotonicInstant.now().duration(since: start), String(decoding: bytes, as: UTF8.self)))
        }
        defer { vm.outputSink = nil }
        return (vm.evaluate(Array(chunk.utf8), chunkName: "interactive.lua", rendering: .text), received)
    }

    @Test("a print before a spin is handed over by the hook while the chunk still spins")
    func printThenSpin() throws {
        let vm = try LuaVM()
        let (evaluation, received) = evaluate(
            vm, "print('early') \(Self.spin(0.6)) print('late') return 1")
        #expect(try evaluation.outcome.get() == [.string(Array("1".utf8))])
        #expect(received.parts.map(\.text) == ["early\n"])
        // Not before the 100 ms (nor at 4 KiB): while the spin went on, since the last print
        // stayed for the evaluation.
        let at = try #require(received.parts.first).at
        #expect(at >= .milliseconds(100), "handed over after \(at)")
        // What was printed last is the evaluation's, for the final event.
        #expect(evaluation.output == Array("late\n".utf8))
    }

    @Test("4 KiB are handed over at once; the output limit bounds everything printed")
    func sizeAndLimit() throws {
        let vm = try LuaVM(limits: LuaVM.Limits(output: 10_000))
        let (evaluation, received) = evaluate(
            vm, "local ok, err for i = 1, 3 do ok, err = io.write(string.rep('x', 4096)) end return ok, err")
        #expect(received.parts.map(\.text.count) == [4096, 4096])
        // io.write's own failure past the limit, as before streaming.
        #expect(try evaluation.outcome.get() == [.nil, .string(Array("No space left on device".utf8))])
        let (printed, _) = evaluate(vm, "for i = 1, 3 do print(string.rep('y', 4095)) end")
        guard case .failure(let failure) = printed.outcome else {
            Issue.record("print past the limit succeeded")
            return
        }
        #expect(failure.message == "interactive.lua:1: output limit of 10000 bytes exceeded")
    }

    @Test("without a sink the output is all in the evaluation, and no hook is left behind")
    func noSink() throws {
        let vm = try LuaVM()
        _ = evaluate(vm, "print('streamed')")
        let evaluation = vm.evaluate(
            Array("print('kept') \(Self.spin(0.2)) return debug.gethook()".utf8),
            chunkName: "interactive.lua", rendering: .text)
        #expect(evaluation.output == Array("kept\n".utf8))
        #expect(try evaluation.outcome.get() == [.nil])
    }
}
