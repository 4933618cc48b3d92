import Testing

@testable import LuaRuntime

/// CLuaSupport's inspect.c through `LuaVM` (SPEC O10): raw reads that run nothing of the state
/// and leave its stack as they found it (LuaVM asserts it).
@Suite("LuaVM completion and inspection")
struct InspectTests {
    let vm = try! LuaVM()

    func run(_ chunk: String) throws {
        _ = try vm.evaluate(Array(chunk.utf8), chunkName: "=t", rendering: .text).outcome.get()
    }

    func field(_ value: LuaValue, _ key: String) -> LuaValue? {
        guard case .object(let fields) = value else { return nil }
        return fields.first { $0.key == Array(key.utf8) }?.value
    }

    func names(_ value: LuaValue) -> [String] {
        guard case .array(let items)? = field(value, "candidates") ?? field(value, "globals") else { return [] }
        return items.compactMap { item in
            guard case .array(let pair) = item, case .string(let name) = pair[0] else { return nil }
            return String(decoding: name, as: UTF8.self)
        }.sorted()
    }

    @Test("fields through __index tables, not through an __index function, which never runs")
    func rawWalk() throws {
        try run(
            """
            base = {greet = function() end, n = 1}
            obj = setmetatable({own = true}, {__index = base})
            trap = setmetatable({}, {__index = function() ran = true return {x = 1} end,
              __pairs = function() ran = true return next, {} end})
            """)
        #expect(names(try vm.complete(path: ["obj"], word: "", methods: false).get()) == ["greet", "n", "own"])
        #expect(names(try vm.complete(path: ["obj"], word: "", methods: true).get()) == ["greet"])
        #expect(names(try vm.complete(path: ["trap"], word: "", methods: false).get()) == [])
        #expect(names(try vm.complete(path: ["trap", "a"], word: "", methods: false).get()) == [])
        #expect(field(try vm.inspect(path: ["trap", "x"]).get(), "type") == LuaValue.string("nil"))
        #expect(try vm.evaluate(Array("return ran".utf8), chunkName: "=t", rendering: .text).outcome.get() == [.nil])
    }

    @Test("a Lua function's parameters and source; a C function's kind")
    func functions() throws {
        try run("function add(a, b, ...) return a + b end")
        let add = try vm.inspect(path: ["add"]).get()
        #expect(field(add, "params") == LuaValue.array([.string("a"), .string("b")]))
        #expect(field(add, "vararg") == LuaValue.boolean(true))
        #expect(field(add, "source") == LuaValue.string("t"))
        #expect(field(add, "what") == LuaValue.string("Lua"))
        let format = try vm.inspect(path: ["string", "format"]).get()
        #expect(field(format, "what") == LuaValue.string("C"))
        #expect(field(format, "params") == nil)
    }

    @Test("the own globals: made after the state, or changed since")
    func ownGlobals() throws {
        #expect(names(try vm.ownGlobals().get()) == [])
        try run("mine = 1; print = print; tostring = function() end")
        #expect(names(try vm.ownGlobals().get()) == ["mine", "tostring"])
    }

    @Test("bounded: a table of 200,000 keys is counted to 100,000 and says so")
    func bounded() throws {
        try run("big = {} for i = 1, 200000 do big[i] = i end")
        let big = try vm.inspect(path: ["big"]).get()
        #expect(field(big, "keys") == LuaValue.integer(100_000))
        #expect(field(big, "keys_exact") == LuaValue.boolean(false))
        #expect(field(big, "length") == LuaValue.integer(200_000))
        #expect(
            field(try vm.complete(path: ["big"], word: "", methods: false).get(), "truncated") == LuaValue.boolean(true)
        )
    }
}
