#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Whole-file reads and directory listings with the C library. luaexecd's start-up (the config
/// file, the init scripts) reads through these rather than Foundation's FileManager, whose code
/// would otherwise stay resident for the daemon's whole life (docs/packaging.md).
public enum Files {
    public enum Failure: Error, Equatable, CustomStringConvertible {
        /// The call failed with this errno.
        case system(Int32)
        /// The file is larger than the caller's limit.
        case tooLarge(limit: Int)

        public var description: String {
            switch self {
            case .system(let code): systemErrorText(code)
            case .tooLarge(let limit): "over \(limit) bytes"
            }
        }
    }

    /// The bytes of the file at `path`, at most `limit` of them.
    public static func contents(atPath path: String, limit: Int = .max) throws(Failure) -> [UInt8] {
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw .system(errno) }
        defer { close(fd) }
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 << 10)
        while true {
            let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if count < 0 {
                if errno == EINTR { continue }
                throw .system(errno)
            }
            if count == 0 { return bytes }
            guard bytes.count + count <= limit else { throw .tooLarge(limit: limit) }
            bytes += chunk[..<count]
        }
    }

    /// The names in the directory at `path`, without `.` and `..`, in no particular order.
    public static func entries(ofDirectory path: String) throws(Failure) -> [String] {
        guard let directory = opendir(path) else { throw .system(errno) }
        defer { closedir(directory) }
        var names: [String] = []
        while true {
            errno = 0
            guard let entry = readdir(directory) else { break }
            let name = withUnsafePointer(to: &entry.pointee.d_name) {
                $0.withMemoryRebound(to: CChar.self, capacity: MemoryLayout.size(ofValue: $0.pointee)) {
                    String(cString: $0)
                }
            }
            if name != "." && name != ".." { names.append(name) }
        }
        guard errno == 0 else { throw .system(errno) }
        return names
    }
}
