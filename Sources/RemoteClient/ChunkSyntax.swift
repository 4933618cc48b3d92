#if canImport(Glibc)
import Glibc
#endif
import CLua

/// Whether a line typed into `luaexec repl` is a whole chunk, decided as `lua5.4` decides it:
/// by compiling it with the local liblua and looking for the `<eof>` syntax error of a chunk
/// that needs more lines. Nothing runs here; only the server runs chunks.
public final class ChunkSyntax {
    public enum Verdict: Equatable, Sendable { case complete, incomplete, invalid }

    private let state: OpaquePointer

    public init() { state = luaL_newstate() }
    deinit { lua_close(state) }

    public func check(_ text: String) -> Verdict {
        let length = text.utf8.count
        let status = text.withCString { luaL_loadbufferx(state, $0, length, "=stdin", "t") }
        defer { lua_settop(state, 0) }
        if status == LUA_OK { return .complete }
        guard status == LUA_ERRSYNTAX, let message = clua_tostring(state, -1) else { return .invalid }
        return String(cString: message).hasSuffix("<eof>") ? .incomplete : .invalid
    }
}
