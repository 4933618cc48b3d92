import Foundation
import Testing

@Suite("Chunks with arguments: application/vnd.luaexec.call+json (SPEC E11)")
struct CallArgumentsTests {
    let stack = Stack.shared
    static let call = "Content-Type: application/vnd.luaexec.call+json"

    func call(_ body: String, headers: [String] = []) throws -> Stack.HTTPResult {
        try stack.request(token: stack.adminToken, headers: [Self.call] + headers, body: Array(body.utf8))
    }

    /// Each argument, written as E5 writes it (sorted keys, shortest floats), so that what comes
    /// back through `...` must be the same bytes.
    static let everyType =
        #"[null,true,false,0,-9223372036854775808,9223372036854775807,1.5,-0.25,1e+300,2.0,"","é\u0000\n\"\\/\u007f😀","#
        + #"{"base64":"/8M="},[1,[2,[3,"x"]]],{"a":{"b":[true,false]},"k":"v","n":null},null]"#

    @Test("every type round-trips through ... and back through E5, byte for byte")
    func roundTrip() throws {
        let result = try call(
            #"{"chunk": "return ...", "args": \#(Self.everyType)}"#, headers: ["Accept: application/json"])
        #expect(result.status == 200)
        // {"n":null} sets nothing: the table comes back without it.
        let expected = Self.everyType.replacingOccurrences(of: #","n":null"#, with: "")
        #expect(result.text.hasPrefix(#"{"ok":true,"results":\#(expected),"output":"","elapsed_ms":"#))
    }

    @Test("integers stay integers, floats floats, bytes bytes; select('#') counts nils")
    func types() throws {
        let result = try call(
            #"""
            {"chunk": "local a, b, c, d = ... return select('#', ...), math.type(a), math.type(b), #c, d, c:byte(1, -1)",
             "args": [1, 1.0, {"base64": "AP8="}, null, null]}
            """#)
        #expect(result.status == 200)
        #expect(result.text == "5\tinteger\tfloat\t2\tnil\t0\t255")
    }

    @Test("name names the chunk as Lua-Chunk-Name does")
    func named() throws {
        let result = try call(#"{"name": "@tools/args.lua", "chunk": "error('bad ' .. ...)", "args": ["value"]}"#)
        #expect(result.status == 500)
        #expect(result.text.hasPrefix("tools/args.lua:1: bad value\nstack traceback:\n"))
    }

    @Test("a chunk that is not UTF-8 goes as base64 and keeps its bytes")
    func binaryChunk() throws {
        // return '\xFF', ...
        let result = try call(#"{"chunk": {"base64": "cmV0dXJuICf/JywgLi4u"}, "args": [2]}"#)
        #expect(result.status == 200)
        #expect(result.body == [0xFF, 0x09, 0x32])
    }

    @Test("no args: the chunk runs with an empty ...")
    func noArguments() throws {
        #expect(try call(#"{"chunk": "return select('#', ...)"}"#).text == "0")
        #expect(try call(#"{"chunk": "return select('#', ...)", "args": []}"#).text == "0")
    }

    @Test("Lua-Check compiles the call's chunk and runs nothing")
    func check() throws {
        let ok = try call(#"{"chunk": "checked_call = ...", "args": [1]}"#, headers: ["Lua-Check: syntax"])
        #expect(ok.status == 200)
        #expect(ok.body == [])
        #expect(try stack.eval("return checked_call").body == [])
        let bad = try call(#"{"chunk": "return (", "args": [1]}"#, headers: ["Lua-Check: syntax"])
        #expect(bad.status == 400)
        #expect(bad.headers["x-lua-error"] == "syntax")
        #expect(bad.text == "interactive.lua:1: unexpected symbol near <eof>\n")
    }

    static let deep = String(repeating: "[", count: 32) + "1" + String(repeating: "]", count: 32)

    @Test("nesting up to E5's depth is taken and comes back whole")
    func deepest() throws {
        let result = try call(
            #"{"chunk": "return ...", "args": [\#(Self.deep)]}"#, headers: ["Accept: application/json"])
        #expect(result.text.hasPrefix(#"{"ok":true,"results":[\#(Self.deep)],"#))
    }

    @Test(
        "bad input is 400 with a message, and nothing runs",
        arguments: [
            (#"{"chunk": "ran_bad = 1", "args": [1,"#, "the JSON ends too early"),
            (
                #"{"chunk": "ran_bad = 1", "args": {"a": 1}}"#,
                #""args" must be an array: the chunk's ... in order (at byte 33)"#
            ),
            (#"{"chunk": 5}"#, #""chunk" must be a string (or {"base64": "..."}) of Lua source text (at byte 11)"#),
            (#"{"args": []}"#, #"the call has no "chunk": give the Lua source text to run"#),
            (
                #"{"chunk": "ran_bad = 1", "args": [\#(deep.replacingOccurrences(of: "1", with: "[1]"))]}"#,
                "the arguments nest deeper than 32 levels (SPEC E5's limit) (at byte 67)"
            ),
            (
                #"{"chunk": "ran_bad = 1", "args": [9223372036854775808]}"#,
                "9223372036854775808 does not fit a Lua integer (-2^63 to 2^63-1); send it as a string (at byte 34)"
            ),
            (
                #"{"chunk": "ran_bad = 1", "args": [1e400]}"#,
                "1e400 does not fit a Lua float; send it as a string (at byte 34)"
            ),
            (
                #"{"chunk": "ran_bad = 1", "args": [1e-400]}"#,
                "1e-400 is too small for a Lua float (it would be 0); send it as a string (at byte 34)"
            ),
            (
                #"{"chunk": "ran_bad = 1", "args": [\#(String(repeating: "9", count: 5000))]}"#,
                "999999999999999999999999... (5000 characters) does not fit a Lua integer (-2^63 to 2^63-1); send it as a string (at byte 34)"
            ),
            (
                #"{"chunk": "ran_bad = 1", "args": ["\ud800"]}"#,
                #"a string that is not Unicode text (UTF-8); send bytes as {"base64": "..."} (at byte 41)"#
            ),
            (
                #"{"chunk": "ran_bad = 1", "args": [{"base64": "!!"}]}"#,
                #"{"base64": ...} holds text that is not base64 (at byte 50)"#
            ),
            (
                #"{"chunk": "ran_bad = 1", "arg": []}"#,
                #"unknown member "arg": a call takes "chunk", "args" and "name" (at byte 25)"#
            ),
            (#"{"chunk": "ran_bad = 1"} x"#, "unexpected text after the JSON object (at byte 25)"),
            (
                #"["ran_bad = 1"]"#,
                #"the body must be a JSON object: {"chunk": "...", "args": [...], "name": "..."} (at byte 0)"#
            ),
        ])
    func badInput(body: String, message: String) throws {
        let result = try call(body)
        #expect(result.status == 400)
        #expect(result.headers["x-lua-error"] == nil)
        #expect(result.text == message + "\n")
        #expect(try stack.eval("return ran_bad").body == [])
    }

    @Test("a string that is not UTF-8 is 400 and nothing runs; its bytes go as base64")
    func invalidUTF8() throws {
        let body = Array(#"{"chunk": "ran_bad = 1", "args": [""#.utf8) + [0xFF, 0xC3] + Array(#""]}"#.utf8)
        let result = try stack.request(token: stack.adminToken, headers: [Self.call], body: body)
        #expect(result.status == 400)
        #expect(
            result.text == #"a string that is not Unicode text (UTF-8); send bytes as {"base64": "..."} (at byte 34)"#
                + "\n")
        let json = try call(#"{"chunk": "ran_bad = 1", "args": 1}"#, headers: ["Accept: application/json"])
        #expect(json.status == 400)
        #expect(
            json.text
                == #"{"ok":false,"error":{"kind":"http","message":"\"args\" must be an array: the chunk's ... in order (at byte 33)"}}"#
        )
        #expect(try stack.eval("return ran_bad").body == [])
    }
}
