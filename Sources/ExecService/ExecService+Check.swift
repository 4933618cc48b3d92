import HTTPCore
import LuaRuntime

/// SPEC E12: `Lua-Check: syntax` compiles the chunk and answers without running it.
extension ExecService {
    /// The `Lua-Check` header's one value.
    static let syntaxCheck = "syntax"

    /// The answer to a `Lua-Check` request: 200 with no results (text: an empty body; JSON:
    /// E5's object with `"results":[]`), or E6's 400 `syntax`. Answered on the transport's
    /// thread, never queued for the state: `LuaSyntax` compiles in a state of its own, so a
    /// check answers while the resident state runs a long chunk. Compiling is linear in the
    /// chunk, which `exec.max_body` bounds, so later requests wait for it no longer than for
    /// reading that body.
    func check(_ mode: String, chunk: [UInt8], chunkName: String, json: Bool, audit: inout AuditRecord) -> Response {
        guard mode.lowercased() == Self.syntaxCheck else {
            return Self.plain(
                400, "the Lua-Check header takes one value, syntax (compile only, run nothing)\n", json: json)
        }
        let (response, error) = Self.render(LuaSyntax.check(chunk, chunkName: chunkName), json: json)
        audit.errorKind = error?.rawValue
        return response
    }
}
