#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Records on their way into the audit trail, each already encoded as the bytes its MAC covers
/// after `seq`: the request thread that finished a request writes them here, the audit writer
/// chains and stores them without making a value of any field (bench/NOTES.md, "What issue 24
/// cost P2": the writer making an `AuditEntry` of each request and freeing what the request
/// thread had allocated was most of its time, and its time was most of what the trail cost).
///
/// A record's bytes are its fields from `at` to `detail` (`AuditEntry.columns` but `seq`), each
/// as `AuditEntry.message` writes a value: a type (0 null, 1 text, 2 integer, 3 blob), then a
/// big-endian 64-bit integer, or a 32-bit length and the bytes. The MAC's message is the label,
/// a zero byte, the previous MAC, `seq` the same way, and these bytes (`AuditTrail.append`);
/// `SQLiteDatabase.Statement.run(seq:fields:mac:)` binds the stored values from them.
public struct AuditBatch: Sendable {
    private(set) var bytes: [UInt8] = []
    /// Where each record ends in `bytes`.
    private(set) var ends: [Int] = []

    public init() {}

    /// The records, in order.
    public init(_ entries: [AuditEntry]) {
        for entry in entries { append(entry) }
    }

    public var count: Int { ends.count }
    public var isEmpty: Bool { ends.isEmpty }

    /// Room for `records` records of about 200 bytes, so that a full batch allocates nothing.
    public mutating func reserveCapacity(_ records: Int) {
        bytes.reserveCapacity(records * 256)
        ends.reserveCapacity(records)
    }

    public mutating func removeAll() {
        bytes.removeAll(keepingCapacity: true)
        ends.removeAll(keepingCapacity: true)
    }

    /// Appends a record made of these fields (those of `AuditEntry`, in its order).
    public mutating func append(
        at: Int64, kind: String, requestID: String?, client: String?, token: String?, scope: String?,
        method: String?, path: String?, status: Int64?, error: String?, bytesIn: Int64?, bytesOut: Int64?,
        durationMicros: Int64?, bodySHA256: (some ContiguousBytes)?, detail: String?
    ) {
        Self.integer(at, into: &bytes)
        Self.text(kind, into: &bytes)
        Self.text(requestID, into: &bytes)
        Self.text(client, into: &bytes)
        Self.text(token, into: &bytes)
        Self.text(scope, into: &bytes)
        Self.text(method, into: &bytes)
        Self.text(path, into: &bytes)
        Self.integer(status, into: &bytes)
        Self.text(error, into: &bytes)
        Self.integer(bytesIn, into: &bytes)
        Self.integer(bytesOut, into: &bytes)
        Self.integer(durationMicros, into: &bytes)
        if let bodySHA256 {
            bodySHA256.withUnsafeBytes { digest in
                bytes.append(3)
                Self.length(digest.count, into: &bytes)
                bytes.append(contentsOf: digest)
            }
        } else {
            bytes.append(0)
        }
        Self.text(detail, into: &bytes)
        ends.append(bytes.count)
    }

    public mutating func append(_ entry: AuditEntry) {
        append(
            at: entry.at, kind: entry.kind, requestID: entry.requestID, client: entry.client, token: entry.token,
            scope: entry.scope, method: entry.method, path: entry.path, status: entry.status, error: entry.error,
            bytesIn: entry.bytesIn, bytesOut: entry.bytesOut, durationMicros: entry.durationMicros,
            bodySHA256: entry.bodySHA256, detail: entry.detail)
    }

    /// Appends `other`'s records after these.
    public mutating func append(contentsOf other: AuditBatch) {
        let base = bytes.count
        bytes += other.bytes
        ends += other.ends.lazy.map { $0 + base }
    }

    /// The first `count` records.
    public func prefix(_ count: Int) -> AuditBatch {
        guard count < ends.count else { return self }
        var first = AuditBatch()
        first.ends = Array(ends.prefix(count))
        first.bytes = Array(bytes.prefix(first.ends.last ?? 0))
        return first
    }

    /// Calls `body` with each record's bytes, in order.
    func forEach(_ body: (UnsafeRawBufferPointer) throws(StoreError) -> Void) throws(StoreError) {
        var start = 0
        for end in ends {
            let range = start..<end
            start = end
            // `withUnsafeBytes` cannot pass a typed throw through.
            var failure: StoreError?
            bytes.withUnsafeBytes { all in
                do throws(StoreError) { try body(UnsafeRawBufferPointer(rebasing: all[range])) } catch { failure = error }
            }
            if let failure { throw failure }
        }
    }

    // MARK: The encoding (shared with `AuditEntry.message`, which the verifier uses)

    static func length(_ count: Int, into bytes: inout [UInt8]) {
        for shift in stride(from: 24, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: count >> shift))
        }
    }

    static func integer(_ value: Int64?, into bytes: inout [UInt8]) {
        guard let value else { return bytes.append(0) }
        bytes.append(2)
        for shift in stride(from: 56, through: 0, by: -8) {
            bytes.append(UInt8(truncatingIfNeeded: value >> shift))
        }
    }

    static func text(_ value: String?, into bytes: inout [UInt8]) {
        guard let value else { return bytes.append(0) }
        bytes.append(1)
        length(value.utf8.count, into: &bytes)
        bytes.append(utf8: value)
    }

    static func blob(_ value: [UInt8], into bytes: inout [UInt8]) {
        bytes.append(3)
        length(value.count, into: &bytes)
        bytes += value
    }

    /// One stored value of a record's bytes, as `Fields` reads it: the bytes of a text or blob
    /// lie in the record.
    enum Field {
        case null
        case integer(Int64)
        case text(UnsafeRawBufferPointer)
        case blob(UnsafeRawBufferPointer)
    }

    /// Reads a record's bytes back, value by value; nil at the end or where the bytes are not a
    /// value (never for what `append` wrote).
    struct Fields: IteratorProtocol {
        let bytes: UnsafeRawBufferPointer
        var offset = 0

        init(_ bytes: UnsafeRawBufferPointer) { self.bytes = bytes }

        mutating func next() -> Field? {
            guard offset < bytes.count else { return nil }
            let type = bytes[offset]
            offset += 1
            func number(_ width: Int) -> UInt64? {
                guard bytes.count - offset >= width else { return nil }
                var value: UInt64 = 0
                for byte in bytes[offset..<(offset + width)] { value = value << 8 | UInt64(byte) }
                offset += width
                return value
            }
            switch type {
            case 0: return .null
            case 2: return number(8).map { .integer(Int64(bitPattern: $0)) }
            case 1, 3:
                guard let count = number(4).map(Int.init), bytes.count - offset >= count else { return nil }
                let value = UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + count)])
                offset += count
                return type == 1 ? .text(value) : .blob(value)
            default: return nil
            }
        }
    }
}
