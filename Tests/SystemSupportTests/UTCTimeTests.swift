import Foundation
import SystemSupport
import Testing

@Suite struct UTCTimeTests {
    @Test(arguments: [
        (0.0, "1970-01-01T00:00:00Z"), (59.999, "1970-01-01T00:00:59Z"), (-1.0, "1969-12-31T23:59:59Z"),
        (951_782_400, "2000-02-29T00:00:00Z"), (1_764_590_485.5, "2025-12-01T12:01:25Z"),
        (4_102_444_799, "2099-12-31T23:59:59Z"),
    ])
    func spellsInstantsAsFoundationsISO8601Does(seconds: Double, expected: String) {
        #expect(UTCTime.iso8601(secondsSince1970: seconds) == expected)
        #expect(Date(timeIntervalSince1970: seconds).formatted(.iso8601) == expected)
    }

    @Test func stampsLogLinesWithTheTimeToTheMillisecond() {
        // Twice across a second boundary's chance: the second stamp may reuse the first's date.
        for _ in 0..<2 {
            let before = Date()
            var out: [UInt8] = Array("x ".utf8)
            ByteWriter.append(to: &out) { UTCTime.writeNowWithMilliseconds(to: &$0) }
            let after = Date()
            let text = String(decoding: out, as: UTF8.self)
            #expect(text.hasPrefix("x "))
            let stamp = text.dropFirst(2)
            #expect(stamp.count == 24, "\(stamp)")
            // `…T12:00:00.123Z`: a point, three digits, Z.
            #expect(stamp.dropFirst(19).first == "." && stamp.hasSuffix("Z"), "\(stamp)")
            #expect(stamp.dropFirst(20).prefix(3).allSatisfy(\.isASCII) && Int(stamp.dropFirst(20).prefix(3)) != nil)
            // Its seconds are those of an instant between before and after.
            let seconds = String(stamp.prefix(19)) + "Z"
            #expect(
                [before, after].map { UTCTime.iso8601(secondsSince1970: $0.timeIntervalSince1970) }.contains(seconds),
                "\(stamp)")
        }
    }
}
