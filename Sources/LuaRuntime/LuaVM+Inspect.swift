import CLua
import CLuaSupport

/// Completion and inspection of the live state for a console (SPEC O10; CLuaSupport's
/// inspect.c). Each reads the state raw, runs nothing of it (no metamethod, finalizer or
/// function) and changes nothing a chunk can see; none is an evaluation. A name path is Lua
/// names, each checked by the caller (`[]`: the globals table).
extension LuaVM {
    /// The fields of the value `path` names, and of the tables its `__index` chain reaches,
    /// whose names start with `word` (only functions when `methods`, after `:`):
    /// `{candidates = {{name, type}, ...}, truncated = bool}`, in table order, duplicates kept.
    public func complete(path: [String], word: String, methods: Bool) -> Result<LuaValue, LuaFailure> {
        let joined = path.joined(separator: ".")
        return look { runtime in
            joined.withCString { pathChars in
                word.withCString { wordChars in
                    lx_complete(runtime, pathChars, joined.utf8.count, wordChars, word.utf8.count, methods ? 1 : 0)
                }
            }
        }
    }

    /// What the value `path` names is: `{type, value, ...}`: a function's `params`, `vararg`,
    /// `source` and `line`, a table's `length`, `keys` and `preview`, a string's `length`.
    public func inspect(path: [String]) -> Result<LuaValue, LuaFailure> {
        let joined = path.joined(separator: ".")
        return look { runtime in joined.withCString { lx_inspect(runtime, $0, joined.utf8.count) } }
    }

    /// The globals a fresh state does not have, or holds another value under:
    /// `{globals = {{name, type}, ...}, truncated = bool}`.
    public func ownGlobals() -> Result<LuaValue, LuaFailure> {
        look { lx_own_globals($0) }
    }

    private func look(_ call: (OpaquePointer) -> Int32) -> Result<LuaValue, LuaFailure> {
        assert(lua_gettop(state) == 0, "a request must start with an empty Lua stack")
        defer { assert(lua_gettop(state) == 0, "a request must end with an empty Lua stack") }
        defer { lx_trim_buffers(runtime) }
        let status = call(runtime)
        guard status == Int32(LX_OK.rawValue) else {
            if status == Int32(LX_ERR_MEMORY.rawValue) {
                return .failure(
                    LuaFailure(
                        kind: .memory,
                        message: "not enough memory to read the state: its limit is \(limits.memory) bytes"))
            }
            return .failure(LuaFailure(kind: .runtime, message: String(decoding: bytes(lx_error), as: UTF8.self)))
        }
        var length = 0
        let pointer = lx_result(runtime, &length)
        return .success(LuaValue.decodeList(UnsafeRawBufferPointer(start: pointer, count: length)).first ?? .nil)
    }
}
