import LuaRuntime

#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// A chunk with arguments (SPEC E11): a body of `Content-Type: application/vnd.luaexec.call+json`,
/// `{"chunk": "...", "args": [...], "name": "@file.lua"}`; the chunk gets `args` as `...`.
///
/// The JSON is read here, strictly, rather than by a general decoder: the arguments become Lua
/// values as E5 renders them, in reverse, and whatever cannot (a number past Int64 or Double, a
/// string that is not Unicode, nesting past E5's depth) is refused with where and why, so that
/// nothing runs on a value the sender did not mean. Integers stay integers (`1` is not `1.0`);
/// `{"base64": "..."}`, alone in its object, is a binary string; `null` is nil (in an array it
/// leaves a hole, as in Lua).
struct CallBody: Equatable {
    var chunk: [UInt8]
    var arguments: [LuaValue]
    var name: String?

    static let mediaType = "application/vnd.luaexec.call+json"
    /// SPEC E5's depth: a value nested deeper renders as `"<too deep>"`, so none is taken.
    static let maxDepth = 32

    /// Whether a request's `Content-Type` (parameters aside, any case) says the body is one.
    static func isCall(contentType: String?) -> Bool {
        guard var contentType else { return false }
        return contentType.withUTF8 { isCall(contentType: $0) }
    }

    /// `isCall` on the header's bytes where they lie: every exec request asks, and splitting and
    /// lower-casing strings for it cost ~30,000 instructions a request (callgrind).
    static func isCall(contentType bytes: UnsafeBufferPointer<UInt8>?) -> Bool {
        guard let bytes else { return false }
        let wanted = mediaTypeBytes
        var start = bytes.startIndex
        while start < bytes.endIndex, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
        guard bytes.endIndex - start >= wanted.count else { return false }
        for (offset, byte) in wanted.enumerated() {
            var given = bytes[start + offset]
            if given >= 0x41 && given <= 0x5A { given |= 0x20 }
            guard given == byte else { return false }
        }
        // Then only whitespace, or parameters after `;`.
        var rest = start + wanted.count
        while rest < bytes.endIndex, bytes[rest] == 0x20 || bytes[rest] == 0x09 { rest += 1 }
        return rest == bytes.endIndex || bytes[rest] == UInt8(ascii: ";")
    }

    private static let mediaTypeBytes = Array(mediaType.utf8)

    /// The body, or what is wrong with it in a sentence for the sender (a byte offset where
    /// that helps).
    static func parse(_ bytes: [UInt8]) -> Result<CallBody, CallBodyError> {
        var reader = Reader(bytes: bytes)
        do throws(CallBodyError) {
            return .success(try reader.body())
        } catch {
            return .failure(error)
        }
    }

    /// One JSON value, the whole of `bytes`, read as the arguments are: integers stay integers,
    /// no number is rounded quietly, `{"base64": "..."}` alone is a binary string.
    static func parseValue(_ bytes: [UInt8]) -> Result<LuaValue, CallBodyError> {
        var reader = Reader(bytes: bytes)
        do throws(CallBodyError) {
            let value = try reader.value(depth: 0)
            reader.skipSpace()
            guard reader.peek() == nil else { throw reader.fail("more after the JSON value") }
            return .success(value)
        } catch {
            return .failure(error)
        }
    }

    private struct Reader {
        let bytes: [UInt8]
        var offset = 0

        func fail(_ message: String) -> CallBodyError {
            CallBodyError(message: offset < bytes.count ? "\(message) (at byte \(offset))" : message)
        }

        mutating func body() throws(CallBodyError) -> CallBody {
            skipSpace()
            guard peek() == UInt8(ascii: "{") else {
                throw fail("the body must be a JSON object: {\"chunk\": \"...\", \"args\": [...], \"name\": \"...\"}")
            }
            offset += 1
            var chunk: [UInt8]?
            var arguments: [LuaValue]?
            var name: String?
            var seen: Set<[UInt8]> = []
            skipSpace()
            if peek() == UInt8(ascii: "}") {
                offset += 1
            } else {
                while true {
                    skipSpace()
                    let keyStart = offset
                    let key = try string()
                    guard seen.insert(key).inserted else {
                        throw fail("\"\(String(decoding: key, as: UTF8.self))\" is given twice")
                    }
                    try expect(":")
                    skipSpace()
                    switch key {
                    case Array("chunk".utf8):
                        switch try value(depth: 0) {
                        case .string(let text): chunk = text
                        default: throw fail("\"chunk\" must be a string (or {\"base64\": \"...\"}) of Lua source text")
                        }
                    case Array("args".utf8):
                        guard peek() == UInt8(ascii: "[") else {
                            throw fail("\"args\" must be an array: the chunk's ... in order")
                        }
                        offset += 1
                        arguments = try elements(depth: 0)
                    case Array("name".utf8):
                        guard peek() == UInt8(ascii: "\"") else {
                            throw fail("\"name\" must be a string, e.g. \"@tools/setup.lua\"")
                        }
                        let text = String(decoding: try string(), as: UTF8.self)
                        guard ExecService.isChunkName(text) else {
                            throw fail("\"name\" must be 1 to 256 printable characters (e.g. @tools/setup.lua)")
                        }
                        name = text
                    default:
                        offset = keyStart
                        throw fail(
                            "unknown member \"\(String(decoding: key, as: UTF8.self))\": a call takes \"chunk\", \"args\" and \"name\""
                        )
                    }
                    if try another(before: "}") { continue }
                    break
                }
            }
            skipSpace()
            guard offset == bytes.count else { throw fail("unexpected text after the JSON object") }
            guard let chunk else { throw fail("the call has no \"chunk\": give the Lua source text to run") }
            return CallBody(chunk: chunk, arguments: arguments ?? [], name: name)
        }

