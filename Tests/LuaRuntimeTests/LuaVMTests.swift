import Testing

@testable import LuaRuntime

@Suite("LuaVM evaluation")
struct LuaVMTests {
    let vm = try! LuaVM()

    func run(_ chunk: String, _ rendering: Rendering = .text) -> Evaluation {
        vm.evaluate(Array(chunk.utf8), chunkName: "interactive.lua", rendering: rendering)
    }

    func values(_ chunk: String, _ rendering: Rendering = .text) throws -> [LuaValue] {
        try run(chunk, rendering).outcome.get()
    }

    @Test("a chunk sent again runs as if compiled anew: its own locals, the globals, its name in errors")
    func keptChunks() throws {
        let text: (String) -> LuaValue = { .string(Array($0.utf8)) }
        let counter = "local n = 0 n = n + 1 kept_total = (kept_total or 0) + n return n, kept_total"
        #expect(try values(counter) == [text("1"), text("1")])
        #expect(try values(counter) == [text("1"), text("2")])
        #expect(try values(counter) == [text("1"), text("3")])
        // Each call makes its own closures.
        let closures = "kept_fns = kept_fns or {} kept_fns[#kept_fns + 1] = function() end return #kept_fns, kept_fns[1] == kept_fns[#kept_fns]"
        #expect(try values(closures) == [text("1"), text("true")])
        #expect(try values(closures) == [text("2"), text("false")])

        // A chunk that replaces its _ENV does not pass its environment on to its next run.
        let swaps = "if marker then return 'leaked' end _ENV = {marker = true} return 'fresh'"
        for _ in 0..<3 { #expect(try values(swaps) == [text("fresh")]) }
        let setsUpvalue = "if marker then return 'leaked' end debug.setupvalue(debug.getinfo(1, 'f').func, 1, {marker = true}) return 'fresh'"
        for _ in 0..<3 { #expect(try values(setsUpvalue) == [text("fresh")]) }

        // The same text under two names: each error names its own chunk.
        let failing = Array("error('boom')".utf8)
        for name in ["@a.lua", "@b.lua", "@a.lua"] {
            guard case .failure(let failure) = vm.evaluate(failing, chunkName: name, rendering: .text).outcome else {
                Issue.record("no error")
                continue
            }
            #expect(failure.message == "\(name.dropFirst()):1: boom")
        }
        // A syntax error stays one.
        for _ in 0..<2 {
            guard case .failure(let failure) = run("return +").outcome else { Issue.record("no error"); continue }
            #expect(failure.kind == .syntax)
        }
        // More distinct chunks than are kept: every one still right.
        for index in 0..<200 { #expect(try values("return \(index)") == [text(String(index))]) }
        #expect(try values(counter) == [text("1"), text("4")])
    }

    @Test("a hook a chunk set on its own coroutine or on the main thread does not run in later chunks")
    func hooksDoNotOutliveTheirChunk() throws {
        let text: (String) -> LuaValue = { .string(Array($0.utf8)) }
        // The evaluation's coroutine is kept for the next one: a line hook set on it saw the
        // next request's locals (a narrow token's endpoint call included).
        #expect(
            try values("hook_seen = 0 debug.sethook(coroutine.running(), function() hook_seen = hook_seen + 1 end, 'l') return 1")
                == [text("1")])
        let later = "local before = hook_seen\nlocal secret = 'hunter2'\nlocal again = secret\nreturn hook_seen - before"
        #expect(try values(later) == [text("0")])
        // The main thread's hook, which a new coroutine inherits.
        #expect(
            try values(
                "local main = debug.getregistry()[1] debug.sethook(main, function() hook_seen = hook_seen + 1 end, 'l') return 2"
            ) == [text("2")])
        #expect(try values(later) == [text("0")])
        // Within its own chunk a hook still works.
        #expect(
            try values("local n = 0 debug.sethook(function() n = n + 1 end, 'l')\nlocal a = 1\nlocal b = 2\ndebug.sethook() return n > 0")
                == [text("true")])
    }

