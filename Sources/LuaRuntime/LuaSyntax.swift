import CLuaSupport
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// Compiles chunks without running them (SPEC E12, `Lua-Check: syntax`).
///
/// Each check compiles in a throwaway Lua state of its own, not in the resident one: a check
/// must answer while the resident state runs a long chunk, and compiling there would mean
/// queueing behind it. A fresh state costs a few microseconds and shares nothing, so `check`
/// may run on any thread, at the same time as evaluations and other checks.
public enum LuaSyntax {
    /// The memory a check may use to compile: a 1 MiB chunk (`exec.max_body`'s default) of
    /// dense table constructors compiles within a few MiB; a check past this answers `memory`.
    public static let memoryLimit = 64 << 20

    /// Compiles `chunk` as `LuaVM.evaluate` would (text only, the same chunk name and
    /// messages); nil when it compiles, the failure it would have answered when it does not.
    /// Runs nothing: the chunk's code, even its top level, never executes.
    /// `timeLimit` bounds the compiling, which a long `a or a or ...` makes quadratic: past it the
    /// check answers `timeout`.
    public static func check(
        _ chunk: [UInt8], chunkName: String, memoryLimit: Int = memoryLimit, timeLimit: Duration = .seconds(5)
    ) -> Evaluation {
        let start = MonotonicInstant.now()
        func done(_ failure: LuaFailure?) -> Evaluation {
            Evaluation(
                output: [], outcome: failure.map { .failure($0) } ?? .success([]),
                elapsedNanoseconds: MonotonicInstant.now().nanoseconds(since: start))
        }
        // The message LuaVM.evaluate gives, so that a check and a run refuse alike.
        if chunk.first == 0x1B {
            return done(
                LuaFailure(kind: .syntax, message: "binary (precompiled) chunks are refused: send Lua source text"))
        }
        var message: UnsafeMutablePointer<CChar>?
        var length = 0
        let status = chunk.withUnsafeBufferPointer { buffer in
            buffer.withMemoryRebound(to: CChar.self) { chars in
                LuaVM.source(chunkName).withCString { source in
                    lx_check_syntax(
                        chars.baseAddress, chars.count, source, memoryLimit, timeLimit.wholeNanoseconds, &message,
                        &length)
                }
            }
        }
        defer { free(message) }
        let text = message.map { String(decoding: UnsafeRawBufferPointer(start: $0, count: length), as: UTF8.self) }
        switch lx_status(UInt32(status)) {
        case LX_OK:
            return done(nil)
        case LX_ERR_TIMEOUT:
            return done(
                LuaFailure(
                    kind: .timeout,
                    message: "the chunk took longer than the time limit (\(timeLimit)) to compile; nothing ran"))
        case LX_ERR_MEMORY:
            return done(
                LuaFailure(
                    kind: .memory,
                    message: "not enough memory to compile the chunk: a check may use \(memoryLimit) bytes"))
        default:
            return done(LuaFailure(kind: .syntax, message: text ?? "the chunk does not compile"))
        }
    }
}
