#if canImport(Glibc)
import Glibc
#endif

/// Small file helpers for tests, with POSIX calls only.
enum FileFixture {
    struct Failure: Error { var message: String }

    static func write(_ path: String, _ contents: String) throws {
        let directory = String(path[..<path.lastIndex(of: "/")!])
        mkdir(directory, 0o755)
        guard let file = fopen(path, "w") else { throw Failure(message: "cannot create \(path)") }
        fputs(contents, file)
        fclose(file)
    }

    /// A new directory of its own under /tmp (mkdtemp), named after `prefix`.
    static func temporaryDirectory(_ prefix: String) throws -> String {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        guard let made = template.withUnsafeMutableBufferPointer({ mkdtemp($0.baseAddress!) }) else {
            throw Failure(message: "cannot make a directory under /tmp")
        }
        return String(cString: made)
    }

    static func remove(_ directory: String) {
        guard let dir = opendir(directory) else { return }
        while let entry = readdir(dir) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name != "." && name != ".." { unlink(directory + "/" + name) }
        }
        closedir(dir)
        rmdir(directory)
    }
}
