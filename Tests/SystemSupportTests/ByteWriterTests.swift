import Testing

@testable import SystemSupport

@Suite("ByteWriter: pieces in a scratch buffer, appended in order, of any length")
struct ByteWriterTests {
    @Test func appendsAfterWhatTheArrayHolds() {
        var out: [UInt8] = Array("head|".utf8)
        ByteWriter.append(to: &out) { writer in
            writer.literal("a=")
            writer.decimal(42)
            writer.byte(UInt8(ascii: " "))
            writer.utf8("grüße")
            writer.byte(UInt8(ascii: " "))
            writer.hex(0x0F)
            writer.hex(0xA0)
        }
        #expect(String(decoding: out, as: UTF8.self) == "head|a=42 grüße 0fa0")
    }

    @Test("the array is appended to in place: its buffer moves through the writer, never copied")
    func keepsTheArraysBuffer() {
        var out: [UInt8] = [1]
        out.reserveCapacity(4096)
        let before = out.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) }
        for _ in 0..<3 {
            ByteWriter.append(to: &out) { $0.literal("a line of the log\n") }
        }
        #expect(out.withUnsafeBufferPointer { UInt(bitPattern: $0.baseAddress) } == before)
        #expect(out.count == 1 + 3 * 18)
    }

    @Test("pieces that cross the scratch's end, and pieces larger than the whole scratch")
    func crossesTheScratch() {
        let size = ByteWriter.scratchSize
        let big = [UInt8](repeating: UInt8(ascii: "b"), count: size * 3 + 5)
        var expected: [UInt8] = []
        let bytes = ByteWriter.bytes { writer in
            // Single bytes up to one short of the end, then a piece that does not fit in what is left.
            for index in 0..<(size - 1) {
                writer.byte(UInt8(index % 251))
                expected.append(UInt8(index % 251))
            }
            writer.literal("xyz")
            expected += Array("xyz".utf8)
            // Larger than the scratch: goes to the array directly, after what was pending.
            writer.bytes(big)
            expected += big
            // A string exactly the scratch's size, then one byte.
            let exact = String(repeating: "s", count: size)
            writer.utf8(exact)
            expected += Array(exact.utf8)
            writer.byte(UInt8(ascii: "!"))
            expected.append(UInt8(ascii: "!"))
        }
        #expect(bytes.count == expected.count)
        #expect(bytes == expected)
    }

    @Test func formatsNumbers() {
        let text = String(
            decoding: ByteWriter.bytes { writer in
                writer.decimal(0)
                writer.byte(UInt8(ascii: " "))
                writer.decimal(Int.max)
                writer.byte(UInt8(ascii: " "))
                writer.decimal(-Int.max)
                writer.byte(UInt8(ascii: " "))
                writer.decimal(Int.min)
                writer.byte(UInt8(ascii: " "))
                writer.decimal(UInt.max)
                writer.byte(UInt8(ascii: " "))
                writer.digits(7, count: 3)
                writer.byte(UInt8(ascii: " "))
                writer.milliseconds(nanoseconds: 1_499)
                writer.byte(UInt8(ascii: " "))
                writer.milliseconds(nanoseconds: 1_500)
                writer.byte(UInt8(ascii: " "))
                writer.milliseconds(nanoseconds: 3600 * 1_000_000_000)
            }, as: UTF8.self)
        #expect(
            text == "0 9223372036854775807 -9223372036854775807 -9223372036854775808 18446744073709551615 007 0.001 0.002 3600000.000")
    }
}
