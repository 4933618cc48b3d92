#if canImport(FoundationEssentials)
    import FoundationEssentials
#else
    import Foundation
#endif

/// The body of a chunk with arguments (SPEC E11): `{"chunk": "...", "args": [...]}`, sent as
/// `application/vnd.luaexec.call+json`; the server hands `args` to the chunk as `...`.
public enum CallBody {
    public static let contentType = "application/vnd.luaexec.call+json"

    /// The body for `chunk` with `arguments`, each a JSON text (`42`, `"text"`, `{"a": [1]}`)
    /// inserted as it is. A chunk that is not UTF-8 goes as `{"base64": ...}`.
    public static func body(chunk: [UInt8], arguments: [String]) -> [UInt8] {
        var out = Array(#"{"chunk":"#.utf8)
        if String(validating: chunk, as: UTF8.self) != nil {
            appendString(chunk, to: &out)
        } else {
            out += Array(#"{"base64":""#.utf8) + Array(Data(chunk).base64EncodedString().utf8) + Array(#""}"#.utf8)
        }
        out += Array(#","args":["#.utf8)
        for (index, argument) in arguments.enumerated() {
            if index > 0 { out.append(UInt8(ascii: ",")) }
            out += Array(argument.utf8)
        }
        out += Array("]}".utf8)
        return out
    }

    /// Why `text` cannot be one argument, in a sentence naming the option; nil when it can.
    public static func problem(withArgument text: String) -> String? {
        guard JSONValue.parse(Array(text.utf8)) == nil else { return nil }
        return "--arg \(text) is not JSON; a string is written in quotes: --arg '\"\(text)\"'"
    }

    /// The arguments in a file holding one JSON array, each as its JSON text; or why not.
    public static func arguments(inFile bytes: [UInt8], named path: String) -> Result<[String], CallBodyProblem> {
        guard case .array? = JSONValue.parse(bytes) else {
            return .failure(CallBodyProblem(message: "\(path) must hold one JSON array: the chunk's ... in order"))
        }
        // The array goes as it is, brackets dropped: the server reads it with its own rules.
        let space: Set<UInt8> = [0x20, 0x09, 0x0A, 0x0D]
        let inner = bytes.drop { space.contains($0) }.reversed().drop { space.contains($0) }.reversed().dropFirst()
            .dropLast()
        return .success(inner.allSatisfy { space.contains($0) } ? [] : [String(decoding: inner, as: UTF8.self)])
    }

    static func appendString(_ bytes: [UInt8], to out: inout [UInt8]) {
        out.append(UInt8(ascii: "\""))
        for byte in bytes {
            switch byte {
            case UInt8(ascii: "\""): out += Array(#"\""#.utf8)
            case UInt8(ascii: "\\"): out += Array(#"\\"#.utf8)
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                out += Array(#"\u00"#.utf8) + [hex[Int(byte >> 4)], hex[Int(byte & 0xF)]]
            default: out.append(byte)
            }
        }
        out.append(UInt8(ascii: "\""))
    }
}

/// A file of arguments that cannot be sent.
public struct CallBodyProblem: Error, CustomStringConvertible {
    public var message: String
    public var description: String { message }
}
