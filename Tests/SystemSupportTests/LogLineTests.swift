import Testing

@testable import SystemSupport

@Suite("LogLine: one line of text per event, whatever the event's text holds")
struct LogLineTests {
    /// `bytes` as `LogLine.text` writes them.
    func text(_ bytes: [UInt8]) -> [UInt8] {
        LogLine.bytes { line in bytes.withUnsafeBufferPointer { line.text($0) } }
    }

    func text(_ text: String) -> String { String(decoding: LogLine.bytes { $0.text(text) }, as: UTF8.self) }

    func value(_ text: String) -> String { String(decoding: LogLine.bytes { $0.value(text) }, as: UTF8.self) }

    @Test("printable text, non-ASCII included, is written as it is")
    func printable() {
        let text = #"request id=abc endpoint="GET /a b" grüße 😀 \x0a is text"# + "\u{A0}\u{FFFD}\u{10FFFF}"
        #expect(self.text(text) == text)
        #expect(self.text("") == "")
    }

    @Test("a newline cannot start a forged line; CR, ESC, NUL, DEL and every other control byte are escaped")
    func controls() {
        #expect(text("x\nINFO luaexecd: request id=forged") == #"x\x0aINFO luaexecd: request id=forged"#)
        #expect(text("a\r\n\u{1B}[31mred\u{0}\t\u{7F}b") == #"a\x0d\x0a\x1b[31mred\x00\x09\x7fb"#)
        // C1 controls (U+0085 NEL, U+009B CSI) are control characters too.
        #expect(text("a\u{85}b\u{9B}2J") == #"a\xc2\x85b\xc2\x9b2J"#)
    }

    @Test("bytes that are not UTF-8 are escaped one by one, and what follows them is read afresh")
    func invalidUTF8() {
        let cases: [([UInt8], String)] = [
            ([0xFF, 0x41], #"\xffA"#),
            ([0x80], #"\x80"#),  // a continuation byte alone
            ([0xC0, 0xAF], #"\xc0\xaf"#),  // an overlong '/'
            ([0xE0, 0x80, 0xAF], #"\xe0\x80\xaf"#),  // overlong in three bytes
            ([0xED, 0xA0, 0x80], #"\xed\xa0\x80"#),  // a surrogate
            ([0xF4, 0x90, 0x80, 0x80], #"\xf4\x90\x80\x80"#),  // past U+10FFFF
            ([0xE2, 0x82], #"\xe2\x82"#),  // cut short at the end
            ([0xE2, 0x82, 0x0A], #"\xe2\x82\x0a"#),  // cut short by a newline
            ([0xC3, 0xA9, 0xFE, 0xC3, 0xA9], #"é\xfeé"#),
        ]
        for (bytes, expected) in cases {
            #expect(String(decoding: text(bytes), as: UTF8.self) == expected, "\(bytes)")
        }
    }

    @Test("every byte value at every place of a line: printable ASCII stays, anything else alone is escaped")
    func everyByteEverywhere() {
        for byte in UInt8.min...UInt8.max {
            for place in 0..<8 {
                var bytes = [UInt8](repeating: UInt8(ascii: "a"), count: 8)
                bytes[place] = byte
                let hex = String(byte, radix: 16)
                let expected: String =
                    (0x20...0x7E).contains(byte)
                    ? String(decoding: bytes, as: UTF8.self)
                    : String(repeating: "a", count: place) + "\\x" + (hex.count == 1 ? "0" + hex : hex)
                        + String(repeating: "a", count: 7 - place)
                #expect(String(decoding: text(bytes), as: UTF8.self) == expected, "byte \(byte) at \(place)")
            }
        }
    }

    @Test("values: bare when plain, else quoted with quote and backslash escaped, and escaped by the rule inside")
    func values() {
        #expect(value("plain") == "plain")
        #expect(value("") == #""""#)
        #expect(value("a b") == #""a b""#)
        #expect(value("a=b") == #""a=b""#)
        #expect(value(#"say "hi" \x0a"#) == #""say \"hi\" \\x0a""#)
        #expect(value("x\nINFO luaexecd: request id=forged") == #""x\x0aINFO luaexecd: request id=forged""#)
        #expect(value("\"\n\\") == #""\"\x0a\\""#)
        #expect(value("grüße") == #""grüße""#)
        let joined = LogLine.bytes { $0.value("GET", joinedBy: UInt8(ascii: " "), "/a\"b\n") }
        #expect(String(decoding: joined, as: UTF8.self) == #""GET /a\"b\x0a""#)
    }

    @Test("a line ends with one newline, appended after what the buffer held, which stays as it was")
    func appends() {
        let head: [UInt8] = Array("held\nline\u{1B}\n".utf8)
        var buffer = head
        LogLine.append(to: &buffer) { line in
            line.literal("new ")
            line.value("x\ny")
            line.literal(" n=")
            line.decimal(-42)
            line.literal(" h=")
            line.hex(0xA0)
            line.literal(" ms=")
            line.milliseconds(nanoseconds: 2_500_000)
        }
        #expect(buffer == head + Array(#"new "x\x0ay" n=-42 h=a0 ms=2.500"#.utf8) + [0x0A])
    }
}
