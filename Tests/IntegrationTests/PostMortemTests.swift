import Foundation
import Testing

/// SPEC O11: a chunk ended by its time limit, an administrator or the memory cap says where it
/// was; `Lua-Traceback: locals` adds each frame's locals, rendered without running the chunk's code.
@Suite("Post-mortem tracebacks")
struct PostMortemTests {
    static let stack = Result { try Stack(settings: ["limits.time=0.5", "limits.memory=32"]) }

    /// A guard whose every metamethod would leave a mark; a nested call that spins.
    static let nested = """
        local guard = setmetatable({}, {__index = function() touched = true end, __tostring = function() touched = true return 'x' end, __name = 'Guarded', __pairs = function() touched = true end, __len = function() touched = true return 0 end})
        local function inner(depth)
          local text = string.rep('a', 100) .. '\\n'
          local n = 0
          while true do n = n + 1 end
        end
        local function outer(items)
          inner(#items)
        end
        outer({1, 2, 3})
        """

    @Test("a timeout inside a nested call names each frame, down to the main chunk")
    func timeoutFrames() throws {
        let stack = try Self.stack.get()
        let text = try stack.eval(Self.nested)
        #expect(text.status == 504)
        #expect(text.headers["x-lua-error"] == "timeout")
        #expect(
            text.text == """
                the chunk exceeded its time limit (0.5 seconds)
                stack traceback:
                \tinteractive.lua:5: in upvalue 'inner'
                \tinteractive.lua:8: in local 'outer'
                \tinteractive.lua:10: in main chunk
                \t[C]: in ?

                """)
        let json = try stack.eval(Self.nested, headers: ["Accept: application/json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.body)) as? [String: Any])
        let error = try #require(object["error"] as? [String: Any])
        #expect(error["kind"] as? String == "timeout")
        #expect(
            error["traceback"] as? String
                == "stack traceback:\n\tinteractive.lua:5: in upvalue 'inner'\n\tinteractive.lua:8: in local 'outer'\n"
                + "\tinteractive.lua:10: in main chunk\n\t[C]: in ?")
    }

    @Test("a Lua-Traceback value other than locals is 400 and runs nothing", arguments: ["locals, locals", "yes"])
    func otherTracebackValue(value: String) throws {
        let stack = try Self.stack.get()
        let marker = "traced_\(UInt32.random(in: 0...UInt32.max))"
        let answer = try stack.eval("\(marker) = true", headers: ["Lua-Traceback: \(value)"])
        #expect(answer.status == 400)
        #expect(answer.text == "the Lua-Traceback header takes one value, locals (each frame's locals in the traceback)\n")
        #expect(try stack.eval("return \(marker)").body == [])
    }

    @Test("Lua-Traceback: locals lists each frame's locals, short, and runs no metamethod")
    func locals() throws {
        let stack = try Self.stack.get()
        let answer = try stack.eval(Self.nested, headers: ["Lua-Traceback: locals"])
        #expect(answer.status == 504)
        let text = answer.text.replacingOccurrences(of: #"n = [0-9]+"#, with: "n = N", options: .regularExpression)
        #expect(
            text == """
                the chunk exceeded its time limit (0.5 seconds)
                stack traceback:
                \tinteractive.lua:5: in upvalue 'inner'
                \t\tdepth = 3
                \t\ttext = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"... (101 bytes)
                \t\tn = N
                \tinteractive.lua:8: in local 'outer'
                \t\titems = table: 3 entries
                \tinteractive.lua:10: in main chunk
                \t\tguard = table: 0 entries
                \t\tinner = function <interactive.lua:2>
                \t\touter = function <interactive.lua:7>
                \t[C]: in ?

                """)
        // Nothing of the guard ran: not its __tostring, __name, __index, __pairs or __len.
        #expect(try stack.eval("return touched").text == "")
        // The header is the request's alone.
        #expect(try stack.eval(Self.nested).text.contains("\t\t") == false)
    }

    @Test("locals render strings with escapes, numbers, booleans, functions and userdata by raw type")
    func renderings() throws {
        let stack = try Self.stack.get()
        let answer = try stack.eval(
            """
            local s, f, b, i, u, co = 'a"b\\1\\n', 2.5, false, 7, io.stdout, coroutine.create(print)
            local big = {} for k = 1, 20000 do big[k] = k end
            while true do end
            """, headers: ["Lua-Traceback: locals", "Accept: application/json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any])
        let traceback = try #require((object["error"] as? [String: Any])?["traceback"] as? String)
        #expect(
            traceback == "stack traceback:\n\tinteractive.lua:3: in main chunk\n"
                + "\t\ts = \"a\\\"b\\1\\10\"\n\t\tf = 2.5\n\t\tb = false\n\t\ti = 7\n\t\tu = userdata\n\t\tco = thread\n"
                + "\t\tbig = table: at least 10000 entries\n\t[C]: in ?")
    }

    @Test("a memory error says where the chunk asked for too much")
    func memory() throws {
        let stack = try Self.stack.get()
        let answer = try stack.eval(
            "local function grow() local s = ('x'):rep(1 << 20) while true do s = s .. s end end grow()",
            headers: ["Accept: application/json"])
        #expect(answer.status == 500)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(answer.body)) as? [String: Any])
        let error = try #require(object["error"] as? [String: Any])
        #expect(error["kind"] as? String == "memory")
        #expect(
            error["traceback"] as? String
                == "stack traceback:\n\tinteractive.lua:1: in local 'grow'\n\tinteractive.lua:1: in main chunk\n\t[C]: in ?"
        )
    }

    @Test("a timeout caught by pcall in a loop is reported where the stop first reached it")
    func pcallLoop() throws {
        let stack = try Self.stack.get()
        let answer = try stack.eval(
            "local function spin() while true do end end\nwhile true do pcall(spin) end")
        #expect(answer.status == 504)
        #expect(
            answer.text
                == "the chunk exceeded its time limit (0.5 seconds)\nstack traceback:\n\tinteractive.lua:1: in function <interactive.lua:1>\n"
                + "\t[C]: in function 'pcall'\n\tinteractive.lua:2: in main chunk\n\t[C]: in ?\n")
    }
}
