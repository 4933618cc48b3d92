/// Bytes formatted into a scratch buffer on the stack, then appended to an array in one copy:
/// for what every request formats (its audit line, its response head, its log line).
///
/// Each of those is some thirty small pieces, and `Array.append(contentsOf:)` costs about 90
/// instructions a piece for its uniqueness, capacity and sequence checks; a piece here costs a
/// bounds check and a copy (measured with callgrind, bench/NOTES.md). When a piece does not fit
/// in the room left, the scratch is appended first, and a piece larger than the whole scratch
/// goes to the array directly: any length can be written.
public struct ByteWriter: ~Copyable {
    // Inlinable, with what it touches: a piece is a few instructions only when the call to
    // write it disappears into the caller, in another module.
    @usableFromInline var out: [UInt8]
    @usableFromInline let scratch: UnsafeMutableBufferPointer<UInt8>
    @usableFromInline var used = 0

    /// 1 KiB: `withUnsafeTemporaryAllocation` takes up to that from the stack unconditionally.
    static let scratchSize = 1024

    init(out: consuming [UInt8], scratch: UnsafeMutableBufferPointer<UInt8>) {
        self.out = out
        self.scratch = scratch
    }

    /// Runs `body` with a writer, then appends what it wrote to `out`.
    public static func append(to out: inout [UInt8], _ body: (inout ByteWriter) -> Void) {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: scratchSize) { scratch in
            // The array moves into the writer and back: a copy would make its buffer shared,
            // and the first append would copy it (and glibc would consolidate its free lists
            // for the copy, once the array passed 1 KiB).
            var taken: [UInt8] = []
            swap(&taken, &out)
            var writer = ByteWriter(out: consume taken, scratch: scratch)
            body(&writer)
            out = writer.finish()
        }
    }

    /// What `body` writes, as a new array.
    public static func bytes(_ body: (inout ByteWriter) -> Void) -> [UInt8] {
        var out: [UInt8] = []
        append(to: &out, body)
        return out
    }

    consuming func finish() -> [UInt8] {
        flush()
        return out
    }

    @usableFromInline mutating func flush() {
        guard used > 0 else { return }
        out.append(contentsOf: UnsafeBufferPointer(rebasing: scratch[..<used]))
        used = 0
    }

    @inlinable @inline(__always)
    public mutating func byte(_ byte: UInt8) {
        if used == scratch.count { flush() }
        scratch[used] = byte
        used += 1
    }

    @inlinable @inline(__always)
    public mutating func bytes(_ bytes: UnsafeBufferPointer<UInt8>) {
        guard let source = bytes.baseAddress, !bytes.isEmpty else { return }
        if bytes.count > scratch.count - used {
            flush()
            guard bytes.count <= scratch.count else {
                out.append(contentsOf: bytes)
                return
            }
        }
        (scratch.baseAddress! + used).update(from: source, count: bytes.count)
        used += bytes.count
    }

    @inlinable
    public mutating func bytes(_ bytes: [UInt8]) {
        bytes.withUnsafeBufferPointer { self.bytes($0) }
    }

    /// A literal's bytes.
    @inlinable @inline(__always)
    public mutating func literal(_ literal: StaticString) {
        literal.withUTF8Buffer { bytes($0) }
    }

    /// A string's UTF-8 bytes, where they lie.
    @inlinable @inline(__always)
    public mutating func utf8(_ string: String) {
        withUTF8Bytes(of: string) { bytes($0) }
    }

    @inlinable
    public mutating func decimal(_ value: Int) {
        if value < 0 {
            byte(UInt8(ascii: "-"))
            // -(Int.min) overflows; no caller formats it, but it must not trap.
            decimal(UInt(value.magnitude))
        } else {
            decimal(UInt(value))
        }
    }

    @inlinable
    public mutating func decimal(_ value: UInt) {
        Self.formatDecimal(value) { byte($0) }
    }

    /// `value` in exactly `count` (at least 1) decimal digits, with leading zeros (the fields of
    /// a time).
    @inlinable
    public mutating func digits(_ value: Int, count: Int) {
        var divisor = 1
        for _ in 1..<count { divisor *= 10 }
        while divisor > 0 {
            byte(UInt8(ascii: "0") + UInt8(value / divisor % 10))
            divisor /= 10
        }
    }

    /// Two lower-case hex digits.
    @inlinable
    public mutating func hex(_ value: UInt8) {
        byte(Self.hexDigit(value >> 4))
        byte(Self.hexDigit(value & 0xF))
    }

    @inlinable
    public static func hexDigit(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }

    /// Milliseconds with microsecond precision, rounded to the nearest microsecond: `2.500`.
    @inlinable
    public mutating func milliseconds(nanoseconds: Int64) {
        Self.formatMilliseconds(nanoseconds: nanoseconds) { byte($0) }
    }

    /// The digits of `value`, most significant first, each handed to `put`.
    @inlinable
    public static func formatDecimal(_ value: UInt, _ put: (UInt8) -> Void) {
        // Least significant first into a buffer on the stack, then out in order: a loop the
        // compiler inlines with `put`, where a recursion made a call and a closure per digit.
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)
        withUnsafeMutableBytes(of: &digits) { buffer in
            var rest = value
            var start = buffer.count
            repeat {
                start -= 1
                buffer[start] = UInt8(ascii: "0") &+ UInt8(truncatingIfNeeded: rest % 10)
                rest /= 10
            } while rest > 0
            for index in start..<buffer.count { put(buffer[index]) }
        }
    }

    /// `nanoseconds` as `milliseconds(nanoseconds:)` writes it, each byte handed to `put`.
    @inlinable
    public static func formatMilliseconds(nanoseconds: Int64, _ put: (UInt8) -> Void) {
        // Elapsed times, at most hours: never negative (clamped), no overflow.
        let micros = (max(0, nanoseconds) + 500) / 1000
        formatDecimal(UInt(micros / 1000), put)
        put(UInt8(ascii: "."))
        let fraction = Int(micros % 1000)
        put(UInt8(ascii: "0") + UInt8(fraction / 100))
        put(UInt8(ascii: "0") + UInt8(fraction / 10 % 10))
        put(UInt8(ascii: "0") + UInt8(fraction % 10))
    }
}

/// `body` with the UTF-8 bytes of `string` where they lie (native strings are contiguous
/// UTF-8), else in a copy. `String.withUTF8` needs a `var`: a copy of the string, retained and
/// released, for every field of every request's log line.
@inlinable
public func withUTF8Bytes<R>(of string: String, _ body: (UnsafeBufferPointer<UInt8>) -> R) -> R {
    if let result = string.utf8.withContiguousStorageIfAvailable(body) { return result }
    return Array(string.utf8).withUnsafeBufferPointer(body)
}