        func peek() -> UInt8? { offset < bytes.count ? bytes[offset] : nil }

        mutating func skipSpace() {
            while let byte = peek(), byte == 0x20 || byte == 0x09 || byte == 0x0A || byte == 0x0D { offset += 1 }
        }

        mutating func expect(_ character: Unicode.Scalar) throws(CallBodyError) {
            skipSpace()
            guard peek() == UInt8(ascii: character) else {
                throw fail(peek() == nil ? "the JSON ends too early" : "expected '\(character)'")
            }
            offset += 1
        }

        /// After a member or an element: true past a comma (another follows), false past
        /// `closing` (the object or array ends); anything else is an error.
        mutating func another(before closing: Unicode.Scalar) throws(CallBodyError) -> Bool {
            skipSpace()
            if peek() == UInt8(ascii: ",") {
                offset += 1
                return true
            }
            try expect(closing)
            return false
        }

        mutating func literal(_ word: String, _ value: LuaValue) throws(CallBodyError) -> LuaValue {
            let expected = Array(word.utf8)
            guard bytes.count - offset >= expected.count, Array(bytes[offset..<offset + expected.count]) == expected
            else {
                throw fail("not JSON")
            }
            offset += expected.count
            return value
        }

        /// One value at `depth` (an argument is at 0; what a table holds, one deeper).
        mutating func value(depth: Int) throws(CallBodyError) -> LuaValue {
            guard depth <= CallBody.maxDepth else {
                throw fail("the arguments nest deeper than \(CallBody.maxDepth) levels (SPEC E5's limit)")
            }
            skipSpace()
            guard let byte = peek() else { throw fail("the JSON ends too early") }
            switch byte {
            case UInt8(ascii: "\""): return .string(try string())
            case UInt8(ascii: "["):
                offset += 1
                return .array(try elements(depth: depth + 1))
            case UInt8(ascii: "{"):
                offset += 1
                return try object(depth: depth + 1)
            case UInt8(ascii: "t"): return try literal("true", .boolean(true))
            case UInt8(ascii: "f"): return try literal("false", .boolean(false))
            case UInt8(ascii: "n"): return try literal("null", .nil)
            case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"): return try number()
            default: throw fail("not JSON")
            }
        }

        /// An array's items after its `[`, each at `depth`.
        mutating func elements(depth: Int) throws(CallBodyError) -> [LuaValue] {
            var items: [LuaValue] = []
            skipSpace()
            if peek() == UInt8(ascii: "]") {
                offset += 1
                return items
            }
            while true {
                items.append(try value(depth: depth))
                if try another(before: "]") { continue }
                return items
            }
        }

        /// An object's members after its `{`, each value at `depth`; `{"base64": "..."}` alone
        /// is the string it encodes.
        mutating func object(depth: Int) throws(CallBodyError) -> LuaValue {
            var fields: [LuaValue.Field] = []
            var seen: Set<[UInt8]> = []
            skipSpace()
            if peek() == UInt8(ascii: "}") {
                offset += 1
                return .object([])
            }
            while true {
                skipSpace()
                guard peek() == UInt8(ascii: "\"") else { throw fail("expected a member name in quotes") }
                let key = try string()
                guard seen.insert(key).inserted else {
                    throw fail("\"\(String(decoding: key, as: UTF8.self))\" is given twice")
                }
                try expect(":")
                fields.append(LuaValue.Field(key: key, value: try value(depth: depth)))
                if try another(before: "}") { continue }
                break
            }
            if fields.count == 1, fields[0].key == Array("base64".utf8), case .string(let encoded) = fields[0].value {
                guard let decoded = Data(base64Encoded: Data(encoded)) else {
                    throw fail("{\"base64\": ...} holds text that is not base64")
                }
                return .string(Array(decoded))
            }
            return .object(fields)
        }

