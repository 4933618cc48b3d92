import Crypto
import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

/// The key of the audit trail's HMAC chain (SPEC M7): 32 random bytes, kept outside the database
/// in a file of its own (64 hex digits and a newline, mode 0600, owned by luaexecd's user), so
/// that whoever can write the database or holds a backup of it, but cannot read this file,
/// cannot make a record the chain accepts.
///
/// The package's postinst makes `/etc/luaexec/audit.key`; luaexecd makes the file it is given
/// when it is missing and it can (`make run`, the tests, a hand install). Docs: docs/audit.md.
public struct AuditKey: Sendable {
    let key: SymmetricKey
    /// HMAC-SHA-256 (RFC 2104) as two SHA-256 hashers that have already taken the key's inner
    /// and outer pads: each record's MAC starts from copies of them, so the writer hashes no key
    /// block per record, and goes through SHA-256's buffer API rather than HMAC's generic one
    /// (whose unspecialised calls cost as much again under callgrind).
    private let inner: SHA256
    private let outer: SHA256
    /// The first 8 bytes of HMAC(key, "luaexec audit key id"), in hex: names the key in a seal
    /// and in messages without giving anything of it away.
    public let id: String

    public init(bytes: [UInt8]) {
        key = SymmetricKey(data: bytes)
        // The key is 32 bytes, under SHA-256's 64-byte block: padded with zeros (RFC 2104).
        var block = bytes + [UInt8](repeating: 0, count: 64 - bytes.count)
        var inner = SHA256()
        var outer = SHA256()
        for index in block.indices { block[index] ^= 0x36 }
        block.withUnsafeBytes { inner.update(bufferPointer: $0) }
        for index in block.indices { block[index] ^= 0x36 ^ 0x5c }
        block.withUnsafeBytes { outer.update(bufferPointer: $0) }
        self.inner = inner
        self.outer = outer
        let mac = HMAC<SHA256>.authenticationCode(for: Array("luaexec audit key id".utf8), using: key)
        id = mac.prefix(8).map { Self.hex($0) }.joined()
    }

    /// A new random key.
    public static func random() -> AuditKey {
        var generator = SystemRandomNumberGenerator()
        return AuditKey(bytes: (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) })
    }

    /// The key in the file at `path`. Refused: a missing or unreadable file, one that others may
    /// read or write (as ssh refuses such a private key), one that is not 64 hex digits.
    public static func load(path: String) throws(StoreError) -> AuditKey {
        var info = stat()
        guard stat(path, &info) == 0 else {
            throw StoreError("cannot read the audit key \(path): \(systemErrorText())")
        }
        guard info.st_mode & S_IFMT == S_IFREG else { throw StoreError("the audit key \(path) is not a regular file") }
        guard info.st_mode & 0o077 == 0 else {
            throw StoreError(
                "the audit key \(path) may be read or written by others (mode \(String(info.st_mode & 0o777, radix: 8))): "
                    + "chmod 600 \(path)")
        }
        let text: [UInt8]
        do {
            text = try Files.contents(atPath: path, limit: 256)
        } catch {
            throw StoreError("cannot read the audit key \(path): \(error)")
        }
        var digits = text[...]
        while let last = digits.last, last == UInt8(ascii: "\n") || last == UInt8(ascii: "\r") { digits.removeLast() }
        guard digits.count == 64, let bytes = Self.bytes(fromHex: digits) else {
            throw StoreError("the audit key \(path) is not 64 hex digits (make one with: openssl rand -hex 32)")
        }
        return AuditKey(bytes: bytes)
    }

    /// The key at `path`, made first (mode 0600) when there is no file there. Whether it was made
    /// is returned, to be logged.
    public static func loadOrCreate(path: String) throws(StoreError) -> (key: AuditKey, created: Bool) {
        let fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
        guard fd >= 0 else {
            guard errno == EEXIST else {
                throw StoreError("cannot make the audit key \(path): \(systemErrorText())")
            }
            return (try load(path: path), false)
        }
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<32).map { _ in UInt8.random(in: 0...255, using: &generator) }
        let text = Array((bytes.map { hex($0) }.joined() + "\n").utf8)
        let written = text.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd) == 0
        close(fd)
        guard written == text.count, synced else {
            unlink(path)
            throw StoreError("cannot write the audit key \(path): \(systemErrorText())")
        }
        return (AuditKey(bytes: bytes), true)
    }

    /// HMAC-SHA-256 of `message` with this key.
    func mac(_ message: [UInt8]) -> [UInt8] {
        mac { hasher in message.withUnsafeBytes { hasher.update(bufferPointer: $0) } }
    }

    /// HMAC-SHA-256 of what `message` feeds the hasher: a record's message in its pieces, where
    /// they lie, rather than copied into one.
    func mac(_ message: (inout SHA256) -> Void) -> [UInt8] {
        var inner = inner
        message(&inner)
        var outer = outer
        inner.finalize().withUnsafeBytes { outer.update(bufferPointer: $0) }
        return outer.finalize().withUnsafeBytes { Array($0) }
    }

    static func hex(_ byte: UInt8) -> String {
        let digits = Array("0123456789abcdef".utf8)
        return String(decoding: [digits[Int(byte >> 4)], digits[Int(byte & 15)]], as: UTF8.self)
    }

    static func hex(_ bytes: [UInt8]) -> String { bytes.map { hex($0) }.joined() }

    private static func bytes(fromHex digits: ArraySlice<UInt8>) -> [UInt8]? {
        func value(_ digit: UInt8) -> UInt8? {
            switch digit {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit - UInt8(ascii: "A") + 10
            default: nil
            }
        }
        var bytes: [UInt8] = []
        var index = digits.startIndex
        while index < digits.endIndex {
            guard let high = value(digits[index]), let low = value(digits[index + 1]) else { return nil }
            bytes.append(high << 4 | low)
            index += 2
        }
        return bytes
    }
}
