import Foundation
import Testing

/// SPEC E13 and O11 in the terminal client: `luaexec eval` and `luaexec repl` show what a chunk
/// prints as it prints it, in a real terminal (tmux), and the repl's `:trace locals`.
@Suite("Terminal client: streamed output and post-mortem tracebacks")
struct ClientStreamingTests {
    /// A chunk that prints, then waits (in `sleep`, so the state serves the test meanwhile)
    /// until the test sets `flag`, then prints again: its first line can only be on the screen
    /// before it ends if it was streamed.
    static func held(_ name: String, flag: String) -> String {
        #"print("\#(name) " .. "first") while not \#(flag) do sleep(0.05) end print("\#(name) " .. "second") return "\#(name) " .. "done""#
    }

    @Test("luaexec eval prints the chunk's output as it comes, and still exits 0 or 1")
    func evalStreams() throws {
        let user = try ClientTests.User()
        try user.login("box")
        let flag = "release_eval_\(UInt32.random(in: 0...UInt32.max))"
        let terminal = try ClientTests.Terminal(
            Stack.binDirectory + "/luaexec eval -e '\(Self.held("eval", flag: flag))'", environment: user.environment)
        let screen = try terminal.waitFor("eval first")
        #expect(!screen.contains("eval second"))
        #expect(try ClientTests.stack.eval("\(flag) = true").status == 200)
        let done = try terminal.waitFor("EXITED 0")
        #expect(done.contains("eval first\neval second\neval done\nEXITED 0"))

        let failed = try user.luaexec(["eval", "-e", "print('partial') error('late')"])
        #expect(failed.status == 1)
        #expect(failed.stdout == "partial\n")
        #expect(
            failed.stderr.hasPrefix(
                "luaexec: runtime error\n(command line):1: late\nstack traceback:\n\t[C]: in function 'error'\n"))
        let results = try user.luaexec(["eval", "-e", "return 'a', nil, 2, {}"])
        #expect(results.status == 0)
        #expect(results.stdout.hasPrefix("a\tnil\t2\ttable: 0x"))
        let nothing = try user.luaexec(["eval", "-e", "return nil"])
        #expect(nothing.stdout == "")
    }

    @Test("the repl shows output as it comes; :trace locals adds each frame's locals")
    func replStreamsAndTraces() throws {
        let user = try ClientTests.User()
        try user.login("box")
        let flag = "release_repl_\(UInt32.random(in: 0...UInt32.max))"
        let terminal = try ClientTests.Terminal(Stack.binDirectory + "/luaexec repl", environment: user.environment)
        try terminal.waitFor("Ctrl-D to leave.")
        try terminal.line(Self.held("repl", flag: flag))
        let screen = try terminal.waitFor("repl first")
        #expect(!screen.contains("repl second"))
        #expect(try ClientTests.stack.eval("\(flag) = true").status == 200)
        try terminal.waitFor("repl second\nrepl done\n")

        try terminal.line(":trace locals on")
        try terminal.waitFor("tracebacks list each frame's locals")
        try terminal.line("local secret_count, label = 7, 'x' .. 'y' error('with locals')")
        // (tmux shows a tab as spaces)
        let traced = try terminal.waitFor("label = \"xy\"")
        #expect(traced.contains("stdin:1: with locals\nstack traceback:\n"))
        #expect(traced.contains(" in main chunk\n                secret_count = 7\n                label = \"xy\"\n"))
        try terminal.line(":trace locals off")
        try terminal.waitFor("tracebacks without locals")
        try terminal.line("local hidden_count = 8 error('without')")
        try terminal.waitFor("stdin:1: without")
        let plain = try terminal.waitFor("stdin:1: in main chunk", count: 2)
        // Only the typed line names it: no traceback line lists it.
        #expect(plain.components(separatedBy: "hidden_count = 8").count == 2)
        try terminal.press("C-d")
        try terminal.waitFor("EXITED 0")
    }
}
