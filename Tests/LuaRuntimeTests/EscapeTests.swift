import Logging
import Synchronization
import Testing

@testable import LuaRuntime

/// The corpus of chunks that try to outrun the stop (issue 24, SPEC L1–L3): each ends within its
/// limits, the same state answers the next chunk, and the state keeps its globals. Lua runs no
/// hook inside finalizers, hook functions and the handlers of a hook's error; luaexec reaches
/// them anyway (CLuaSupport/stop.c, "Where Lua turns hooks off"). Add every new escape here.
@Suite("Escapes: no chunk outruns its time limit or an interrupt")
struct EscapeTests {
    static func executor(timeLimit: Duration = .milliseconds(200), memory: Int = 64 << 20) throws -> LuaExecutor {
        try LuaExecutor(options: .init(timeLimit: timeLimit, queueTimeout: .seconds(60)), logger: Logger(label: "test")) {
            try LuaVM(limits: .init(memory: memory))
        }
    }

    static let loop = "function() while true do end end"

    /// Runs `chunk`, which hides a long C call: it must end as a timeout, at its limit rather
    /// than once the C call returned by itself (tens of seconds: 25 times the limit is room for a
    /// busy machine), and the state must answer the next chunk.
    static func expectTimeout(
        _ executor: LuaExecutor, _ chunk: String, sourceLocation: SourceLocation = #_sourceLocation
    ) throws {
        let evaluation = try LuaExecutorTests.eval(executor, chunk)
        guard case .failure(let failure) = evaluation.outcome else {
            Issue.record("the chunk completed", sourceLocation: sourceLocation)
            return
        }
        #expect(failure.kind == .timeout, "\(failure.message)", sourceLocation: sourceLocation)
        #expect(
            evaluation.elapsedNanoseconds < 5_000_000_000, "ended after \(evaluation.elapsedNanoseconds / 1_000_000) ms",
            sourceLocation: sourceLocation)
        #expect(
            try LuaExecutorTests.eval(executor, "return 1+1").outcome.get() == [.string(Array("2".utf8))],
            sourceLocation: sourceLocation)
    }

    @Test(
        "a chunk that hides a loop where Lua runs no hook ends as timeout, and the state answers after it",
        arguments: [
            // Finalizers: Lua's own __gc call clears allowhook.
            "setmetatable({}, {__gc = \(loop)}) collectgarbage()",
            // A __gc assigned after setmetatable is not wrapped by luaexec's setmetatable.
            "local mt = {__gc = true} setmetatable({}, mt) mt.__gc = \(loop) collectgarbage()",
            // A C function as the finalizer, calling a looping __call.
            "setmetatable({}, {__gc = pcall, __call = \(loop)}) collectgarbage()",
            "local mt = {__gc = true} setmetatable({}, mt) mt.__gc = pcall mt.__call = \(loop) collectgarbage()",
            // Resurrection: the finalizer keeps its object and marks it for finalization again.
            "local mt = {} mt.__gc = function(o) kept = o setmetatable(o, mt) while true do end end setmetatable({}, mt) collectgarbage()",
            // A finalizer that collects, and one that errs, then the chunk loops.
            "setmetatable({}, {__gc = function() while true do collectgarbage() end end}) collectgarbage()",
            "setmetatable({}, {__gc = function() error('boom') end}) collectgarbage() while true do end",
            // A finalizer run by the collector in the middle of allocation, not by collectgarbage.
            "local mt = {__gc = true} setmetatable({}, mt) mt.__gc = \(loop) local t = {} for i = 1, 1e8 do t[i % 1000] = {} end",
            // __close handlers of a coroutine closed from outside it, and of one that failed in wrap.
            "local co = coroutine.create(function() local x <close> = setmetatable({}, {__close = \(loop)}) coroutine.yield() end) "
                + "coroutine.resume(co) coroutine.close(co)",
            "coroutine.wrap(function() local x <close> = setmetatable({}, {__close = \(loop)}) error('x') end)()",
            "local x <close> = setmetatable({}, {__close = \(loop)}) error('x')",
            // A hook function that never returns, and an error handler of a hook's error.
            "debug.sethook(\(loop), '', 1) local x = 1",
            "debug.sethook(function() debug.sethook(\(loop), 'l') end, '', 1)\nlocal x = 1\nlocal y = 2",
            "while true do xpcall(\(loop), \(loop)) end",
            "error(setmetatable({}, {__tostring = \(loop)}))",
            // Library functions that call back into Lua.
            "local t = {} for i = 1, 100 do t[i] = i end table.sort(t, function(a, b) while true do end end)",
            "local t = {} for i = 1, 1e5 do t[i] = 'x' end while true do local s = table.concat(t) end",
            "while true do local s = string.rep('x', 1e6) end",
            "while true do load(string.rep('x = 1 ', 1e5)) end",
            "string.rep('x', 1 << 20):gsub('.', function() while true do end end)",
            // Library functions that loop in C as long as they are asked, allocating nothing.
            "table.move({}, 1, 1e12, 2)",
            "table.insert(setmetatable({}, {__len = function() return 1e12 end}), 1, 'x')",
            "table.remove(setmetatable({}, {__len = function() return 1e12 end}), 1)",
            "table.concat(setmetatable({}, {__index = table.concat}), '', 1, 1e12)",
            "table.sort(setmetatable({}, {__len = function() return 2^31 - 2 end, __index = rawlen, __newindex = rawequal}), math.ult)",
            "local s = ('a'):rep(2e6) local p = ('a'):rep(1e6) .. 'b' return s:find(p, 1, true)",
            "local s = ('a'):rep(2e6) local p = ('a'):rep(1e6) .. 'b' return s:find(p)",
            "while true do local s = string.rep('', 1e15) end",
            // Compiling: Lua's parser is quadratic in a long `or` chain, and no hook runs in it.
            "local s = 'return a' .. string.rep(' or a', 150000) local f = load(s) return 1",
            "local s = 'return a' .. string.rep(' or a', 150000) local once = s "
                + "local f = load(function() local piece = once once = nil return piece end) return 1",
        ])
    func timeout(chunk: String) throws {
        let executor = try Self.executor()
        _ = try LuaExecutorTests.eval(executor, "survivor = 'here'")
        let evaluation = try LuaExecutorTests.eval(executor, chunk)
        guard case .failure(let failure) = evaluation.outcome else {
            Issue.record("the chunk completed")
            return
        }
        #expect(failure.kind == .timeout, "\(failure.message)")
        // Ended at its limit, not once the C call it hid in returned by itself (a compile or a
        // library loop that ends after tens of seconds also ends as a timeout): 25 times the
        // limit is room for a busy machine, and a tenth of what such a call takes.
        #expect(evaluation.elapsedNanoseconds < 5_000_000_000, "ended after \(evaluation.elapsedNanoseconds / 1_000_000) ms")
        // The next chunk is served, in full, within its own limit: nothing the stopped chunk
        // left behind runs in it.
        #expect(
            try LuaExecutorTests.eval(executor, "collectgarbage() collectgarbage() return survivor").outcome.get()
                == [.string(Array("here".utf8))])
    }

    @Test("a chunk whose compiling takes minutes (a long `or` chain) ends at its time limit, as a timeout")
    func slowCompile() throws {
        try Self.expectTimeout(try Self.executor(), "return a" + String(repeating: " or a", count: 150_000))
    }

    @Test(
        "compiling a file the chunk wrote (loadfile, dofile, require) ends at the time limit, as a timeout",
        arguments: [
            "loadfile(path)",
            "dofile(path)",
            "package.path = dir .. '/?.lua' require('huge')",
        ])
    func slowCompileOfAFile(load: String) throws {
        let dir = try FileFixture.temporaryDirectory("luaexec-escape")
        defer { FileFixture.remove(dir) }
        // The compile of this file alone takes tens of seconds.
        try Self.expectTimeout(
            try Self.executor(),
            "local dir = '\(dir)' local path = dir .. '/huge.lua' "
                + "local f = assert(io.open(path, 'w')) f:write('return a', string.rep(' or a', 150000)) f:close() "
                + "\(load) return 1")
    }

    @Test("os.date of tens of millions of conversions ends at the time limit, within the default memory cap")
    func longDateFormat() throws {
        // 100 MB of format and 50 MB of answer: within limits.memory's default of 256 MiB, and
        // 6 s in liblua's os.date, one C call.
        // The time limit leaves room for building the format (string.rep, at -O0 in a debug build).
        try Self.expectTimeout(
            try Self.executor(timeLimit: .milliseconds(1500), memory: 256 << 20),
            "local f = ('%%'):rep(5e7) local s = os.date(f) return #s")
    }

    @Test("a looping call hook left on the main thread does not run in the next chunk")
    func mainThreadHook() throws {
        let executor = try Self.executor()
        // The hook fires in the host's own calls on the main thread: once as this chunk's results
        // are encoded, then (it loops from its second call on) in the next chunk's set-up.
        let armed = try LuaExecutorTests.eval(
            executor, "local calls = 0 debug.sethook(debug.getregistry()[1], function() calls = calls + 1 if calls > 1 then while true do end end end, 'c') return 1")
        #expect(try armed.outcome.get() == [.string(Array("1".utf8))])
        #expect(try LuaExecutorTests.eval(executor, "return 1+1").outcome.get() == [.string(Array("2".utf8))])
    }

    @Test("five thousand looping finalizers left behind end with their chunk, not one watchdog tick each")
    func finalizerPileUp() throws {
        let executor = try Self.executor()
        let evaluation = try LuaExecutorTests.eval(
            executor,
            "local mt = {__gc = true} for i = 1, 5000 do setmetatable({}, mt) end mt.__gc = \(Self.loop) collectgarbage()")
        guard case .failure(let failure) = evaluation.outcome else { Issue.record("completed"); return }
        #expect(failure.kind == .timeout)
        #expect(try LuaExecutorTests.eval(executor, "collectgarbage() return 7").outcome.get() == [.string([55])])
    }

    @Test("an administrator's interrupt ends a looping finalizer and a looping hook function")
    func interrupt() throws {
        for chunk in [
            "local mt = {__gc = true} setmetatable({}, mt) mt.__gc = pcall mt.__call = \(Self.loop) collectgarbage()",
            "debug.sethook(\(Self.loop), '', 1) local x = 1",
        ] {
            let executor = try Self.executor(timeLimit: .seconds(600))
            Thread.detach { while !executor.interruptRunning() {} }
            let evaluation = try LuaExecutorTests.eval(executor, chunk)
            guard case .failure(let failure) = evaluation.outcome else { Issue.record("completed"); continue }
            #expect(failure.kind == .interrupted)
            #expect(try LuaExecutorTests.eval(executor, "return 2").outcome.get() == [.string([50])])
        }
    }

    @Test("a reset closes a state whose objects have looping finalizers, and the new state serves")
    func resetWithLoopingFinalizers() throws {
        let executor = try Self.executor()
        _ = try LuaExecutorTests.eval(
            executor,
            "local mt = {__gc = true} keep = {} for i = 1, 100 do keep[i] = setmetatable({}, mt) end "
                + "mt.__gc = \(Self.loop) "
                + "local co = coroutine.create(function() local x <close> = setmetatable({}, {__close = \(Self.loop)}) coroutine.yield() end) "
                + "coroutine.resume(co) kept_co = co")
        try Thread.onLargeStack { Result { try executor.reset() } }.get()
        #expect(try LuaExecutorTests.eval(executor, "return keep, 3").outcome.get() == [.nil, .string([51])])
    }

    @Test("what a stopped chunk changed in persisted before the stop is saved, and the answer stays 'timeout'")
    func stoppedChunkSaves() throws {
        final class Saved: Sendable {
            let keys = Mutex<[[UInt8]]>([])
        }
        let saved = Saved()
        let executor = try LuaExecutor(
            options: .init(timeLimit: .milliseconds(200), queueTimeout: .seconds(60)), logger: Logger(label: "test")
        ) {
            let vm = try LuaVM(limits: .init(memory: 64 << 20))
            vm.changeSink = { changes in saved.keys.withLock { $0 += changes.persisted.map(\.key) } }
            return vm
        }
        let evaluation = try LuaExecutorTests.eval(executor, "persisted.z = 1 while true do end")
        guard case .failure(let failure) = evaluation.outcome else { Issue.record("completed"); return }
        #expect(failure.kind == .timeout, "\(failure.message)")
        #expect(saved.keys.withLock { $0 } == [LuaValue.encodeValue(.string([UInt8(ascii: "z")]))])
    }

    @Test("coroutine.close keeps the answers of lua5.4 (5.4.4)")
    func coroutineClose() throws {
        let vm = try LuaVM()
        let chunk = """
            local co = coroutine.create(function() local x <close> = setmetatable({}, {__close = function() error('in close') end}) coroutine.yield() end)
            coroutine.resume(co)
            local a, b = coroutine.close(co)
            local dead = coroutine.create(function() end) coroutine.resume(dead)
            local ok, running = pcall(coroutine.close, coroutine.running())
            local bad = select(2, pcall(coroutine.close, 1))
            return a, b, coroutine.close(dead), ok, running, bad, coroutine.status(co)
            """
        let result = vm.evaluate(Array(chunk.utf8), chunkName: "t.lua", rendering: .text)
        let text = try result.outcome.get().map { if case .string(let s) = $0 { String(decoding: s, as: UTF8.self) } else { "nil" } }
        #expect(text == [
            "false", "t.lua:1: in close", "true", "false", "cannot close a running coroutine",
            "bad argument #1 to 'coroutine.close' (thread expected, got number)", "dead",
        ])
    }
}
