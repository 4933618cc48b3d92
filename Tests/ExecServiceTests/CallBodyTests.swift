import LuaRuntime
import Testing

@testable import ExecService

/// The reader of SPEC E11's call bodies: JSON as RFC 8259 has it, values as E5 in reverse.
@Suite("CallBody")
struct CallBodyTests {
    func parse(_ text: String) -> Result<CallBody, CallBodyError> { CallBody.parse(Array(text.utf8)) }

    func arguments(_ json: String) throws -> [LuaValue] {
        try parse(#"{"chunk": "", "args": \#(json)}"#).get().arguments
    }

    @Test("escapes, surrogate pairs and numbers become the values they spell")
    func values() throws {
        #expect(
            try arguments(#"["a\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00", -0, 1E2, 0.5e-1, -9223372036854775808]"#) == [
                .string(Array("a\"\\/\u{8}\u{C}\n\r\té😀".utf8)), .integer(0), .number(100), .number(0.05),
                .integer(.min),
            ])
        #expect(try arguments(#"[{"base64": "AP8="}, {"base64": "AP8=", "x": 1}]"#).first == .string([0, 0xFF]))
        #expect(try arguments("[]") == [])
        // Zero spelled as a float is zero; what only rounds to zero is refused (CallArgumentsTests).
        #expect(try arguments("[0.0, -0.0, 0e5, 0.000e-400, 5e-324]") == [.number(0), .number(-0.0), .number(0), .number(0), .number(5e-324)])
        #expect(throws: CallBodyError.self) { try arguments("[2e-400]") }
        #expect(
            try parse(#" {"chunk": {"base64": "cmV0dXJuIDE="}} "#).get()
                == CallBody(chunk: Array("return 1".utf8), arguments: [], name: nil))
    }

    @Test(
        "what is not strict JSON is refused",
        arguments: [
            #"{"chunk": "", "args": [01]}"#, #"{"chunk": "", "args": [1.]}"#, #"{"chunk": "", "args": [.5]}"#,
            #"{"chunk": "", "args": [+1]}"#, #"{"chunk": "", "args": [tru]}"#, #"{"chunk": "", "args": ["\x"]}"#,
            #"{"chunk": "", "args": ["\u12"]}"#, #"{"chunk": "", "args": ["\udc00"]}"#, #"{"chunk": "", "args": [1,]}"#,
            "{\"chunk\": \"\u{1}\"}", #"{"chunk": "", "chunk": ""}"#, #"{"chunk": "", "args": [{"a": 1, "a": 2}]}"#,
            #"{"chunk": "", "name": ""}"#, #"{"chunk": "", "name": 1}"#, "",
        ])
    func refused(text: String) {
        guard case .failure = parse(text) else {
            Issue.record("accepted: \(text)")
            return
        }
    }

    @Test("the media type is matched without its parameters and in any case")
    func mediaType() {
        #expect(CallBody.isCall(contentType: "application/vnd.luaexec.call+json"))
        #expect(CallBody.isCall(contentType: "Application/VND.luaexec.call+JSON; charset=utf-8"))
        #expect(!CallBody.isCall(contentType: "application/json"))
        #expect(CallBody.isCall(contentType: "  application/vnd.luaexec.call+json  "))
        #expect(!CallBody.isCall(contentType: "application/vnd.luaexec.call+jsonx"))
        #expect(!CallBody.isCall(contentType: "application/vnd.luaexec.call"))
        #expect(!CallBody.isCall(contentType: String?.none))
    }
}
