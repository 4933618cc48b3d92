import LuaRuntime
import SystemSupport

/// Turns an evaluation into a response body and status (SPEC E4–E6).
enum EvaluationRenderer {
    /// The most bytes an evaluation's answer may take, in either format: the state's results are
    /// at most 64 MiB encoded (CLuaSupport's LX_RESULT_LIMIT) and its output 16 MiB, but JSON
    /// escapes a control byte as six and base64 adds a third. Past it the answer is E6's
    /// `memory` error, and luaexecd holds at most this much of an answer (docs/limits.md).
    static let answerLimit = 64 << 20

    /// An answer: its status, its body, and the kind of the error it carries (nil for a result):
    /// an evaluation that succeeded may still be answered with an error when it cannot be
    /// rendered within the limit.
    struct Rendered {
        var status: Int
        var body: [UInt8]
        var error: LuaFailure.Kind? = nil
    }

    /// The answer when the rendered results would pass `limit`: the output is not sent either.
    static func tooLarge(limit: Int) -> LuaFailure {
        LuaFailure(
            kind: .memory,
            message: "the answer would exceed \(limit) bytes (the results and output as rendered): return less, or fetch it in parts")
    }

    static func status(of kind: LuaFailure.Kind) -> Int {
        switch kind {
        case .syntax: 400
        case .runtime, .memory, .interrupted: 500
        case .timeout: 504
        }
    }

    /// Text: the output, then the results as `tostring` shows them, joined by tabs. A single nil,
    /// or nothing, adds nothing. Errors: the output, the message and a traceback, one per line.
    static func text(_ evaluation: Evaluation, limit: Int = answerLimit) -> Rendered {
        var body = evaluation.output
        switch evaluation.outcome {
        case .success(let values):
            if values.count == 1, values[0] == .nil { return Rendered(status: 200, body: body) }
            let size = values.reduce(body.count + max(values.count - 1, 0)) { size, value in
                if case .string(let bytes) = value { size + bytes.count } else { size + 3 }
            }
            if size > limit { return text(Evaluation(output: [], outcome: .failure(tooLarge(limit: limit)), elapsedNanoseconds: 0)) }
            body.reserveCapacity(size)
            for (index, value) in values.enumerated() {
                if index > 0 { body.append(0x09) }
                switch value {
                case .string(let bytes): body.append(contentsOf: bytes)
                default: body.append(contentsOf: "nil".utf8)
                }
            }
            return Rendered(status: 200, body: body)
        case .failure(let failure):
            body.append(contentsOf: failure.message.utf8)
            body.append(0x0A)
            if let traceback = failure.traceback {
                body.append(contentsOf: traceback.utf8)
                body.append(0x0A)
            }
            return Rendered(status: status(of: failure.kind), body: body, error: failure.kind)
        }
    }

    /// JSON: `{"ok":true,"results":[...],"output":"...","elapsed_ms":N}` or
    /// `{"ok":false,"error":{"kind":...,"message":...,"traceback":...},"output":...}`.
    static func json(_ evaluation: Evaluation, limit: Int = answerLimit) -> Rendered {
        var json = JSONWriter(limit: limit)
        switch evaluation.outcome {
        case .success(let values):
            json.raw("{\"ok\":true,\"results\":")
            json.value(.array(values))
            json.raw(",\"output\":")
            json.luaString(evaluation.output)
            json.raw(",\"elapsed_ms\":")
            json.raw(milliseconds(nanoseconds: evaluation.elapsedNanoseconds))
            json.raw("}")
            if json.overflowed {
                return Self.json(Evaluation(output: [], outcome: .failure(tooLarge(limit: limit)), elapsedNanoseconds: 0))
            }
            return Rendered(status: 200, body: json.bytes)
        case .failure(let failure):
            json.raw("{\"ok\":false,\"error\":{\"kind\":")
            json.string(failure.kind.rawValue)
            json.raw(",\"message\":")
            json.string(failure.message)
            json.raw(",\"traceback\":")
            if let traceback = failure.traceback { json.string(traceback) } else { json.raw("null") }
            json.raw("},\"output\":")
            json.luaString(evaluation.output)
            json.raw("}")
            if json.overflowed {
                return Self.json(Evaluation(output: [], outcome: .failure(tooLarge(limit: limit)), elapsedNanoseconds: 0))
            }
            return Rendered(status: status(of: failure.kind), body: json.bytes, error: failure.kind)
        }
    }

    /// Milliseconds with microsecond precision, e.g. `0.042`.
    static func milliseconds(_ duration: Duration) -> String {
        milliseconds(nanoseconds: duration.wholeNanoseconds)
    }

    static func milliseconds(nanoseconds: Int64) -> String {
        milliseconds(nanoseconds: nanoseconds, after: "")
    }

    /// The `Server-Timing` value of an evaluation: `lua;dur=0.042`.
    static func serverTiming(nanoseconds: Int64) -> String {
        milliseconds(nanoseconds: nanoseconds, after: "lua;dur=")
    }

    /// `prefix` and the milliseconds as a string: a small one, stored inline without allocating,
    /// for the `Server-Timing` of every response. Formatted once on the stack: at most 20
    /// digits, a point and three.
    private static func milliseconds(nanoseconds: Int64, after prefix: StaticString) -> String {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: prefix.utf8CodeUnitCount + 24) { buffer in
            var count = 0
            prefix.withUTF8Buffer { for byte in $0 { buffer[count] = byte; count += 1 } }
            ByteWriter.formatMilliseconds(nanoseconds: nanoseconds) { buffer[count] = $0; count += 1 }
            return String(decoding: UnsafeBufferPointer(rebasing: buffer[..<count]), as: UTF8.self)
        }
    }
}
