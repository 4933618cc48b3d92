import Foundation
import RemoteClient
import Testing

/// `luaexec script diff`'s own unified diff, byte for byte against GNU diff's `diff -u` on the
/// same files (cases where the shortest edit is unique, so both must find the same one).
@Suite("Client: the unified diff of luaexec script diff")
struct UnifiedDiffTests {
    static let ten = (1...10).map { "line \($0)\n" }.joined()

    @Test(
        "the same hunks, ranges and no-newline markers as diff -u",
        arguments: [
            ("", "one\n"),
            ("one\n", ""),
            ("one\n", "one"),
            ("one", "two"),
            (ten, "first\n" + ten),
            (ten, ten + "last\n"),
            (ten, ten.replacingOccurrences(of: "line 5\n", with: "")),
            // Changes 6 lines apart share a hunk; 7 apart make two.
            (
                ten,
                ten.replacingOccurrences(of: "line 1\n", with: "one\n").replacingOccurrences(
                    of: "line 8\n", with: "eight\n")
            ),
            (
                ten,
                ten.replacingOccurrences(of: "line 1\n", with: "one\n").replacingOccurrences(
                    of: "line 9\n", with: "nine\n")
            ),
            (ten, ten.replacingOccurrences(of: "line 3\n", with: "three\nthree and a half\n")),
            ("a\r\nb\n", "a\nb\n"),
        ])
    func matchesGNUDiff(old: String, new: String) throws {
        let directory = NSTemporaryDirectory() + "luaexec-diff-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        try old.write(toFile: directory + "/old", atomically: true, encoding: .utf8)
        try new.write(toFile: directory + "/new", atomically: true, encoding: .utf8)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/diff")
        process.arguments = ["-u", "--label", "old", "--label", "new", directory + "/old", directory + "/new"]
        let pipe = Pipe()
        process.standardOutput = pipe
        try process.run()
        let expected = pipe.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 1)
        let ours = UnifiedDiff.render(old: Array(old.utf8), new: Array(new.utf8), oldLabel: "old", newLabel: "new")
        #expect(String(decoding: ours ?? [], as: UTF8.self) == String(decoding: expected, as: UTF8.self))
    }

    @Test("the same bytes are no diff")
    func same() {
        #expect(UnifiedDiff.render(old: Array("x\n".utf8), new: Array("x\n".utf8), oldLabel: "a", newLabel: "b") == nil)
        #expect(UnifiedDiff.render(old: [], new: [], oldLabel: "a", newLabel: "b") == nil)
    }

    @Test("two unrelated long files: the middle replaced whole past the edit bound, still a correct diff")
    func unrelated() throws {
        let old = (1...3000).map { "old \($0)\n" }.joined()
        let new = (1...3000).map { "new \($0)\n" }.joined()
        let diff = try #require(
            UnifiedDiff.render(old: Array(old.utf8), new: Array(new.utf8), oldLabel: "a", newLabel: "b"))
        let text = String(decoding: diff, as: UTF8.self)
        #expect(text.hasPrefix("--- a\n+++ b\n@@ -1,3000 +1,3000 @@\n-old 1\n"))
        #expect(text.split(separator: "\n").filter { $0.hasPrefix("-old") }.count == 3000)
        #expect(text.split(separator: "\n").filter { $0.hasPrefix("+new") }.count == 3000)
    }
}
