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
