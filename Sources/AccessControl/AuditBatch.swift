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
/// a zero byte, the previous MAC, `seq` the same way, and these bytes (`AuditTrail.append`),
/// which are stored as they are, between `seq` and the MAC (`AuditStoredBatch`).
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
    /// The records' bytes, all together.
    public var byteCount: Int { bytes.count }
    /// The bytes the batch holds room for: what it keeps after `removeAll`.
    public var byteCapacity: Int { bytes.capacity }

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
    ///
    /// On the request path: the record's size is counted first, the buffer grown once, and the
    /// fields written through a pointer (`Writer`), not appended value by value and byte by byte
    /// (each `append` checks the array's uniqueness and capacity: ~4,000 instructions a record,
    /// against ~1,500 so; bench/NOTES.md). The body's digest comes as bytes where they lie, not as
    /// a generic: called from another module, a generic was not specialized, and looked up
    /// `Optional`'s metadata for its type at every record (~650 instructions).
    public mutating func append(
        at: Int64, kind: String, requestID: String?, client: String?, token: String?, scope: String?,
        method: String?, path: String?, status: Int64?, error: String?, bytesIn: Int64?, bytesOut: Int64?,
        durationMicros: Int64?, bodySHA256: UnsafeRawBufferPointer?, detail: String?
    ) {
        func size(_ text: String?) -> Int { text.map { 5 + $0.utf8.count } ?? 1 }
        func size(_ integer: Int64?) -> Int { integer == nil ? 1 : 9 }
        let digestCount = bodySHA256?.count
        var count = 9 + size(kind) + size(requestID) + size(client) + size(token) + size(scope) + size(method)
        count += size(path) + size(status) + size(error) + size(bytesIn) + size(bytesOut) + size(durationMicros)
        count += digestCount.map { 5 + $0 } ?? 1
        count += size(detail)
        let start = bytes.count
        // Room made by copying zeros (one `memcpy`); `repeatElement` appends them one by one.
        if count <= Self.zeros.count {
            bytes.append(contentsOf: Self.zeros[..<count])
        } else {
            bytes.append(contentsOf: repeatElement(0, count: count))
        }
        bytes.withUnsafeMutableBytes { buffer in
            var out = Writer(at: buffer.baseAddress! + start)
            out.integer(at)
            out.text(kind)
            out.text(requestID)
            out.text(client)
            out.text(token)
            out.text(scope)
            out.text(method)
            out.text(path)
            out.integer(status)
            out.text(error)
            out.integer(bytesIn)
            out.integer(bytesOut)
            out.integer(durationMicros)
            if let bodySHA256 {
                out.blob(bodySHA256)
            } else {
                out.null()
            }
            out.text(detail)
            assert(out.at == buffer.baseAddress! + start + count)
        }
        ends.append(bytes.count)
    }

    private static let zeros = [UInt8](repeating: 0, count: 1024)

    /// Writes values as `append` lays them out, where `at` points; the caller has made room.
    private struct Writer {
        var at: UnsafeMutableRawPointer

        mutating func null() {
            at.storeBytes(of: 0, as: UInt8.self)
            at += 1
        }

        mutating func integer(_ value: Int64?) {
            guard let value else { return null() }
            at.storeBytes(of: 2, as: UInt8.self)
            at.storeBytes(of: value.bigEndian, toByteOffset: 1, as: Int64.self)
            at += 9
        }

        mutating func text(_ value: String?) {
            guard var value else { return null() }
            value.withUTF8 { put(1, UnsafeRawBufferPointer($0)) }
        }

        mutating func blob(_ value: UnsafeRawBufferPointer) { put(3, value) }

        private mutating func put(_ type: UInt8, _ value: UnsafeRawBufferPointer) {
            at.storeBytes(of: type, as: UInt8.self)
            at.storeBytes(of: UInt32(truncatingIfNeeded: value.count).bigEndian, toByteOffset: 1, as: UInt32.self)
            if let base = value.baseAddress { (at + 5).copyMemory(from: base, byteCount: value.count) }
            at += 5 + value.count
        }
    }

    public mutating func append(_ entry: AuditEntry) {
        Self.withBytes(of: entry.bodySHA256) { digest in
            append(
                at: entry.at, kind: entry.kind, requestID: entry.requestID, client: entry.client, token: entry.token,
                scope: entry.scope, method: entry.method, path: entry.path, status: entry.status, error: entry.error,
                bytesIn: entry.bytesIn, bytesOut: entry.bytesOut, durationMicros: entry.durationMicros,
                bodySHA256: digest, detail: entry.detail)
        }
    }

    /// Calls `body` with `digest`'s bytes where they lie, or with nil: `append`'s `bodySHA256`.
    /// Inlinable, so that it is specialized for the digest's type where it is called, as
    /// `append` itself could not be (above).
    @inlinable
    public static func withBytes<Digest: ContiguousBytes, Result>(
        of digest: Digest?, _ body: (UnsafeRawBufferPointer?) -> Result
    ) -> Result {
        guard let digest else { return body(nil) }
        return digest.withUnsafeBytes { body($0) }
    }

    /// Appends `other`'s records after these.
    public mutating func append(contentsOf other: AuditBatch) {
        let base = bytes.count
        bytes += other.bytes
        ends += other.ends.lazy.map { $0 + base }
    }

    /// How many of the first records lie within the first `bytes` bytes.
    public func count(fittingIn bytes: Int) -> Int {
        var low = 0
        var high = ends.count
        while low < high {
            let middle = (low + high) / 2
            if ends[middle] <= bytes { low = middle + 1 } else { high = middle }
        }
        return low
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
    func forEach(_ body: (UnsafeRawBufferPointer) -> Void) {
        bytes.withUnsafeBytes { all in
            var start = 0
            for end in ends {
                body(UnsafeRawBufferPointer(rebasing: all[start..<end]))
                start = end
            }
        }
    }

    /// A record's `at`, its first field (0 if the bytes do not start with an integer).
    static func at(of fields: UnsafeRawBufferPointer) -> Int64 {
        var values = Fields(fields)
        if case .integer(let at)? = values.next() { return at }
        return 0
    }

    // MARK: The encoding (shared with `AuditEntry.message` and the stored batches)

    // Each fixed-size number is appended as one run of bytes, not byte by byte: an `append` of
    // one byte checks the buffer's uniqueness and capacity each time, and a record has a
    // hundred such bytes (bench/NOTES.md).
    static func length(_ count: Int, into bytes: inout [UInt8]) {
        withUnsafeBytes(of: UInt32(truncatingIfNeeded: count).bigEndian) { bytes.append(contentsOf: $0) }
    }

    static func integer(_ value: Int64?, into bytes: inout [UInt8]) {
        guard let value else { return bytes.append(0) }
        bytes.append(2)
        withUnsafeBytes(of: value.bigEndian) { bytes.append(contentsOf: $0) }
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

    /// A stored value with the type it has (a number stored as text gives other bytes).
    static func value(_ value: SQLiteValue, into bytes: inout [UInt8]) {
        switch value {
        case .null: bytes.append(0)
        case .text(let text): self.text(text, into: &bytes)
        case .integer(let number): integer(number, into: &bytes)
        case .blob(let blob): self.blob(blob, into: &bytes)
        }
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
