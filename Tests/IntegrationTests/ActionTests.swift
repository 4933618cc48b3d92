import Foundation
import Testing

/// Action URLs (SPEC V7): a GET with named parameters calls a registered function.
@Suite("Action URLs")
struct ActionTests {
    static let stack: Stack = try! Stack(settings: ["exec.actions=true", "auth.failure_limit=1000000"])

    func command(_ query: String, token: String? = nil, headers: [String] = []) throws -> Stack.HTTPResult {
        try Self.stack.request("/api/v1/exec/command?" + query, token: token ?? Self.stack.adminToken, headers: headers)
    }

    @Test("action=? lists the actions, action=NAME&help describes one")
    func listAndHelp() throws {
        let list = try command("action=%3F")
        #expect(list.status == 200)
        #expect(list.headers["content-type"] == "text/plain; charset=utf-8")
        #expect(
            list.text.contains(
                "toast(text: string, times?: integer)\tShow a message on the box (here: a line in luaexecd's log).\n"))
        let help = try command("action=toast&help")
        #expect(help.status == 200)
        #expect(
            help.text == """
                toast(text: string, times?: integer)
                Show a message on the box (here: a line in luaexecd's log).
                GET /api/v1/exec/command?action=toast&text=<string>&times=<integer>

                """)
        let json = try command("action=toast&help", headers: ["Accept: application/json"])
        #expect(
            json.text
                == #"{"actions":[{"name":"toast","help":"Show a message on the box (here: a line in luaexecd's log).","params":[{"name":"text","type":"string","optional":false},{"name":"times","type":"integer","optional":true}]}]}"#
        )
    }

    @Test("the example's toast action runs with its parameters; its results render as a chunk's")
    func toast() throws {
        let marker = "action-\(UInt32.random(in: 0...UInt32.max))"
        let result = try command("action=toast&text=\(marker)&times=2")
        #expect(result.status == 200)
        #expect(result.text == "shown 2 time(s)")
        #expect(result.headers["server-timing"]?.hasPrefix("lua;dur=") == true)
        try Stack.waitUntil(timeout: .seconds(5), "the toasts in the log") {
            Self.stack.luaexecdLog().components(separatedBy: "lua tag=toast text=\(marker)\n").count == 3
        }
        let once = try command("action=toast&text=x", token: nil)
        #expect(once.text == "shown 1 time(s)")
        // The query form of the token, as a dumb device sends it.
        let viaQuery = try Self.stack.request(
            "/api/v1/exec/command?action=toast&text=q&AuthToken=\(Self.stack.adminToken)")
        #expect(viaQuery.status == 200)
    }

    @Test("each type arrives as its Lua type: integer, number, boolean, string")
    func types() throws {
        #expect(
            try Self.stack.eval(
                """
                http.action('types', function(i, n, b, s) return math.type(i), math.type(n), n, type(b), b, s end, {
                  params = {{name = 'i', type = 'integer'}, {name = 'n', type = 'number'}, {name = 'b', type = 'boolean'},
                            {name = 's', type = 'string', optional = true}}})
                """
            ).status == 200)
        #expect(try command("action=types&i=-5&n=2.5&b=true&s=a%26b").text == "integer\tfloat\t2.5\tboolean\ttrue\ta&b")
        #expect(try command("action=types&i=7&n=3&b=0").text == "integer\tinteger\t3\tboolean\tfalse\tnil")
        let json = try command("action=types&i=1&n=1e3&b=1", headers: ["Accept: application/json"])
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.body)) as? [String: Any])
        #expect((object["results"] as? [Any])?.count == 6)
    }

    @Test(
        "a missing, ill-typed, doubled or unknown parameter is a 400 that names it, and nothing runs",
        arguments: [
            ("action=counted&n=1&extra=2", "unknown parameter 'extra': counted(n: integer, flag?: boolean)\n"),
            ("action=counted", "missing parameter 'n': counted(n: integer, flag?: boolean)\n"),
            ("action=counted&n=abc", "parameter 'n' must be an integer, got 'abc': counted(n: integer, flag?: boolean)\n"),
            ("action=counted&n=1.5", "parameter 'n' must be an integer, got '1.5': counted(n: integer, flag?: boolean)\n"),
            ("action=counted&n=1&flag=maybe", "parameter 'flag' must be true or false (or 1 or 0), got 'maybe': counted(n: integer, flag?: boolean)\n"),
            ("action=counted&n=1&n=2", "parameter 'n' is given more than once: counted(n: integer, flag?: boolean)\n"),
            ("action=counted&action=toast&n=1", "name one action: action=NAME (action=? lists them)\n"),
        ])
    func badParameters(query: String, message: String) throws {
        _ = try Self.stack.eval(
            """
            counted_calls = counted_calls or 0
            http.action('counted', function(n) counted_calls = counted_calls + 1 end,
              {params = {{name = 'n', type = 'integer'}, {name = 'flag', type = 'boolean', optional = true}}})
            """)
        let before = try Self.stack.eval("return counted_calls").text
        let result = try command(query)
        #expect(result.status == 400)
        #expect(result.text == message)
        #expect(try Self.stack.eval("return counted_calls").text == before)
    }

    @Test("Lua-Check on an action is 400 and the action does not run: a dry run never runs a handler")
    func checkRefused() throws {
        _ = try Self.stack.eval("checked_calls = 0 http.action('checked', function() checked_calls = checked_calls + 1 end)")
        let result = try command("action=checked", headers: ["Lua-Check: syntax"])
        #expect(result.status == 400)
        #expect(result.text
            == "Lua-Check asks for a compile only, which /api/v1/exec/interactive.lua and POST /api/v1/admin/scripts/NAME/check do; this request runs or changes something, and nothing ran\n")
        #expect(try Self.stack.eval("return checked_calls").text == "0")
    }

    @Test("an unknown action is 404")
    func unknown() throws {
        let result = try command("action=nobody-here")
        #expect(result.status == 404)
        #expect(result.text == "no such action: 'nobody-here' (action=? lists them)\n")
        #expect(try command("action=nobody-here&help").status == 404)
    }

    @Test("an action:NAME token calls that action, lists only it, and reaches nothing else")
    func narrowToken() throws {
        let token = try Self.stack.makeToken("door-\(UInt32.random(in: 0...UInt32.max))", scopes: ["action:toast"])
        #expect(try command("action=toast&text=door", token: token).status == 200)
        let list = try command("action=%3F", token: token)
        #expect(
            list.text
                == "toast(text: string, times?: integer)\tShow a message on the box (here: a line in luaexecd's log).\n"
        )
        #expect(try command("action=types&i=1&n=1&b=1", token: token).status == 403)
        #expect(try Self.stack.request("/api/v1/exec/status.lua", token: token).status == 403)
        #expect(try Self.stack.request(token: token, body: Array("return 1".utf8)).status == 403)
    }

    @Test("off by default: 404, and SIGHUP turns Action URLs on and off")
    func switchedOff() throws {
        let stack = try Stack()
        let path = "/api/v1/exec/command?action=toast&text=off"
        let off = try stack.request(path, token: stack.adminToken)
        #expect(off.status == 404)
        #expect(off.text == "Action URLs are switched off (exec.actions in luaexecd.conf)\n")
        #expect(!stack.luaexecdLog().contains("lua tag=toast text=off"))
        try "exec:\n  actions: true\n".write(toFile: stack.configFile, atomically: true, encoding: .utf8)
        kill(stack.luaexecdPID, SIGHUP)
        try Stack.waitUntil(timeout: .seconds(10), "the reload to turn actions on") {
            (try? stack.request(path, token: stack.adminToken).status) == 200
        }
        try "exec:\n  actions: false\n".write(toFile: stack.configFile, atomically: true, encoding: .utf8)
        kill(stack.luaexecdPID, SIGHUP)
        try Stack.waitUntil(timeout: .seconds(10), "the reload to turn actions off") {
            (try? stack.request(path, token: stack.adminToken).status) == 404
        }
    }
}
