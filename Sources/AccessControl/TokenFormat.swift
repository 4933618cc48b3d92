import SystemSupport

/// The shape of a luaexec token: `lxk_` + 30 base62 random characters (178 bits from the system
/// CSPRNG) + 6 base62 characters of the random part's CRC32.
///
/// The prefix lets secret scanners find leaked tokens; the checksum lets a typo or a guessed
/// token be rejected without a database lookup (GitHub's token format is the model).
public enum TokenFormat {
    public static let prefix = "lxk_"
    static let randomLength = 30
    static let checksumLength = 6
    public static let length = prefix.utf8.count + randomLength + checksumLength

    static let alphabet = Array("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz".utf8)

    /// A new token secret. `SystemRandomNumberGenerator` reads the kernel's CSPRNG (getrandom).
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        var random: [UInt8] = []
        random.reserveCapacity(randomLength)
        for _ in 0..<randomLength {
            random.append(alphabet[Int.random(in: 0..<alphabet.count, using: &generator)])
        }
        return prefix + String(decoding: random + checksum(of: random), as: UTF8.self)
    }

    /// True when `candidate` has the prefix, the length, the alphabet and a matching checksum.
    public static func isWellFormed(_ candidate: some StringProtocol) -> Bool {
        withUTF8Bytes(of: String(candidate), isWellFormed)
    }

    static func isWellFormed(_ utf8: UnsafeBufferPointer<UInt8>) -> Bool {
        // Every request's token passes here: one pass over the bytes where they lie, nothing
        // allocated.
        guard utf8.count == length, utf8.starts(with: prefix.utf8) else { return false }
        // The table through a pointer: indexing the global array checks its initialisation and
        // bounds at each of the 30 bytes, three times the cost of the CRC itself.
        return CRC32.table.withUnsafeBufferPointer { table in
            var crc = CRC32.initial
            var written: UInt64 = 0
            var index = 0
            for byte in utf8[prefix.utf8.count...] {
                guard let digit = base62Value(byte) else { return false }
                if index < randomLength {
                    crc = CRC32.update(crc, byte, table: table)
                } else {
                    written = written * 62 + UInt64(digit)
                }
                index += 1
            }
            // Six base-62 digits hold any 32-bit value in exactly one way: equal values, equal digits.
            return written == UInt64(CRC32.final(crc))
        }
    }

    /// The digit's value in `alphabet`, or nil for a byte outside it.
    static func base62Value(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "A")...UInt8(ascii: "Z"): byte - UInt8(ascii: "A") + 10
        case UInt8(ascii: "a")...UInt8(ascii: "z"): byte - UInt8(ascii: "a") + 36
        default: nil
        }
    }

    static func isBase62(_ byte: UInt8) -> Bool { base62Value(byte) != nil }

    static func checksum(of random: [UInt8]) -> [UInt8] {
        var value = CRC32.checksum(random)
        var digits = [UInt8](repeating: alphabet[0], count: checksumLength)
        for index in stride(from: checksumLength - 1, through: 0, by: -1) {
            digits[index] = alphabet[Int(value % 62)]
            value /= 62
        }
        return digits
    }
}

/// CRC-32 (IEEE 802.3, as zlib computes it).
enum CRC32 {
    static let table: [UInt32] = (0..<256).map { n in
        var c = UInt32(n)
        for _ in 0..<8 { c = c & 1 != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
        return c
    }

    static let initial: UInt32 = 0xFFFF_FFFF

    static func update(_ crc: UInt32, _ byte: UInt8, table: UnsafeBufferPointer<UInt32>) -> UInt32 {
        // The index is masked to 0...255 and the table has 256 entries.
        table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8)
    }

    static func final(_ crc: UInt32) -> UInt32 { crc ^ 0xFFFF_FFFF }

    static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        table.withUnsafeBufferPointer { table in
            final(bytes.reduce(initial) { update($0, $1, table: table) })
        }
    }
}
