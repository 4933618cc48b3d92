import Testing

@testable import LuaRuntime

/// `sleep` against the room the executor leaves among the waiting evaluations
/// (`LuaVM.waitRoom`: `limits.wait_capacity`, and the output they may hold together).
@Suite("sleep: the room among the waiting evaluations")
struct WaitRoomTests {
    func evaluate(_ chunk: String, room: LuaVM.WaitRoom) throws -> (LuaVM, Evaluation) {
        let vm = try LuaVM()
        vm.maxWaitSeconds = 5
        vm.waitRoom = room
        return (vm, vm.evaluate(Array(chunk.utf8), chunkName: "interactive.lua", rendering: .text))
    }

    @Test("with room, sleep suspends and holds what the chunk printed")
    func room() throws {
        let (vm, evaluation) = try evaluate("print('hello world') sleep(0) return 1", room: .init(waits: 1, outputBytes: 12))
        let suspension = try #require(evaluation.suspension)
        #expect(suspension.outputUsed == 12)
        vm.abandon(suspension)
    }

    @Test("a chunk ended while it sleeps closes its variables as itself, not as whatever ran last")
    func abandonedAsItself() throws {
        let vm = try LuaVM()
        vm.maxWaitSeconds = 5
        vm.maxRegistrations = 1
        vm.caller = .request(token: "ops")
        let chunk = "local x <close> = setmetatable({}, {__close = function() http.listen('closing', print) end}) sleep(1)"
        let evaluation = vm.evaluate(Array(chunk.utf8), chunkName: "interactive.lua", rendering: .text)
        let suspension = try #require(evaluation.suspension)
        // The box's own script ran meanwhile and holds its one name.
        vm.caller = .storedScript(name: "door.lua", version: 1)
        _ = vm.evaluate(Array("http.listen('door', print)".utf8), chunkName: "door.lua", rendering: .text)
        vm.abandon(suspension)
        // The name counts with the request's token (room there), named as the token's.
        #expect(vm.registry.entry(.endpoint, "closing")?.origin == .token("ops"))
        #expect(vm.registry.entry(.endpoint, "door")?.origin.storedScriptName == "door.lua")
    }

    @Test("no place left: a Lua error that names the limit, and nothing waits")
    func noPlace() throws {
        let (_, evaluation) = try evaluate("print('a') sleep(0) return 1", room: .init(waits: 0, outputBytes: 1 << 20))
        #expect(evaluation.suspension == nil)
        guard case .failure(let failure) = evaluation.outcome else {
            Issue.record("sleep waited with no room")
            return
        }
        #expect(failure.kind == .runtime)
        #expect(
            failure.message
                == "interactive.lua:1: sleep cannot wait now: as many requests as limits.wait_capacity allows wait in sleep already "
                + "(try again later, or wait in fewer)")
        #expect(evaluation.output == Array("a\n".utf8))
    }

    @Test("output past what the waiting may hold together: a Lua error with both figures")
    func outputRoom() throws {
        let (_, evaluation) = try evaluate("print('hello world') sleep(0) return 1", room: .init(waits: 9, outputBytes: 11))
        #expect(evaluation.suspension == nil)
        guard case .failure(let failure) = evaluation.outcome else {
            Issue.record("sleep waited past the output room")
            return
        }
        #expect(
            failure.message
                == "interactive.lua:1: sleep cannot wait now: with this chunk's output so far (12 bytes) and its request, the "
                + "requests waiting in sleep would hold more than they may together (64 MiB of output and request "
                + "bodies): print less before sleep, or try again later")
    }

    @Test("no room at all (the waiting ones and this request's body take it): even a chunk that printed nothing cannot wait")
    func noRoomAtAll() throws {
        let (_, evaluation) = try evaluate("sleep(0) return 1", room: .init(waits: 9, outputBytes: -1))
        #expect(evaluation.suspension == nil)
        guard case .failure(let failure) = evaluation.outcome else {
            Issue.record("sleep waited with no room")
            return
        }
        #expect(failure.message.contains("with this chunk's output so far (0 bytes) and its request"))
        let (vm, fits) = try evaluate("sleep(0) return 1", room: .init(waits: 9, outputBytes: 0))
        let suspension = try #require(fits.suspension)
        vm.abandon(suspension)
    }
}
