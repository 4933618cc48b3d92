import Testing

@testable import LuaRuntime

/// The `http` module inside one state: registration, the registry the host sees, and calls.
@Suite("http module: listen, action, stop")
struct HTTPModuleTests {
    let vm = try! LuaVM()

    func run(_ chunk: String) -> Evaluation {
        vm.evaluate(Array(chunk.utf8), chunkName: "interactive.lua", rendering: .text)
    }

    func message(_ chunk: String) -> String? {
        if case .failure(let failure) = run(chunk).outcome { return failure.message }
        return nil
    }

    @Test("a finalizer registers nothing and sets no timer: it runs in whoever's chunk collected its object")
    func finalizersActForNoOne() throws {
        vm.caller = .request(token: "exec-only")
        #expect(
            message(
                """
                REFUSED = {}
                setmetatable({}, {__gc = function()
                  for _, try in ipairs({
                    function() http.listen('planted', function() return 'backdoor' end) end,
                    function() http.action('planted', function() end) end,
                    function() http.stop_listen('kept') end,
                    function() timer.after(60, function() end) end,
                    function() timer.cancel(KEPT_TIMER) end,
                    function() config.register('planted', function() end) end,
                  }) do
                    local ok, message = pcall(try)
                    REFUSED[#REFUSED + 1] = tostring(ok) .. ' ' .. message
                  end
                end})
                http.listen('kept', function() return 'kept' end)
                KEPT_TIMER = timer.after(60, function() end)
                """) == nil)
        // Another token's chunk whose allocation (here, a full collection) runs the finalizer.
        vm.caller = .request(token: "admin")
        #expect(message("collectgarbage() collectgarbage()") == nil)
        #expect(vm.registry.entries.map(\.name) == ["kept"])
        #expect(vm.registry.entry(.endpoint, "kept")?.origin == .token("exec-only"))
        #expect(vm.timers.entries.count == 1)
        let refusal = "cannot be called from a finalizer (__gc): it runs in whichever request's evaluation collected the object, and would act in that caller's name"
        #expect(
            try run("return table.concat(REFUSED, '\\n')").outcome.get() == [
                .string(Array(
                    ["http.listen", "http.action", "http.stop_listen", "timer.after", "timer.cancel", "config.register"]
                        .enumerated().map { "false interactive.lua:\($0.offset + 4): \($0.element) \(refusal)" }
                        .joined(separator: "\n").utf8))
            ])
    }

    @Test("http.listen registers a function that invoke calls with its arguments")
    func listenAndInvoke() throws {
        vm.caller = .request(token: "ops")
        #expect(
            message(
                "h = http.listen('echo', function(url, body, headers, req) return url .. '|' .. body .. '|' .. headers.accept .. '|' .. req.method end)"
            ) == nil)
        let evaluation = try #require(
            vm.invoke(
                .endpoint, "echo",
                arguments: [
                    .string("/u"), .string("b"), .object([.init(key: Array("accept".utf8), value: .string("x/y"))]),
                    .object([.init(key: Array("method".utf8), value: .string("PUT"))]),
                ], rendering: .text))
        #expect(try evaluation.outcome.get() == [.string("/u|b|x/y|PUT")])
        let entry = try #require(vm.registry.entry(.endpoint, "echo"))
        #expect(entry.origin == .token("ops"))
        #expect(entry.sourceSHA256?.count == 64)
        #expect(
            try run("return tostring(h), h.name, h.kind").outcome.get() == [
                .string("http endpoint 'echo'"), .string("echo"), .string("endpoint"),
            ])
    }

    @Test("a name nobody registered is not found, and nothing runs")
    func notFound() {
        #expect(vm.invoke(.endpoint, "nope", arguments: [], rendering: .text) == nil)
        #expect(vm.invoke(.action, "nope", arguments: [], rendering: .text) == nil)
    }

    @Test(
        "bad names are refused when registering",
        arguments: [
            ("''", "it is empty"), ("'..'", "'.' and '..' are not names"), ("'a/b'", "use letters, digits"),
            ("string.rep('a', 129)", "longer than 128 bytes"), ("'interactive.lua'", "luaexec serves that URL itself"),
            ("'command'", "luaexec serves that URL itself"), ("'a b'", "use letters, digits"),
        ])
    func badNames(name: String, problem: String) throws {
        let text = try #require(message("http.listen(\(name), function() end)"))
        #expect(text.contains("http.listen: bad endpoint name"))
        #expect(text.contains(problem))
        #expect(vm.registry.entries.isEmpty)
    }

    @Test("re-registering swaps the function; a stale handle removes nothing; a name removes")
    func swapAndStop() throws {
        #expect(message("old = http.listen('x', function() return 'old' end)") == nil)
        #expect(message("new = http.listen('x', function() return 'new' end)") == nil)
        #expect(try vm.invoke(.endpoint, "x", arguments: [], rendering: .text)?.outcome.get() == [.string("new")])
        #expect(try run("return http.stop_listen(old)").outcome.get() == [.string("false")])
        #expect(vm.registry.entry(.endpoint, "x") != nil)
        #expect(try run("return http.stop_listen(new)").outcome.get() == [.string("true")])
        #expect(vm.registry.entry(.endpoint, "x") == nil)
        #expect(vm.invoke(.endpoint, "x", arguments: [], rendering: .text) == nil)
        #expect(message("http.listen('y', print)") == nil)
        #expect(
            try run("return http.stop_listen('y'), http.stop_listen('y')").outcome.get() == [
                .string("true"), .string("false"),
            ])
    }

    @Test("http.action records help and typed parameters; bad specs are refused")
    func actionSpec() throws {
        #expect(
            message(
                """
                http.action('toast', function(text, times) return text, times end, {
                  help = 'Shows a message', params = {{name = 'text', type = 'string'}, {name = 'times', type = 'integer', optional = true}}})
                """) == nil)
        let entry = try #require(vm.registry.entry(.action, "toast"))
        #expect(entry.help == "Shows a message")
        #expect(
            entry.parameters == [
                .init(name: "text", type: .string), .init(name: "times", type: .integer, optional: true),
            ])
        #expect(
            try vm.invoke(.action, "toast", arguments: [.string("hi"), .integer(2)], rendering: .text)?.outcome.get()
                == [.string("hi"), .string("2")])
        #expect(
            message("http.action('a', print, {params = {{name = 'x', type = 'date'}}})")?.contains(
                "parameter 'x' needs a type") == true)
        #expect(
            message(
                "http.action('a', print, {params = {{name = 'x', type = 'string'}, {name = 'x', type = 'string'}}})")?
                .contains("parameter 'x' is listed twice") == true)
        #expect(
            message("http.action('a', print, {params = {{name = 'action', type = 'string'}}})")?.contains(
                "params[1].name") == true)
        #expect(message("http.action('a', print, {help = 42})")?.contains("help must be a string") == true)
        #expect(message("http.stop_listen(http.action('b', print))")?.contains("this handle is for an action") == true)
        #expect(vm.registry.entry(.action, "a") == nil)
    }

    @Test("a handler's error comes back with its traceback, and the state lives on")
    func handlerError() throws {
        #expect(message("http.listen('boom', function() error('broken') end) kept = 1") == nil)
        let evaluation = try #require(vm.invoke(.endpoint, "boom", arguments: [], rendering: .text))
        guard case .failure(let failure) = evaluation.outcome else {
            Issue.record("no failure")
            return
        }
        #expect(failure.kind == .runtime)
        #expect(failure.message == "interactive.lua:1: broken")
        #expect(failure.traceback?.contains("stack traceback:") == true)
        #expect(try run("return kept").outcome.get() == [.string("1")])
    }

    @Test("a registration made by an init script names the script and line")
    func initScriptOrigin() throws {
        vm.caller = .initScript("/etc/luaexec/init.d/30.lua")
        _ = vm.evaluate(
            Array("\n\nhttp.listen('s', print)".utf8), chunkName: "/etc/luaexec/init.d/30.lua", rendering: .text)
        #expect(vm.registry.entry(.endpoint, "s")?.origin == .script(path: "/etc/luaexec/init.d/30.lua", line: 3))
    }

    @Test("what a handler registers or sets is put down to whoever registered the handler, not the token that called it")
    func handlerOrigin() throws {
        vm.caller = .request(token: "owner")
        #expect(
            message(
                "http.listen('outer', function() http.listen('inner', print) http.action('act', print) "
                    + "timer.after(100, print) end)") == nil)
        vm.caller = .request(token: "caller")
        let evaluation = try #require(vm.invoke(.endpoint, "outer", arguments: [], rendering: .tree))
        _ = try evaluation.outcome.get()
        #expect(vm.registry.entry(.endpoint, "inner")?.origin == .token("owner"))
        #expect(vm.registry.entry(.action, "act")?.origin == .token("owner"))
        #expect(vm.timers.entries.map(\.origin) == [.token("owner")])
        // What runs next in the state is not the handler's owner's.
        #expect(vm.caller == .request(token: "caller"))
        // A chunk of the caller's own: the caller's.
        vm.caller = .request(token: "caller")
        _ = run("http.listen('direct', print)")
        #expect(vm.registry.entry(.endpoint, "direct")?.origin == .token("caller"))
    }

    @Test("limits.endpoints: one name more is a Lua error that says so; replacing a name is not one more; a removed one makes room")
    func registrationLimit() throws {
        vm.maxRegistrations = 3
        #expect(message("http.listen('a', print) http.action('b', print) h = http.listen('c', print)") == nil)
        #expect(
            message("http.listen('d', print)")
                == "interactive.lua:1: http.listen: too many endpoints and actions: 3 are registered, the most "
                + "limits.endpoints allows; remove some first (http.stop_listen, http.stop_action)")
        #expect(vm.registry.entry(.endpoint, "d") == nil)
        #expect(message("http.listen('a', tostring) http.action('b', tostring)") == nil)
        #expect(message("http.action('e', print)")?.contains("too many endpoints and actions: 3") == true)
        #expect(message("assert(http.stop_listen(h)) http.action('e', print)") == nil)
        #expect(vm.registry.entries.map(\.name).sorted() == ["a", "b", "e"])
    }

    @Test("limits.endpoints counts requests' names and the box's own scripts' apart: a token that fills its count leaves a stored script room")
    func registrationLimitByOrigin() throws {
        vm.maxRegistrations = 2
        let token = LuaVM.Caller.request(token: "ops")
        let script = LuaVM.Caller.storedScript(name: "door.lua", version: 1)
        vm.caller = token
        #expect(message("http.listen('a', print) http.listen('b', print)") == nil)
        #expect(message("http.listen('c', print)")?.contains("too many endpoints and actions: 2 are registered, the most") == true)
        // A timer a token set is the token's; a handler a request calls is the request's.
        vm.caller = .timer(.token("ops"), ownWork: false)
        #expect(message("http.listen('c', print)")?.contains("2 are registered, the most") == true)
        vm.caller = .handler(.storedScript(name: "door.lua", version: 1, line: 1))
        #expect(message("http.listen('c', print)")?.contains("2 are registered, the most") == true)
        // The box's own scripts have two of their own.
        vm.caller = script
        #expect(message("http.listen('c', print) http.action('d', print)") == nil)
        #expect(
            message("http.listen('e', print)")
                == "interactive.lua:1: http.listen: too many endpoints and actions: 2 are registered by the box's own "
                + "scripts, the most limits.endpoints allows; remove some first (http.stop_listen, http.stop_action)")
        // A name taken over from the other side moves to this side's count: none left here for it.
        #expect(message("http.listen('a', tostring)")?.contains("by the box's own scripts") == true)
        // Replacing one's own name is not one more; removing one makes room on its side only.
        #expect(message("http.listen('c', tostring)") == nil)
        vm.caller = token
        #expect(message("assert(http.stop_listen('a'))") == nil)
        #expect(message("http.listen('c', print)") == nil)  // taken over from the scripts' side
        #expect(message("http.listen('f', print)")?.contains("2 are registered, the most") == true)
        vm.caller = .timer(.script(path: "init.d/10-x.lua", line: 1), ownWork: true)
        #expect(message("http.listen('e', print)") == nil)
        #expect(vm.registry.entries.map(\.name).sorted() == ["b", "c", "d", "e"])
        // A name that moved is withdrawn from the count it moved to, whoever removes it.
        #expect(message("assert(http.stop_listen('c'))") == nil)
        vm.caller = token
        #expect(message("http.listen('g', print)") == nil)
        #expect(message("http.listen('h', print)")?.contains("2 are registered, the most") == true)
    }

    @Test("a timer set by a handler a request called is the request's, not the box's own, though the handler's script owns it")
    func timerFromHandler() throws {
        vm.caller = .handler(.storedScript(name: "door.lua", version: 1, line: 1))
        #expect(message("timer.after(60, print)") == nil)
        vm.caller = .storedScript(name: "door.lua", version: 1)
        #expect(message("timer.after(60, print)") == nil)
        let entries = vm.timers.entries.sorted { $0.id < $1.id }
        #expect(entries.map(\.ownWork) == [false, true])
        #expect(entries.allSatisfy { $0.origin.storedScriptName == "door.lua" })
    }
}
