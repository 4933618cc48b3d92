import Testing

@testable import SystemSupport

@Suite("Code pages")
struct CodePagesTests {
    /// Six mappings as /proc/PID/smaps lists them (fields abridged): only the read-only private
    /// mappings of files without pages of their own may be dropped.
    static let smaps = """
        55d0c0000000-55d0c0100000 r--p 00000000 fe:00 1328187                    /usr/sbin/luaexecd
        Size:               1024 kB
        Rss:                 660 kB
        Anonymous:             0 kB
        VmFlags: rd mr mw me sd
        55d0c0100000-55d0c0500000 r-xp 00100000 fe:00 1328187                    /usr/sbin/luaexecd
        Size:               4096 kB
        Anonymous:             0 kB
        VmFlags: rd ex mr mw me sd
        55d0c0500000-55d0c0600000 r--p 00500000 fe:00 1328187                    /usr/sbin/luaexecd
        Anonymous:           124 kB
        55d0c0600000-55d0c0700000 rw-p 00600000 fe:00 1328187                    /usr/sbin/luaexecd
        Anonymous:             0 kB
        55d0c0700000-55d0c0800000 rw-p 00000000 00:00 0                          [heap]
        Anonymous:           188 kB
        7f0000000000-7f0000001000 r-xp 00000000 00:00 0                          [vdso]
        Anonymous:             0 kB
        7f0000002000-7f0000003000 r-xp 00001000 fe:00 42                         /usr/lib/x86_64-linux-gnu/lib with space.so
        Anonymous:             0 kB
        7f0000004000-7f0000005000 r-xp 00000000 fe:00 43                         /usr/lib/x86_64-linux-gnu/libbroken.so
        Anonymous:             4 kB
        """

    @Test("read-only file mappings without anonymous pages are dropped; written, writable and unnamed ones are not")
    func plan() {
        #expect(
            CodePages.plan(smaps: Array(Self.smaps.utf8)) == [
                .init(start: 0x55d0_c000_0000, end: 0x55d0_c010_0000),
                .init(start: 0x55d0_c010_0000, end: 0x55d0_c050_0000),
                .init(start: 0x7f00_0000_2000, end: 0x7f00_0000_3000),
            ])
    }

    @Test("this process's own code, as the kernel lists it, is among what would be dropped")
    func ownCode() throws {
        let smaps = try Files.contents(atPath: "/proc/self/smaps")
        let advice = CodePages.plan(smaps: smaps)
        let text = String(decoding: smaps, as: UTF8.self)
        let executable = CommandLine.arguments[0].split(separator: "/").last.map(String.init) ?? ""
        let code = text.split(separator: "\n").filter { $0.contains(" r-xp ") && $0.hasSuffix("/" + executable) }
        #expect(!code.isEmpty, "no code mapping of \(executable)")
        for line in code {
            let bounds = line.prefix { $0 != " " }.split(separator: "-").compactMap { UInt($0, radix: 16) }
            #expect(advice.contains(.init(start: bounds[0], end: bounds[1])), "\(line)")
        }
    }

    @Test("releasing reads smaps a buffer at a time, advises what plan names, and the process runs on")
    func release() throws {
        let planned = CodePages.plan(smaps: try Files.contents(atPath: "/proc/self/smaps")).count
        #expect(planned > 0)
        #expect(CodePages.releaseAfterStartup() == planned)
        // The code just dropped runs again from the page cache.
        #expect(CodePages.plan(smaps: Array(Self.smaps.utf8)).count == 3)
    }
}
