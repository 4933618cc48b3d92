import HTTPCore
import LuaRuntime
import Synchronization

/// SPEC E12: `Lua-Check: syntax` compiles the chunk and answers without running it.
extension ExecService {
    /// The `Lua-Check` header's one value.
    static let syntaxCheck = "syntax"

    /// The refusal of a request that says `Lua-Check` where there is nothing to compile only (an
    /// endpoint, an action, an install, a config change, a reset): a client that means a dry
    /// run must never get a run or a change. Nil where the row takes it (`Route.takesCheck`: the
    /// exec API's chunk, and a script's `check`, which the refusal names for the script's other
    /// URLs).
    static func nothingToCheck(_ route: Route, rest: String, json: Bool) -> Response? {
        if route.takesCheck { return nil }
        let scripts = adminPrefix + "scripts/"
        if route.prefix == scripts {
            let name = rest.prefix { $0 != "/" }
            return plain(
                400,
                "Lua-Check asks for a compile only: POST \(scripts)\(RequestHead.maskingTokens(String(name)))/check compiles the script; nothing ran\n",
                json: json)
        }
        return plain(
            400,
            "Lua-Check asks for a compile only, which \(interactivePath) and POST \(scripts)NAME/check do; this request "
                + "runs or changes something, and nothing ran\n",
            json: json)
    }

    /// The answer to a `Lua-Check` request: 200 with no results (text: an empty body; JSON:
    /// E5's object with `"results":[]`), E6's 400 `syntax`, or 504 `timeout`. Answered on the
    /// transport's thread, never queued for the state: `LuaSyntax` compiles in a state of its
    /// own, so a check answers while the resident state runs a long chunk. Made after the
    /// request is handed over (`Reply.later`), since compiling is not always quick: Lua's parser
    /// is quadratic in a long `a or a or ...` (500 KB compiled for 14 s), so a check compiles
    /// for `limits.time` at most, and the requests behind it are handed over meanwhile. One
    /// `Lua-Check` compiles at a time (`compiling`), and one script's check (`script`,
    /// `compilingScripts`): another meanwhile is 503 busy with `Retry-After`.
    func check(
        _ mode: String, chunk: [UInt8], chunkName: String, json: Bool, script: Bool = false, audit: inout AuditRecord
    ) -> Response {
        guard mode.lowercased() == Self.syntaxCheck else {
            return Self.plain(
                400, "the Lua-Check header takes one value, syntax (compile only, run nothing)\n", json: json)
        }
        func take(_ slot: borrowing Atomic<Int>) -> Bool {
            if slot.add(1, ordering: .acquiring).newValue == 1 { return true }
            slot.subtract(1, ordering: .releasing)
            return false
        }
        guard script ? take(compilingScripts) : take(compiling) else {
            audit.errorKind = "busy"
            return busy(json: json, message: "luaexecd is compiling another check; retry in a moment\n")
        }
        defer {
            if script {
                compilingScripts.subtract(1, ordering: .releasing)
            } else {
                compiling.subtract(1, ordering: .releasing)
            }
        }
        let (response, error) = Self.render(
            LuaSyntax.check(chunk, chunkName: chunkName, timeLimit: executor.options.timeLimit), json: json)
        audit.errorKind = error?.rawValue
        return response
    }
}
