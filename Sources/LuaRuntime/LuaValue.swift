/// A Lua value copied out of the state after an evaluation, safe to use on any thread.
public indirect enum LuaValue: Sendable, Equatable {
    case `nil`
    case boolean(Bool)
    case integer(Int64)
    case number(Double)
    /// A Lua string: bytes, not necessarily UTF-8.
    case string([UInt8])
    /// A function, userdata or thread, as `tostring` shows it.
    case opaque(String)
    /// A table whose keys are exactly 1...n.
    case array([LuaValue])
    /// Any other table; keys as `tostring` shows them, in no particular order.
    case object([Field])
    /// A table already being converted further up: the table refers to itself.
    case cycle
    /// Tables nested deeper than the conversion follows.
    case tooDeep

    public struct Field: Sendable, Equatable {
        public var key: [UInt8]
        public var value: LuaValue
        public init(key: [UInt8], value: LuaValue) {
            self.key = key
            self.value = value
        }
    }
}

extension LuaValue {
    /// Decodes the buffer `lx_encode` (CLuaSupport) writes: a u32 count, then tagged values.
    static func decodeList(_ bytes: UnsafeRawBufferPointer) -> [LuaValue] {
        var reader = Reader(bytes: bytes)
        let count = Int(reader.u32())
        var values: [LuaValue] = []
        values.reserveCapacity(count)
        for _ in 0..<count { values.append(reader.value()) }
        return values
    }

    private struct Reader {
        let bytes: UnsafeRawBufferPointer
        var offset = 0

        mutating func byte() -> UInt8 {
            defer { offset += 1 }
            return bytes[offset]
        }

        mutating func u32() -> UInt32 {
            defer { offset += 4 }
            return UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt32.self))
        }

        mutating func u64() -> UInt64 {
            defer { offset += 8 }
            return UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self))
        }

        mutating func blob() -> [UInt8] {
            let count = Int(u32())
            defer { offset += count }
            return Array(bytes[offset..<offset + count])
        }

        mutating func value() -> LuaValue {
            let tag = byte()
            switch tag {
            case UInt8(ascii: "n"): return .nil
            case UInt8(ascii: "t"): return .boolean(true)
            case UInt8(ascii: "f"): return .boolean(false)
            case UInt8(ascii: "c"): return .cycle
            case UInt8(ascii: "D"): return .tooDeep
            case UInt8(ascii: "i"): return .integer(Int64(bitPattern: u64()))
            case UInt8(ascii: "d"): return .number(Double(bitPattern: u64()))
            case UInt8(ascii: "s"): return .string(blob())
            case UInt8(ascii: "o"): return .opaque(String(decoding: blob(), as: UTF8.self))
            case UInt8(ascii: "a"):
                let count = Int(u32())
                var items: [LuaValue] = []
                items.reserveCapacity(count)
                for _ in 0..<count { items.append(value()) }
                return .array(items)
            case UInt8(ascii: "m"):
                let count = Int(u32())
                var fields: [Field] = []
                fields.reserveCapacity(count)
                for _ in 0..<count {
                    precondition(byte() == UInt8(ascii: "s"), "lx_encode wrote a key that is not a string")
                    let key = blob()
                    fields.append(Field(key: key, value: value()))
                }
                return .object(fields)
            default:
                preconditionFailure("lx_encode wrote an unknown tag \(tag)")
            }
        }
    }
}

extension LuaValue {
    /// Encodes values in the format `lx_invoke` (CLuaSupport) reads: a u32 count, then tagged
    /// values, as `lx_encode` writes them. Arguments are built by luaexec, not by scripts:
    /// `.opaque`, `.cycle` and `.tooDeep` never occur and are sent as nil.
    static func encodeList(_ values: [LuaValue]) -> [UInt8] {
        var out: [UInt8] = []
        putU32(&out, values.count)
        for value in values { encode(value, into: &out) }
        return out
    }

    /// One value in the same format, without the count.
    static func encodeValue(_ value: LuaValue) -> [UInt8] {
        var out: [UInt8] = []
        encode(value, into: &out)
        return out
    }

    /// The entries of one section of `lx_take_changes`: a u32 count, then pairs of encoded values,
    /// each pair as the raw bytes of its key and of its value. `offset` moves past the section.
    static func splitEntries(_ bytes: UnsafeRawBufferPointer, offset: inout Int) -> [(key: [UInt8], value: [UInt8])] {
        func u32(_ at: Int) -> Int {
            Int(UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: at, as: UInt32.self)))
        }
        // The length of the encoded value at `at`.
        func length(_ at: Int) -> Int {
            switch bytes[at] {
            case UInt8(ascii: "i"), UInt8(ascii: "d"): return 9
            case UInt8(ascii: "s"), UInt8(ascii: "o"): return 5 + u32(at + 1)
            case UInt8(ascii: "a"):
                var end = at + 5
                for _ in 0..<u32(at + 1) { end += length(end) }
                return end - at
            case UInt8(ascii: "m"):
                var end = at + 5
                for _ in 0..<(2 * u32(at + 1)) { end += length(end) }
                return end - at
            default: return 1
            }
        }
        let count = u32(offset)
        offset += 4
        var entries: [(key: [UInt8], value: [UInt8])] = []
        for _ in 0..<count {
            let keyLength = length(offset)
            let key = Array(bytes[offset..<offset + keyLength])
            offset += keyLength
            let valueLength = length(offset)
            entries.append((key, Array(bytes[offset..<offset + valueLength])))
            offset += valueLength
        }
        return entries
    }

    /// Decodes one encoded value (a scalar, or a table of them).
    static func decode(_ bytes: [UInt8]) -> LuaValue {
        bytes.withUnsafeBytes { raw in
            var reader = Reader(bytes: raw)
            return reader.value()
        }
    }

    private static func putU32(_ out: inout [UInt8], _ value: Int) {
        withUnsafeBytes(of: UInt32(value).littleEndian) { out.append(contentsOf: $0) }
    }

    private static func putU64(_ out: inout [UInt8], _ value: UInt64) {
        withUnsafeBytes(of: value.littleEndian) { out.append(contentsOf: $0) }
    }

    private static func encode(_ value: LuaValue, into out: inout [UInt8]) {
        switch value {
        case .nil, .opaque, .cycle, .tooDeep:
            out.append(UInt8(ascii: "n"))
        case .boolean(let flag):
            out.append(UInt8(ascii: flag ? "t" : "f"))
        case .integer(let integer):
            out.append(UInt8(ascii: "i"))
            putU64(&out, UInt64(bitPattern: integer))
        case .number(let number):
            out.append(UInt8(ascii: "d"))
            putU64(&out, number.bitPattern)
        case .string(let bytes):
            out.append(UInt8(ascii: "s"))
            putU32(&out, bytes.count)
            out.append(contentsOf: bytes)
        case .array(let items):
            out.append(UInt8(ascii: "a"))
            putU32(&out, items.count)
            for item in items { encode(item, into: &out) }
        case .object(let fields):
            out.append(UInt8(ascii: "m"))
            putU32(&out, fields.count)
            for field in fields {
                encode(.string(field.key), into: &out)
                encode(field.value, into: &out)
            }
        }
    }
}

extension LuaValue {
    /// A Lua string of `text`'s UTF-8 bytes.
    public static func string(_ text: String) -> LuaValue { .string(Array(text.utf8)) }
}
