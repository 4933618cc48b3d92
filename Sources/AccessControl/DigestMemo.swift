import Crypto
import Synchronization

/// The SHA-256 of short byte strings that come again and again, remembered: a token's secret
/// (every request of a client carries the same one) and a chunk's body (a monitor polls with the
/// same chunk every minute; the Lua state keeps its compiled form for the same reason).
///
/// Why: each request hashed both, and where the CPU has no SHA instructions (the ARM boards this
/// product runs on without the crypto extension, or valgrind, which `bench/instructions.sh` runs)
/// a SHA-256 is ~2,000 instructions, where finding it here is ~300.
///
/// A direct-mapped table of `slots` entries: a string's slot is chosen by a multiplicative hash
/// of its 8-byte words, seeded at random for each process, and holds the last string remembered
/// there. Which slot a string lands in only decides which string it displaces, never which
/// digest is given: a hit compares the whole string, in constant time, so a secret's timing
/// says nothing about the secret remembered. (SipHash, Swift's `Hasher`, cost as much as the
/// rest of a lookup together, for a property the slot does not need.) Bounded: `slots` strings
/// of at most `maxLength` bytes, nothing freed or grown on a hit.
public final class DigestMemo: Sendable {
    private struct Slot {
        var owner: String
        var bytes: [UInt8]
        var digest: SHA256Digest
    }

    private let slots: Mutex<[Slot?]>
    private let mask: Int
    private let seed = UInt64.random(in: .min ... .max)
    /// Longer strings are hashed each time and never kept.
    public let maxLength: Int

    /// `slots` is rounded up to a power of two.
    public init(slots: Int = 64, maxLength: Int = 1024) {
        var count = 1
        while count < slots { count <<= 1 }
        self.slots = Mutex([Slot?](repeating: nil, count: count))
        mask = count - 1
        self.maxLength = maxLength
    }

    /// The SHA-256 of `bytes`, from the memo when `owner` remembered them; remembered now if
    /// `remember` says so of the digest (the authenticator keeps only the secrets of tokens it
    /// knows, so that guesses cannot push them out). A hit is faster than a miss where SHA-256
    /// is slow: bodies are remembered by token (`owner`), so that no token can time whether
    /// another sent the same bytes.
    public func digest(
        of bytes: UnsafeRawBufferPointer, owner: String = "", remember: (SHA256Digest) -> Bool = { _ in true }
    ) -> SHA256Digest {
        guard bytes.count <= maxLength else { return Self.hash(bytes) }
        let index = slot(of: bytes)
        let known: SHA256Digest? = slots.withLock { slots in
            guard let slot = slots[index], slot.owner == owner, Self.same(slot.bytes, bytes) else { return nil }
            return slot.digest
        }
        if let known { return known }
        let digest = Self.hash(bytes)
        if remember(digest) {
            let slot = Slot(owner: owner, bytes: Array(bytes), digest: digest)
            slots.withLock { $0[index] = slot }
        }
        return digest
    }

    private func slot(of bytes: UnsafeRawBufferPointer) -> Int {
        let multiplier: UInt64 = 0x9E37_79B9_7F4A_7C15
        var hash = seed ^ UInt64(bytes.count)
        var offset = 0
        while offset + 8 <= bytes.count {
            hash = (hash ^ bytes.loadUnaligned(fromByteOffset: offset, as: UInt64.self)) &* multiplier
            hash ^= hash >> 29
            offset += 8
        }
        var tail: UInt64 = 0
        while offset < bytes.count {
            tail = tail << 8 | UInt64(bytes[offset])
            offset += 1
        }
        hash = (hash ^ tail) &* multiplier
        return Int(truncatingIfNeeded: hash >> 32) & mask
    }

    private static func hash(_ bytes: UnsafeRawBufferPointer) -> SHA256Digest {
        var hasher = SHA256()
        hasher.update(bufferPointer: bytes)
        return hasher.finalize()
    }

    /// Whether `a` and `b` hold the same bytes, in a time that depends only on their lengths.
    private static func same(_ a: [UInt8], _ b: UnsafeRawBufferPointer) -> Bool {
        guard a.count == b.count else { return false }
        return a.withUnsafeBytes { a in
            var difference: UInt8 = 0
            for index in 0..<b.count { difference |= a[index] ^ b[index] }
            return difference == 0
        }
    }
}
