import LuaRuntime
import SystemSupport

/// Turns an evaluation into a response body and status (SPEC E4–E6).
enum EvaluationRenderer {
    static func status(of kind: LuaFailure.Kind) -> Int {
        switch kind {
        case .syntax: 400
        case .runtime, .memory, .interrupted: 500
        case .timeout: 504
        }
    }

    /// Text: the output, then the results as `tostring` shows them, joined by tabs. A single nil,
    /// or nothing, adds nothing. Errors: the output, the message and a traceback, one per line.
    static func text(_ evaluation: Evaluation) -> (status: Int, body: [UInt8]) {
        var body = evaluation.output
        switch evaluation.outcome {
        case .success(let values):
            if values.count == 1, values[0] == .nil { return (200, body) }
            for (index, value) in values.enumerated() {
                if index > 0 { body.append(0x09) }
                switch value {
                case .string(let bytes): body.append(contentsOf: bytes)
                default: body.append(contentsOf: "nil".utf8)
                }
            }
            return (200, body)
        case .failure(let failure):
            body.append(contentsOf: failure.message.utf8)
            body.append(0x0A)
            if let traceback = failure.traceback {
                body.append(contentsOf: traceback.utf8)
                body.append(0x0A)
            }
            return (status(of: failure.kind), body)
        }
    }

    /// JSON: `{"ok":true,"results":[...],"output":"...","elapsed_ms":N}` or
    /// `{"ok":false,"error":{"kind":...,"message":...,"traceback":...},"output":...}`.
    static func json(_ evaluation: Evaluation) -> (status: Int, body: [UInt8]) {
        var json = JSONWriter()
        switch evaluation.outcome {
        case .success(let values):
            json.raw("{\"ok\":true,\"results\":")
            json.value(.array(values))
            json.raw(",\"output\":")
            json.luaString(evaluation.output)
            json.raw(",\"elapsed_ms\":")
            json.raw(milliseconds(nanoseconds: evaluation.elapsedNanoseconds))
            json.raw("}")
            return (200, json.bytes)
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
            return (status(of: failure.kind), json.bytes)
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
