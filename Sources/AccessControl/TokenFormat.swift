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
        // Every request's token passes here: no array is made unless the shape is right.
        let utf8 = candidate.utf8
        guard utf8.count == length, utf8.starts(with: prefix.utf8) else { return false }
        let body = utf8.dropFirst(prefix.utf8.count)
        guard body.allSatisfy(isBase62) else { return false }
        return body.suffix(checksumLength).elementsEqual(checksum(of: Array(body.prefix(randomLength))))
    }

    static func isBase62(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "a")...UInt8(ascii: "z"):
            return true
        default:
            return false
        }
    }

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

    static func checksum(_ bytes: some Sequence<UInt8>) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes { crc = table[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8) }
        return crc ^ 0xFFFF_FFFF
    }
}
