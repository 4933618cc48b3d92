#if canImport(Glibc)
import Glibc
#endif

/// The pages of code and read-only data that start-up ran and read, given back once luaexecd
/// serves (SPEC P2's idle footprint).
///
/// An executable's and its libraries' code is mapped from their files, and the kernel maps up to
/// 64 KiB around each page a process touches (fault-around), so start-up (the config, the
/// database's schema, the init scripts) leaves megabytes resident that serving never runs again.
/// `releaseAfterStartup` gives each read-only private mapping of a file `MADV_DONTNEED`: unmapped
/// now, the pages stay in the page cache, shared with every other process, and come back as
/// serving runs them (64 KiB at a time again: the order file keeps the serving code together).
/// Measured on the release build, after start-up and one request: 7.2–7.9 MB resident against
/// 10.0–10.4 MB (docs/packaging.md, "Idle footprint").
///
/// Only what can be mapped again from its file is dropped: a mapping holding pages of its own
/// (`Anonymous` in smaps: relocated data, a debugger's breakpoints) is left as it is, since
/// dropping those would lose what was written to them. Linux only; elsewhere nothing happens.
public enum CodePages {
    /// What `releaseAfterStartup` does to one mapping.
    struct Advice: Equatable, Sendable {
        let start: UInt
        let end: UInt
    }

    /// Unmaps the read-only file mappings' resident pages; returns how many mappings it advised.
    @discardableResult
    public static func releaseAfterStartup() -> Int {
        #if os(Linux)
        let fd = open("/proc/self/smaps", O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { return 0 }
        defer { close(fd) }
        // Read through a buffer on the stack, a line at a time: smaps is a few hundred KiB, and a
        // heap buffer that size would stay in the idle footprint this is here to shrink.
        var planner = Planner()
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: 16 << 10) { buffer in
            var filled = 0
            while true {
                let count = read(fd, buffer.baseAddress! + filled, buffer.count - filled)
                if count < 0, errno == EINTR { continue }
                guard count > 0 else { break }
                filled += count
                var lineStart = 0
                while let end = buffer[lineStart..<filled].firstIndex(of: UInt8(ascii: "\n")) {
                    planner.line(UnsafeBufferPointer(rebasing: buffer[lineStart..<end]))
                    lineStart = end + 1
                }
                // A line longer than the buffer (no smaps line is) is skipped, not split.
                if lineStart == 0, filled == buffer.count { lineStart = filled }
                filled -= lineStart
                if filled > 0 { memmove(buffer.baseAddress!, buffer.baseAddress! + lineStart, filled) }
            }
            if filled > 0 { planner.line(UnsafeBufferPointer(rebasing: buffer[..<filled])) }
        }
        let advice = planner.finish()
        for mapping in advice {
            let length = Int(mapping.end - mapping.start)
            _ = madvise(UnsafeMutableRawPointer(bitPattern: mapping.start), length, MADV_DONTNEED)
        }
        return advice.count
        #else
        return 0
        #endif
    }

    /// The mappings of `smaps` (the text of /proc/PID/smaps) to drop: private, read-only
    /// (`r-xp`, `r--p`), backed by a file (a path), without anonymous pages.
    static func plan(smaps: [UInt8]) -> [Advice] {
        var planner = Planner()
        smaps.withUnsafeBufferPointer { text in
            for line in text.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: false) {
                planner.line(UnsafeBufferPointer(rebasing: line))
            }
        }
        return planner.finish()
    }

    /// Reads smaps a line at a time: a mapping's header, then its fields.
    struct Planner {
        private var advice: [Advice] = []
        private var pending: (advice: Advice, anonymous: Bool)?

        mutating func line(_ line: UnsafeBufferPointer<UInt8>) {
            let fields = line.split(separator: UInt8(ascii: " "), maxSplits: 5, omittingEmptySubsequences: true)
            guard let first = fields.first else { return }
            if first.last == UInt8(ascii: ":") {
                // "Anonymous:  4 kB": a page of the mapping was written (copy on write).
                if first.elementsEqual("Anonymous:".utf8), fields.count > 1, !fields[1].elementsEqual("0".utf8) {
                    pending?.anonymous = true
                }
                return
            }
            // A mapping's header: "start-end perms offset device inode path".
            flush()
            // The path follows the inode after a run of spaces, which the last field keeps.
            guard fields.count == 6, fields[5].first(where: { $0 != UInt8(ascii: " ") }) == UInt8(ascii: "/"),
                fields[1].elementsEqual("r-xp".utf8) || fields[1].elementsEqual("r--p".utf8)
            else { return }
            let bounds = first.split(separator: UInt8(ascii: "-"))
            guard bounds.count == 2, let start = hex(bounds[0]), let end = hex(bounds[1]), start < end else { return }
            pending = (Advice(start: start, end: end), false)
        }

        mutating func finish() -> [Advice] {
            flush()
            return advice
        }

        private mutating func flush() {
            if let done = pending, !done.anonymous { advice.append(done.advice) }
            pending = nil
        }
    }

    private static func hex(_ digits: Slice<UnsafeBufferPointer<UInt8>>) -> UInt? {
        guard !digits.isEmpty, digits.count <= 16 else { return nil }
        var value: UInt = 0
        for digit in digits {
            switch digit {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): value = value << 4 | UInt(digit - UInt8(ascii: "0"))
            case UInt8(ascii: "a")...UInt8(ascii: "f"): value = value << 4 | UInt(digit - UInt8(ascii: "a") + 10)
            default: return nil
            }
        }
        return value
    }
}
