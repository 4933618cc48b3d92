import SystemSupport

/// Formatting for the `Server-Timing` value of every response.
enum ByteFormat {
    /// `prefix` and the milliseconds as a string: a small one, stored inline without allocating,
    /// for `Server-Timing: lua;dur=0.042` on every response.
    static func milliseconds(nanoseconds: Int64, after prefix: StaticString) -> String {
        // Formatted once into the stack, then made a string: at most 20 digits, a point, three.
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: prefix.utf8CodeUnitCount + 24) { buffer in
            var count = 0
            prefix.withUTF8Buffer { for byte in $0 { buffer[count] = byte; count += 1 } }
            ByteWriter.formatMilliseconds(nanoseconds: nanoseconds) { buffer[count] = $0; count += 1 }
            return String(decoding: UnsafeBufferPointer(rebasing: buffer[..<count]), as: UTF8.self)
        }
    }
}
