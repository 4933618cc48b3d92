import LuaRuntime
import Testing

@testable import ExecService

/// The answer's size limit (issue 24, item 9): measured as rendered, in both formats.
@Suite("EvaluationRenderer: the answer's limit")
struct EvaluationRendererTests {
    func evaluation(_ values: [LuaValue], output: [UInt8] = []) -> Evaluation {
        Evaluation(output: output, outcome: .success(values), elapsedNanoseconds: 42_000)
    }

    let refusal = #"{"ok":false,"error":{"kind":"memory","message":"the answer would exceed 100 bytes "#
        + #"(the results and output as rendered): return less, or fetch it in parts","traceback":null},"output":""}"#

    @Test("JSON counts escapes: 20 control bytes are 122 bytes as rendered")
    func escapes() {
        let controls = LuaValue.string([UInt8](repeating: 1, count: 20))
        let refused = EvaluationRenderer.json(evaluation([controls]), limit: 100)
        #expect(refused.status == 500)
        #expect(refused.error == .memory)
        #expect(String(decoding: refused.body, as: UTF8.self) == refusal)
        let fits = EvaluationRenderer.json(evaluation([controls]), limit: 200)
        #expect(fits.status == 200)
        #expect(fits.error == nil)
        #expect(
            String(decoding: fits.body, as: UTF8.self)
                == #"{"ok":true,"results":[""# + String(repeating: #"\u0001"#, count: 20) + #""],"output":"","elapsed_ms":0.042}"#)
    }

    @Test("JSON counts base64, output, and numbers in a table one by one")
    func otherGrowth() {
        let binary = LuaValue.string([UInt8](repeating: 0xFF, count: 70))  // 96 bytes of base64
        #expect(EvaluationRenderer.json(evaluation([binary]), limit: 100).error == .memory)
        let output = [UInt8](repeating: 0x1B, count: 20)
        #expect(EvaluationRenderer.json(evaluation([.integer(1)], output: output), limit: 100).error == .memory)
        let numbers = LuaValue.array((0..<50).map { .number(Double($0) + 1 / 3) })
        let refused = EvaluationRenderer.json(evaluation([numbers]), limit: 100)
        #expect(String(decoding: refused.body, as: UTF8.self) == refusal)
        // A failure's own output counts too: the refusal then drops it.
        let failed = Evaluation(
            output: output, outcome: .failure(LuaFailure(kind: .runtime, message: "boom")), elapsedNanoseconds: 0)
        #expect(String(decoding: EvaluationRenderer.json(failed, limit: 100).body, as: UTF8.self) == refusal)
    }

    @Test("text counts the output and every result with its tabs")
    func text() {
        let fits = EvaluationRenderer.text(evaluation([.string(Array("ab".utf8)), .nil], output: Array("x\n".utf8)), limit: 8)
        #expect(fits.status == 200)
        #expect(fits.body == Array("x\nab\tnil".utf8))
        let refused = EvaluationRenderer.text(
            evaluation([.string(Array("ab".utf8)), .nil], output: Array("x\n".utf8)), limit: 7)
        #expect(refused.status == 500)
        #expect(refused.error == .memory)
        #expect(
            String(decoding: refused.body, as: UTF8.self)
                == "the answer would exceed 7 bytes (the results and output as rendered): return less, or fetch it in parts\n")
    }
}
