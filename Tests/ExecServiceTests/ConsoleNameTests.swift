import Testing

@testable import ExecService

/// What a console's text before the cursor, or a name to inspect, asks about (SPEC O10).
@Suite("ConsoleName")
struct ConsoleNameTests {
    func before(_ text: String) -> Result<ConsoleName?, ConsoleNameProblem> {
        ConsoleName.beforeCursor(Array(text.utf8))
    }

    @Test(
        "the name at the end of the text: its tables, the word typed, and whether : came last",
        arguments: [
            ("", ConsoleName(path: [], word: "", methods: false)),
            ("pri", ConsoleName(path: [], word: "pri", methods: false)),
            ("print(sip.calls.ge", ConsoleName(path: ["sip", "calls"], word: "ge", methods: false)),
            ("x = call:getS", ConsoleName(path: ["call"], word: "getS", methods: true)),
            ("a.b:", ConsoleName(path: ["a", "b"], word: "", methods: true)),
            ("s = a .. bc", ConsoleName(path: [], word: "bc", methods: false)),
            ("s = a..bc", ConsoleName(path: [], word: "bc", methods: false)),
            ("for i = 1, 10 do t._x", ConsoleName(path: ["t"], word: "_x", methods: false)),
        ])
    func names(text: String, expected: ConsoleName) {
        #expect(before(text) == .success(expected), "\(text)")
    }

    @Test(
        "no name to complete after a call, an index, a number, a keyword, or : before a .",
        arguments: ["f().x", "t[1].x", "x = 1.5", "12", "a:b.c", "a::b", "end.x", "x.1a"])
    func nothing(text: String) {
        #expect(before(text) == .success(nil), "\(text)")
    }

    @Test("a name past 1024 bytes is refused; a long text ending in a short name is not")
    func bounds() {
        #expect(before(String(repeating: "a", count: 1025)) == .failure(.tooLong))
        #expect(before(String(repeating: "ab.", count: 400) + "c") == .failure(.tooLong))
        #expect(
            before(String(repeating: "a", count: 1024))
                == .success(ConsoleName(path: [], word: String(repeating: "a", count: 1024), methods: false)))
        #expect(
            before(String(repeating: "x = 1\n", count: 2000) + "pr")
                == .success(ConsoleName(path: [], word: "pr", methods: false)))
    }

    @Test("a name to inspect: dotted, : before the last, spaces around; anything else is a 400 with a reason")
    func named() {
        #expect(
            ConsoleName.named(Array(" sip.calls.get_all\n".utf8))
                == .success(ConsoleName(path: ["sip", "calls"], word: "get_all", methods: false)))
        #expect(
            ConsoleName.named(Array("s:upper".utf8)) == .success(ConsoleName(path: ["s"], word: "upper", methods: true))
        )
        #expect(ConsoleName.named(Array("x".utf8)) == .success(ConsoleName(path: [], word: "x", methods: false)))
        #expect(ConsoleName.named(Array("".utf8)) == .failure(.empty))
        for bad in ["a..b", "a.", "f()", "a:b:c", "a:b.c", "1x", "end", "a b"] {
            #expect(ConsoleName.named(Array(bad.utf8)) == .failure(.notAName(bad)), "\(bad)")
        }
        #expect(ConsoleName.named(Array(String(repeating: "a", count: 1025).utf8)) == .failure(.tooLong))
    }
}