        /// RFC 8259's number: an integer (no fraction, no exponent) must fit a Lua integer,
        /// anything else a finite double; neither is rounded quietly.
        mutating func number() throws(CallBodyError) -> LuaValue {
            let start = offset
            var integral = true
            if peek() == UInt8(ascii: "-") { offset += 1 }
            func digits(_ reader: inout Reader) -> Int {
                let first = reader.offset
                while let byte = reader.peek(), (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) {
                    reader.offset += 1
                }
                return reader.offset - first
            }
            let leading = offset
            let count = digits(&self)
            guard count > 0, count == 1 || bytes[leading] != UInt8(ascii: "0") else { throw fail("not a JSON number") }
            if peek() == UInt8(ascii: ".") {
                integral = false
                offset += 1
                guard digits(&self) > 0 else { throw fail("not a JSON number") }
            }
            if peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
                integral = false
                offset += 1
                if peek() == UInt8(ascii: "+") || peek() == UInt8(ascii: "-") { offset += 1 }
                guard digits(&self) > 0 else { throw fail("not a JSON number") }
            }
            let text = String(decoding: bytes[start..<offset], as: UTF8.self)
            // Named in a refusal by its first characters: a 500 KB literal is not echoed whole.
            let shown = text.utf8.count <= 40 ? text : "\(text.prefix(24))... (\(text.utf8.count) characters)"
            if integral {
                guard let integer = Int64(text) else {
                    offset = start
                    throw fail("\(shown) does not fit a Lua integer (-2^63 to 2^63-1); send it as a string")
                }
                return .integer(integer)
            }
            guard let double = Double(text), double.isFinite else {
                offset = start
                throw fail("\(shown) does not fit a Lua float; send it as a string")
            }
            // Underflow is rounding too: 1e-400 is not 0.
            let mantissa = text.prefix { $0 != "e" && $0 != "E" }
            if double == 0, mantissa.contains(where: { ("1"..."9").contains($0) }) {
                offset = start
                throw fail("\(shown) is too small for a Lua float (it would be 0); send it as a string")
            }
            return .number(double)
        }

        /// A JSON string's bytes (UTF-8, escapes resolved). A string must be Unicode text: a
        /// byte sequence that is not UTF-8, or an escaped lone surrogate, is refused, since
        /// bytes go as {"base64": "..."}.
        mutating func string() throws(CallBodyError) -> [UInt8] {
            guard peek() == UInt8(ascii: "\"") else { throw fail("expected a string") }
            let start = offset
            offset += 1
            var out: [UInt8] = []
            var run = offset  // the start of bytes copied as they are
            while true {
                guard let byte = peek() else { throw fail("a string is not closed") }
                if byte == UInt8(ascii: "\"") {
                    out += bytes[run..<offset]
                    offset += 1
                    break
                }
                if byte < 0x20 { throw fail("a control character in a string must be escaped") }
                if byte != UInt8(ascii: "\\") {
                    offset += 1
                    continue
                }
                out += bytes[run..<offset]
                offset += 1
                guard let escape = peek() else { throw fail("a string is not closed") }
                offset += 1
                switch escape {
                case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(escape)
                case UInt8(ascii: "b"): out.append(0x08)
                case UInt8(ascii: "f"): out.append(0x0C)
                case UInt8(ascii: "n"): out.append(0x0A)
                case UInt8(ascii: "r"): out.append(0x0D)
                case UInt8(ascii: "t"): out.append(0x09)
                case UInt8(ascii: "u"):
                    var scalar = try hex4()
                    if (0xD800..<0xDC00).contains(scalar) {
                        guard peek() == UInt8(ascii: "\\"), offset + 1 < bytes.count,
                            bytes[offset + 1] == UInt8(ascii: "u")
                        else {
                            throw fail(Self.notText)
                        }
                        offset += 2
                        let low = try hex4()
                        guard (0xDC00..<0xE000).contains(low) else { throw fail(Self.notText) }
                        scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
                    } else if (0xDC00..<0xE000).contains(scalar) {
                        throw fail(Self.notText)
                    }
                    out += Array(String(Character(Unicode.Scalar(scalar)!)).utf8)
                default:
                    throw fail("unknown escape in a string")
                }
                run = offset
            }
            guard String(validating: bytes[start + 1..<offset - 1], as: UTF8.self) != nil else {
                offset = start
                throw fail(Self.notText)
            }
            return out
        }

        static let notText = "a string that is not Unicode text (UTF-8); send bytes as {\"base64\": \"...\"}"

        mutating func hex4() throws(CallBodyError) -> UInt32 {
            guard bytes.count - offset >= 4 else { throw fail("\\u needs four hexadecimal digits") }
            var value: UInt32 = 0
            for byte in bytes[offset..<offset + 4] {
                let digit: UInt8
                switch byte {
                case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
                case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
                case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
                default: throw fail("\\u needs four hexadecimal digits")
                }
                value = value << 4 | UInt32(digit)
            }
            offset += 4
            return value
        }
    }
}

/// Why a call body was refused: a sentence for the sender.
struct CallBodyError: Error, Equatable, CustomStringConvertible {
    var message: String
    var description: String { message }
}
