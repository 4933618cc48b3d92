import Foundation
import SystemSupport
import Testing

@Suite struct FilesTests {
    /// A fresh directory under the system's temporary one, removed by the caller.
    static func scratchDirectory() throws -> String {
        let path = NSTemporaryDirectory() + "/files-tests-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
        return path
    }

    @Test func readsEveryByteOfAFileLargerThanOneRead() throws {
        let directory = try Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<(200 << 10) + 7).map { _ in UInt8.random(in: 0...255, using: &generator) }
        try Data(bytes).write(to: URL(fileURLWithPath: directory + "/blob"))
        #expect(try Files.contents(atPath: directory + "/blob") == bytes)
        #expect(try Files.contents(atPath: directory + "/blob", limit: bytes.count) == bytes)
        #expect(throws: Files.Failure.tooLarge(limit: bytes.count - 1)) {
            try Files.contents(atPath: directory + "/blob", limit: bytes.count - 1)
        }
        try Data().write(to: URL(fileURLWithPath: directory + "/empty"))
        #expect(try Files.contents(atPath: directory + "/empty") == [])
    }

    @Test func namesTheErrorOfAMissingFileOrDirectory() throws {
        let directory = try Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(throws: Files.Failure.system(ENOENT)) { try Files.contents(atPath: directory + "/absent") }
        #expect(throws: Files.Failure.system(ENOENT)) { try Files.entries(ofDirectory: directory + "/absent") }
        #expect(throws: Files.Failure.system(ENOTDIR)) {
            try Data("x".utf8).write(to: URL(fileURLWithPath: directory + "/file"))
            return try Files.entries(ofDirectory: directory + "/file")
        }
        #expect(Files.Failure.system(ENOENT).description == "No such file or directory")
    }

    @Test func listsADirectoryWithoutDotEntries() throws {
        let directory = try Self.scratchDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        #expect(try Files.entries(ofDirectory: directory) == [])
        for name in ["10-a.lua", "b.txt", "ü.lua"] {
            try Data().write(to: URL(fileURLWithPath: directory + "/" + name))
        }
        try FileManager.default.createDirectory(atPath: directory + "/sub", withIntermediateDirectories: false)
        #expect(try Files.entries(ofDirectory: directory).sorted() == ["10-a.lua", "b.txt", "sub", "ü.lua"])
    }
}