    @Test("a call hook a chunk left on the main thread sees nothing of the next chunk: not its code, not its arguments")
    func mainThreadCallHook() throws {
        let text: (String) -> LuaValue = { .string(Array($0.utf8)) }
        // Before the evaluation's coroutine starts, the host calls C functions on the main thread
        // (the chunk cache, the arguments' decoding): a call or return hook there saw their values.
        let spy = """
            SPY = {}
            debug.sethook(debug.getregistry()[1], function(event)
              local i = 1
              while true do
                local name, value = debug.getlocal(2, i)
                if not name then break end
                if type(value) == 'string' or type(value) == 'function' then SPY[#SPY + 1] = event end
                i = i + 1
              end
            end, 'cr')
            return 1
            """
        #expect(try values(spy) == [text("1")])
        let evaluation = vm.evaluate(
            Array("local user, password = ... return #password".utf8), chunkName: "interactive.lua", rendering: .text,
            arguments: [text("root"), text("hunter2")])
        #expect(try evaluation.outcome.get() == [text("7")])
        #expect(try values("return #SPY") == [text("0")])
    }

    @Test("text rendering gives tostring of every type")
    func textRendering() throws {
        #expect(try values("return 42, 1.5, true, false, 'hi', 2^63") == [
            .string(Array("42".utf8)), .string(Array("1.5".utf8)), .string(Array("true".utf8)),
            .string(Array("false".utf8)), .string(Array("hi".utf8)), .string(Array("9.2233720368548e+18".utf8)),
        ])
        let table = try values("return {}")
        guard case .string(let bytes) = table[0] else { Issue.record("not a string"); return }
        #expect(String(decoding: bytes, as: UTF8.self).hasPrefix("table: 0x"))
        // Integers are written without a Lua string made for them: the same bytes as tostring.
        let integers = "return 0, 7, -1, 10, -10, 1234567890, math.maxinteger, math.mininteger, 3 // 1, 3 / 1"
        #expect(
            try values(integers).map { value -> String in
                guard case .string(let bytes) = value else { return "?" }
                return String(decoding: bytes, as: UTF8.self)
            } == [
                "0", "7", "-1", "10", "-10", "1234567890", "9223372036854775807", "-9223372036854775808", "3", "3.0",
            ])
    }

    @Test("a metatable for numbers (debug.setmetatable) is honoured in text rendering, as tostring does")
    func numberMetatable() throws {
        let text: (String) -> LuaValue = { .string(Array($0.utf8)) }
        #expect(
            try values("debug.setmetatable(0, {__tostring = function(n) return 'n=' .. n end}) return 5, 2.5")
                == [text("n=5"), text("n=2.5")])
        #expect(try values("debug.setmetatable(0, {__name = 'Number'}) return 5") == [text("5")])
        #expect(try values("debug.setmetatable(0, nil) return 5") == [text("5")])
    }

    @Test("text rendering honours __tostring and __name without calling the global tostring")
    func tostringSemantics() throws {
        let result = try values("""
            tostring = function() return "replaced" end
            local a = setmetatable({}, {__tostring = function() return "custom" end})
            local b = setmetatable({}, {__name = "Thing"})
            return a, b
            """)
        #expect(result[0] == .string(Array("custom".utf8)))
        guard case .string(let named) = result[1] else { Issue.record("not a string"); return }
        #expect(String(decoding: named, as: UTF8.self).hasPrefix("Thing: 0x"))
    }

    @Test("nothing and a single nil give no values worth printing; nil among others is kept")
    func nilRules() throws {
        #expect(try values("local x = 1") == [])
        #expect(try values("return nil") == [.nil])
        #expect(try values("return nil, 1") == [.nil, .string(Array("1".utf8))])
    }

    @Test("print and io.write are captured in order, byte-exact")
    func outputCapture() throws {
        let evaluation = run("print('a', 1, nil) io.write('b', 2) print() io.stdout:write('c') return 'r'")
        #expect(evaluation.output == Array("a\t1\tnil\nb2\nc".utf8))
        #expect(try evaluation.outcome.get() == [.string(Array("r".utf8))])
    }

    @Test("binary strings come back byte-exact")
    func binaryStrings() throws {
        var expected: [UInt8] = Array(0...255)
        expected.append(0)
        #expect(try values("local t = {} for i = 0, 255 do t[#t + 1] = string.char(i) end return table.concat(t) .. '\\0'")
            == [.string(expected)])
    }

    @Test("globals persist between evaluations; locals do not")
    func globalsPersist() throws {
        _ = run("local forgetful = 42 userdata = {} userdata.rememberMe = 42")
        #expect(try values("return forgetful") == [.nil])
        #expect(try values("return userdata.rememberMe") == [.string(Array("42".utf8))])
    }

    @Test("a syntax error is reported with the chunk name, and the state survives")
    func syntaxError() throws {
        _ = run("survivor = 'still here'")
        let evaluation = run("x x")
        #expect(evaluation.outcome == .failure(LuaFailure(kind: .syntax, message: "interactive.lua:1: syntax error near 'x'")))
        #expect(try values("return survivor") == [.string(Array("still here".utf8))])
    }

    @Test("a runtime error keeps the output so far and carries a traceback")
    func runtimeError() {
        let evaluation = run("print('before') local function f() error('boom') end f()")
        #expect(evaluation.output == Array("before\n".utf8))
        guard case .failure(let failure) = evaluation.outcome else { Issue.record("no failure"); return }
        #expect(failure.kind == .runtime)
        #expect(failure.message == "interactive.lua:1: boom")
        #expect(failure.traceback?.hasPrefix("stack traceback:\n") == true)
        #expect(failure.traceback?.contains("in local 'f'") == true)
    }

    @Test("error objects that are not strings are rendered via __tostring")
    func nonStringErrors() {
        let evaluation = run("error(setmetatable({}, {__tostring = function() return 'custom error' end}))")
        guard case .failure(let failure) = evaluation.outcome else { Issue.record("no failure"); return }
        #expect(failure.message == "custom error")
        let plain = run("error({})")
        guard case .failure(let other) = plain.outcome else { Issue.record("no failure"); return }
        #expect(other.message == "(error object is a table value)")
    }

    @Test("binary chunks are refused, also through load")
    func binaryChunksRefused() throws {
        let evaluation = vm.evaluate([0x1B] + Array("LuaT".utf8), chunkName: "interactive.lua", rendering: .text)
        #expect(evaluation.outcome == .failure(LuaFailure(
            kind: .syntax, message: "binary (precompiled) chunks are refused: send Lua source text")))
        #expect(try values("return load(string.dump(function() return 1 end))") == [
            .nil, .string(Array("attempt to load a binary chunk (mode is 't')".utf8)),
        ])
        #expect(try values("return load(string.dump(function() return 1 end), 'x', 'b')") == [
            .nil, .string(Array("binary (precompiled) chunks are refused: load Lua source text".utf8)),
        ])
        // A text chunk with mode 'b' fails as Lua fails it (SPEC E10).
        #expect(try values("return load('return 1', 'x', 'b')") == [
            .nil, .string(Array("attempt to load a text chunk (mode is 'b')".utf8)),
        ])
        #expect(try values("return load('return 7')()") == [.string(Array("7".utf8))])
        #expect(try values("local env = {y = 5} return load('return y', 'c', 't', env)()") == [.string(Array("5".utf8))])
    }

    @Test("xpcall keeps its semantics: handler sees the failing stack, results pass through, yields work")
    func xpcallSemantics() throws {
        let traced = try values("""
            local function failing() error('deep') end
            local ok, trace = xpcall(failing, function(e) return debug.traceback(e, 2) end)
            return ok, trace:find("in function 'error'", 1, true) ~= nil
            """)
        #expect(traced == [.string(Array("false".utf8)), .string(Array("true".utf8))])
        #expect(try values("return xpcall(function(a, b) return a + b, 'x' end, print, 1, 2)") == [
            .string(Array("true".utf8)), .string(Array("3".utf8)), .string(Array("x".utf8)),
        ])
        #expect(try values("""
            local co = coroutine.wrap(function() return xpcall(function() return coroutine.yield(1) + 1 end, print) end)
            local first = co()
            local ok, second = co(41)
            return first, ok, second
            """) == [.string(Array("1".utf8)), .string(Array("true".utf8)), .string(Array("42".utf8))])
    }

    // Finalizers run as lua5.4 runs them (SPEC E10): called by the collector itself on the
    // running thread, named "__gc" by debug.getinfo, with hooks off (GCTM clears `allowhook`);
    // the stop reaches them by turning hooks back on (docs/limits.md, EscapeTests).
    @Test("finalizers run as in lua5.4: named __gc, on the collecting thread, hooks off")
    func finalizers() throws {
        #expect(try values("""
            local chunk = coroutine.running()
            finalized = nil
            setmetatable({}, {__gc = function(o)
                local counted = 0
                debug.sethook(function() counted = counted + 1 end, '', 1)
                for _ = 1, 10 do end
                debug.sethook()
                local info = debug.getinfo(1, 'n')
                finalized = {type(o), info.namewhat .. ' ' .. info.name, coroutine.running() == chunk, counted}
            end})
            collectgarbage() collectgarbage()
            if not finalized then return 'not run' end
            return table.unpack(finalized)
            """) == [
                .string(Array("table".utf8)), .string(Array("metamethod __gc".utf8)), .string(Array("true".utf8)),
                .string(Array("0".utf8)),
            ])
    }

    @Test("os.exit raises an error instead of ending the daemon")
    func osExitRefused() {
        guard case .failure(let failure) = run("os.exit(1)").outcome else { Issue.record("no failure"); return }
        #expect(failure.message.contains("os.exit is disabled"))
    }

    @Test("reading standard input returns at once")
    func stdinIsEmpty() throws {
        #expect(try values("return io.read('l'), io.read('a')") == [.nil, .string([])])
    }

    @Test("collectgarbage('stop') does not outlive the request")
    func garbageCollectorRestarts() throws {
        _ = run("collectgarbage('stop')")
        #expect(try values("return collectgarbage('isrunning')") == [.string(Array("true".utf8))])
    }

    @Test("tree rendering keeps types, arrays, objects, cycles and depth")
    func treeRendering() throws {
        let result = try values(
            """
            local cyclic = {} cyclic.self = cyclic
            local deep = {} local t = deep for i = 1, 40 do t.next = {} t = t.next end
            return nil, 3, 2.5, 'x', {1, 2, 3}, {a = 1}, cyclic, print, {}, deep
            """, .tree)
        #expect(Array(result[0..<6]) == [
            .nil, .integer(3), .number(2.5), .string(Array("x".utf8)),
            .array([.integer(1), .integer(2), .integer(3)]),
            .object([.init(key: Array("a".utf8), value: .integer(1))]),
        ])
        #expect(result[6] == .object([.init(key: Array("self".utf8), value: .cycle)]))
        guard case .opaque(let function) = result[7] else { Issue.record("not opaque"); return }
        #expect(function.hasPrefix("builtin: 0x") || function.hasPrefix("function: "))
        #expect(result[8] == .object([]))
        var level = result[9]
        var depth = 0
        while case .object(let fields) = level, let next = fields.first?.value {
            level = next
            depth += 1
        }
        #expect(level == .tooDeep)
        #expect(depth == 33)
    }

    @Test("a tree of results holds at most 2^20 values, a shared table counted each time it is referred to")
    func treeValueLimit() throws {
        // 2,000 references to one table of 1,000: two million values, ~2 MB encoded, which the
        // host would have decoded into gigabytes.
        func shared(_ count: Int) -> String {
            "local e = {} for i = 1, 1000 do e[i] = true end local t = {} for i = 1, \(count) do t[i] = e end return t"
        }
        let evaluation = run(shared(2000), .tree)
        guard case .failure(let failure) = evaluation.outcome else { Issue.record("no failure"); return }
        #expect(failure.kind == .memory)
        #expect(
            failure.message
                == "the results hold more than 1048576 values (a table is counted each time it is referred to): return less, or fetch it in parts"
        )
        // Within the limit (500,501 values), and the state goes on.
        guard case .array(let rows) = try values(shared(500), .tree).first else {
            Issue.record("not an array")
            return
        }
        #expect(rows.count == 500 && rows[499] == LuaValue.array(Array(repeating: LuaValue.boolean(true), count: 1000)))
        // A map's keys count too: 600,000 pairs are 1,200,001 values.
        let map = run("local t = {} for i = 1, 600000 do t['k' .. i] = i end return t", .tree)
        guard case .failure(let mapFailure) = map.outcome else { Issue.record("no failure"); return }
        #expect(mapFailure.kind == .memory && mapFailure.message.hasPrefix("the results hold more than 1048576 values"))
        #expect(try values("return 1") == [.string(Array("1".utf8))])
    }

    @Test("an error converting results is a runtime error, and the stack stays balanced")
    func renderError() throws {
        let evaluation = run("return setmetatable({}, {__tostring = function() error('no text') end})")
        guard case .failure(let failure) = evaluation.outcome else { Issue.record("no failure"); return }
        #expect(failure.kind == .runtime)
        #expect(failure.message.contains("no text"))
        #expect(try values("return 1") == [.string(Array("1".utf8))])
    }

    @Test("init scripts run in name order and a failing one does not stop the others")
    func initScripts() throws {
        let directory = "/tmp/luaexec-init-\(UInt32.random(in: 0...UInt32.max))"
        try FileFixture.write(directory + "/20-second.lua", "order = order .. 'b'")
        try FileFixture.write(directory + "/10-first.lua", "order = 'a'")
        try FileFixture.write(directory + "/15-broken.lua", "error('broken on purpose')")
        try FileFixture.write(directory + "/notes.txt", "order = 'ignored'")
        defer { FileFixture.remove(directory) }
        let reports = vm.runInitScripts(in: directory, logger: .init(label: "test"))
        #expect(reports.map { $0.path.split(separator: "/").last! } == ["10-first.lua", "15-broken.lua", "20-second.lua"])
        #expect(reports[1].failure?.message.contains("broken on purpose") == true)
        #expect(try values("return order") == [.string(Array("ab".utf8))])
    }

    @Test("config changes an init script makes run no callbacks; a chunk's do, once")
    func initScriptsRunNoCallbacks() throws {
        let directory = "/tmp/luaexec-init-\(UInt32.random(in: 0...UInt32.max))"
        try FileFixture.write(directory + "/10-register.lua", "fired = 0 config.register('p', function() fired = fired + 1 end)")
        try FileFixture.write(directory + "/20-set.lua", "config.set('p', 1)")
        defer { FileFixture.remove(directory) }
        let reports = vm.runInitScripts(in: directory, logger: .init(label: "test"))
        #expect(reports.allSatisfy { $0.failure == nil })
        #expect(try values("return fired, config.get('p')") == [.string([48]), .string([49])])
        _ = try values("config.set('p', 2)")
        #expect(try values("return fired") == [.string([49])])
    }
}

@Suite("LuaVM profiles and limits")
struct LuaVMProfileTests {
    func text(_ vm: LuaVM, _ chunk: String) throws -> String {
        let values = try vm.evaluate(Array(chunk.utf8), chunkName: "interactive.lua", rendering: .text).outcome.get()
        return values.map { value in
            guard case .string(let bytes) = value else { return "?" }
            return String(decoding: bytes, as: UTF8.self)
        }.joined(separator: "\t")
    }

    @Test("the restricted profile takes files, processes, the environment, the locale, modules and debug away")
    func restricted() throws {
        let vm = try LuaVM()
        _ = try text(vm, "local io = io; function readable() return io.open('/proc/self/stat') ~= nil end")
        try vm.restrict()
        #expect(try text(vm, "return io == nil, os.execute == nil, package == nil, require == nil, debug == nil")
            == "true\ttrue\ttrue\ttrue\ttrue")
        #expect(try text(vm, "return dofile == nil, loadfile == nil") == "true\ttrue")
        // Files (tmpname makes one), the daemon's environment, the process-wide locale.
        #expect(
            try text(vm, "return os.remove == nil, os.rename == nil, os.tmpname == nil, os.getenv == nil, os.setlocale == nil")
                == "true\ttrue\ttrue\ttrue\ttrue")
        var names: [String] = []
        for name in ["time", "clock", "date", "difftime", "exit"] {
            names.append(try text(vm, "return type(os.\(name))"))
        }
        #expect(names == ["function", "function", "function", "function", "function"])
        #expect(try text(vm, "return os.date('!%Y', 0), os.difftime(2, 1)") == "1970\t1.0")
        #expect(try text(vm, "return type(os.time), type(load), type(string.rep), type(print)")
            == "function\tfunction\tfunction\tfunction")
        // What an init script captured before the restriction keeps working.
        #expect(try text(vm, "return readable()") == "true")
    }

    @Test("a lowered memory cap applies to the next evaluation, a raised one lets it grow")
    func memoryCapChanges() throws {
        let vm = try LuaVM(limits: .init(memory: 64 << 20))
        #expect(try text(vm, "return #string.rep('x', 16 << 20)") == "16777216")
        vm.limits.memory = 8 << 20
        let refused = vm.evaluate(Array("return #string.rep('x', 16 << 20)".utf8), chunkName: "interactive.lua", rendering: .text)
        guard case .failure(let failure) = refused.outcome else { Issue.record("not refused"); return }
        #expect(failure.kind == .memory)
        vm.limits.memory = 64 << 20
        #expect(try text(vm, "return #string.rep('x', 16 << 20)") == "16777216")
    }
}
