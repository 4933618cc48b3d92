import SystemSupport

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import LuaRuntime

/// Writes JSON bytes directly: Lua values need integer/float fidelity and byte strings that
/// a general-purpose encoder does not give.
struct JSONWriter {
    var bytes: [UInt8] = []

    mutating func raw(_ text: String) { bytes.append(contentsOf: text.utf8) }

    mutating func string(_ text: String) { string(utf8: Array(text.utf8)) }

    /// A JSON string from bytes that are valid UTF-8.
    mutating func string(utf8: [UInt8]) {
        bytes.append(UInt8(ascii: "\""))
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "\""): raw("\\\"")
            case UInt8(ascii: "\\"): raw("\\\\")
            case 0x0A: raw("\\n")
            case 0x0D: raw("\\r")
            case 0x09: raw("\\t")
            case 0x08: raw("\\b")
            case 0x0C: raw("\\f")
            case 0..<0x20, 0x7F:
                raw("\\u00")
                bytes.append(ByteWriter.hexDigit(byte >> 4))
                bytes.append(ByteWriter.hexDigit(byte & 0xF))
            default: bytes.append(byte)
            }
        }
        bytes.append(UInt8(ascii: "\""))
    }

    /// A Lua string: a JSON string when it is valid UTF-8, `{"base64":"..."}` otherwise.
    mutating func luaString(_ value: [UInt8]) {
        if String(validating: value, as: UTF8.self) != nil {
            string(utf8: value)
        } else {
            raw("{\"base64\":")
            string(Data(value).base64EncodedString())
            raw("}")
        }
    }

    mutating func number(_ value: Double) {
        if value.isNaN {
            string("nan")
        } else if value.isInfinite {
            string(value < 0 ? "-inf" : "inf")
        } else {
            raw("\(value)")
        }
    }

    mutating func value(_ value: LuaValue) {
        switch value {
        case .nil: raw("null")
        case .boolean(let b): raw(b ? "true" : "false")
        case .integer(let i): raw(String(i))
        case .number(let d): number(d)
        case .string(let s): luaString(s)
        case .opaque(let description): string(description)
        case .cycle: string("<cycle>")
        case .tooDeep: string("<too deep>")
        case .array(let items):
            bytes.append(UInt8(ascii: "["))
            for (index, item) in items.enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                self.value(item)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let fields):
            // Sorted, so that the same table always renders the same bytes.
            bytes.append(UInt8(ascii: "{"))
            for (index, field) in fields.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }).enumerated() {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                string(utf8: Array(String(decoding: field.key, as: UTF8.self).utf8))
                bytes.append(UInt8(ascii: ":"))
                self.value(field.value)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }
}
