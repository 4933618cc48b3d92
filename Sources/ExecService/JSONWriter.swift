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
    /// The most bytes this writer makes. A string that would take it past is not written and
    /// `overflowed` is set; from then on the writer writes nothing more that could grow it much.
    /// Escaping makes a string of control bytes six times its size: without this a chunk's
    /// result under the state's cap became an answer of hundreds of MB (issue 24).
    var limit = Int.max
    private(set) var overflowed = false

    init(limit: Int = .max) { self.limit = limit }

    mutating func raw(_ text: String) { bytes.append(contentsOf: text.utf8) }

    mutating func string(_ text: String) { string(utf8: Array(text.utf8)) }

    /// How many bytes `string(utf8:)` writes for `utf8`, quotes included.
    static func escapedCount(_ utf8: [UInt8]) -> Int {
        var count = 2
        for byte in utf8 {
            switch byte {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), 0x0A, 0x0D, 0x09, 0x08, 0x0C: count += 2
            case 0..<0x20, 0x7F: count += 6
            default: count += 1
            }
        }
        return count
    }

    /// Whether `count` more bytes fit; marks the writer overflowed when they do not.
    private mutating func fits(_ count: Int) -> Bool {
        if overflowed || count > limit - bytes.count {
            overflowed = true
            return false
        }
        return true
    }

    /// A JSON string from bytes that are valid UTF-8.
    mutating func string(utf8: [UInt8]) {
        if limit != .max {
            let count = Self.escapedCount(utf8)
            guard fits(count) else { return }
            bytes.reserveCapacity(bytes.count + count)
        }
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
            guard fits((value.count + 2) / 3 * 4 + 14) else { return }
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
        // Scalars are short: checked after they are written (a table of millions of them must
        // stop at the limit too).
        guard !overflowed else { return }
        defer { if bytes.count > limit { overflowed = true } }
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
            for (index, item) in items.enumerated() where !overflowed {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                self.value(item)
            }
            bytes.append(UInt8(ascii: "]"))
        case .object(let fields):
            // Sorted, so that the same table always renders the same bytes.
            bytes.append(UInt8(ascii: "{"))
            for (index, field) in fields.sorted(by: { $0.key.lexicographicallyPrecedes($1.key) }).enumerated()
            where !overflowed {
                if index > 0 { bytes.append(UInt8(ascii: ",")) }
                string(utf8: Array(String(decoding: field.key, as: UTF8.self).utf8))
                bytes.append(UInt8(ascii: ":"))
                self.value(field.value)
            }
            bytes.append(UInt8(ascii: "}"))
        }
    }
}
