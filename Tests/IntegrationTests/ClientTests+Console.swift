import Foundation
import Testing

/// Tab completion and `?name` in `luaexec repl` (SPEC O10), in a real terminal (tmux).
extension ClientTests {
    @Test("repl: Tab completes names from the remote's state (one inserted, several listed), ?name says what a name is")
    func replCompletionAndInspection() throws {
        let user = try User()
        try user.login("box")
        #expect(
            try Self.stack.eval("tabby_one = 1; tabby_two = {}; function tabby_add(a, b, ...) return a + b end").status
                == 200)
        let terminal = try Terminal(Stack.binDirectory + "/luaexec repl", environment: user.environment)
        try terminal.waitFor("Ctrl-D to leave.")

        // One candidate: inserted whole, through a table's field.
        try terminal.type("sip.calls.ge")
        try terminal.press("Tab")
        try terminal.waitFor("> sip.calls.get_all")
        try terminal.line("()[1]:getState()")
        try terminal.waitFor("\nactive\n")

        // Several that share nothing more than what is typed: listed under the line, which stays.
        try terminal.type("tabby_")
        try terminal.press("Tab")
        try terminal.waitFor("\ntabby_add  tabby_one  tabby_two\n> tabby_")
        try terminal.type("o")
        try terminal.press("Tab")
        try terminal.waitFor("> tabby_one")
        try terminal.press("Enter")
        try terminal.waitFor("> tabby_one\n1\n")

        // ?name: a Lua function, a C function, a table, an action, nothing, a mistake.
        try terminal.line("?tabby_add")
        try terminal.waitFor("tabby_add(a, b, ...)  -- function defined at interactive.lua:1-1\n")
        try terminal.line("?string.format")
        try terminal.waitFor("string.format(...)  -- C function\n")
        try terminal.line("?sip")
        let table = try terminal.waitFor("sip  -- table: 1 key, length 0\n  calls = table: 0x")
        #expect(!table.contains("  ...\n"))
        try terminal.line("?toast")
        // (longer than the window: the start of the line)
        try terminal.waitFor("toast(text: string, times?: integer)  -- action: Show a message on the box")
        #expect(
            terminal.joinedScreen.contains("-- action: Show a message on the box (here: a line in luaexecd's log).\n"))
        try terminal.line("?tabby_nothing")
        try terminal.waitFor("tabby_nothing  -- nil\n")
        try terminal.line("?sip.calls.get_all()")
        try terminal.waitFor("'sip.calls.get_all()' is not a name: send Lua names joined by . (and : before the last)")
        try terminal.press("C-d")
        try terminal.waitFor("EXITED 0")
    }
}
