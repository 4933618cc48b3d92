import HTTPCore
import LuaRuntime

/// SPEC E12: `Lua-Check: syntax` compiles the chunk and answers without running it.
extension ExecService {
    /// The `Lua-Check` header's one value.
    static let syntaxCheck = "syntax"

    /// `Lua-Check` where there is no chunk to compile (an endpoint, an action): refused, since
    /// the client means a dry run and the handler would run.
    static func nothingToCheck(_ what: String, json: Bool) -> Response {
        plain(
            400,
            "Lua-Check compiles a chunk sent to /api/v1/exec/interactive.lua; \(what) has none to compile: nothing ran\n",
            json: json)
    }

    /// The answer to a `Lua-Check` request: 200 with no results (text: an empty body; JSON:
    /// E5's object with `"results":[]`), E6's 400 `syntax`, or 504 `timeout`. Answered on the
    /// transport's thread, never queued for the state: `LuaSyntax` compiles in a state of its
    /// own, so a check answers while the resident state runs a long chunk. Made after the
    /// request is handed over (`Reply.later`), since compiling is not always quick: Lua's parser
    /// is quadratic in a long `a or a or ...` (500 KB compiled for 14 s), so a check compiles
    /// for `limits.time` at most, and the requests behind it are handed over meanwhile. One
    /// compile at a time (`maxCompiles`): another check meanwhile is 503 busy with `Retry-After`.
    func check(_ mode: String, chunk: [UInt8], chunkName: String, json: Bool, audit: inout AuditRecord) -> Response {
        guard mode.lowercased() == Self.syntaxCheck else {
            return Self.plain(
                400, "the Lua-Check header takes one value, syntax (compile only, run nothing)\n", json: json)
        }
        guard compiling.add(1, ordering: .acquiring).newValue <= Self.maxCompiles else {
            compiling.subtract(1, ordering: .releasing)
            audit.errorKind = "busy"
            return busy(json: json, message: "luaexecd is compiling another check; retry in a moment\n")
        }
        defer { compiling.subtract(1, ordering: .releasing) }
        let (response, error) = Self.render(
            LuaSyntax.check(chunk, chunkName: chunkName, timeLimit: executor.options.timeLimit), json: json)
        audit.errorKind = error?.rawValue
        return response
    }
}
