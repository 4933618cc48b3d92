import Foundation
import SystemSupport
import Testing

/// The audit writer stores its batches at `SCHED_IDLE` only where it can be raised back to
/// normal priority (docs/audit.md): with `CAP_SYS_NICE`, or an `RLIMIT_NICE` of 20 (the shipped
/// unit's `LimitNICE=+0`). Tried on the real daemon with RLIMIT_NICE 0 (this machine's default),
/// with and without the capability. (The unit's way, RLIMIT_NICE 20 without the capability,
/// cannot be set up here: raising a hard limit needs `CAP_SYS_RESOURCE`, which the test
/// machines' root lacks.)
@Suite("Audit writer priority")
struct WriterPriorityTests {
    /// Starts luaexecd (without `CAP_SYS_NICE` when `dropNice`) and answers the log line where the
    /// audit writer says at which priority it runs, the process's capabilities and nice limit;
    /// then stops it with SIGTERM.
    func writerLine(dropNice: Bool) throws -> (line: String, capabilities: String, limits: String, status: Int32) {
        let directory = NSTemporaryDirectory() + "luaexec-priority-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let log = directory + "/luaexecd.log"
        FileManager.default.createFile(atPath: log, contents: nil)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/setpriv")
        process.arguments = [
            "--bounding-set=\(dropNice ? "-" : "+")sys_nice", "--",
            Stack.binDirectory + "/luaexecd", "--config", Stack.repository + "/packaging/luaexecd.conf",
            "--set", "listen.socket=\(directory)/luaexecd.sock", "--set", "database=\(directory)/luaexec.db",
            "--set", "audit.key=\(directory)/audit.key", "--set", "lua.init_dir=\(Stack.repository)/init.d",
        ]
        process.standardError = try FileHandle(forWritingTo: URL(fileURLWithPath: log))
        process.standardOutput = FileHandle.nullDevice
        try process.run()
        defer { if process.isRunning { kill(process.processIdentifier, SIGKILL) } }

        // Polled: the daemon signals nothing but its log.
        let deadline = MonotonicInstant.now().advanced(by: .seconds(60))
        var line = ""
        while line.isEmpty, process.isRunning, MonotonicInstant.now() < deadline {
            let text = (try? String(contentsOfFile: log, encoding: .utf8)) ?? ""
            line = text.split(separator: "\n").first { $0.contains("the audit writer") }.map(String.init) ?? ""
            if line.isEmpty { pauseThread(for: .milliseconds(20)) }
        }
        let pid = process.processIdentifier
        let status = (try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8)) ?? ""
        let capabilities = status.split(separator: "\n").first { $0.hasPrefix("CapEff:") }.map(String.init) ?? ""
        let limits = ((try? String(contentsOfFile: "/proc/\(pid)/limits", encoding: .utf8)) ?? "")
            .split(separator: "\n").first { $0.hasPrefix("Max nice priority") }.map(String.init) ?? ""
        kill(pid, SIGTERM)
        process.waitUntilExit()
        return (line, capabilities, limits, process.terminationStatus)
    }

    /// Whether a `CapEff:` line of /proc/PID/status has CAP_SYS_NICE (bit 23).
    func hasSysNice(_ line: String) -> Bool {
        guard let hex = line.split(separator: "\t").last, let bits = UInt64(hex, radix: 16) else { return true }
        return bits & (1 << 23) != 0
    }

    /// The hard limit of a `Max nice priority` line of /proc/PID/limits.
    func niceLimit(_ line: String) -> String? {
        line.split(separator: " ", omittingEmptySubsequences: true).suffix(2).first.map(String.init)
    }

    @Test("with CAP_SYS_NICE the writer stores at SCHED_IDLE")
    func withCapability() throws {
        let seen = try writerLine(dropNice: false)
        #expect(hasSysNice(seen.capabilities), "\(seen.capabilities)")
        #expect(seen.line.hasSuffix("the audit writer stores its batches at background priority (SCHED_IDLE)"), "\(seen.line)")
        #expect(seen.status == 0)
    }

    @Test("without it, and with RLIMIT_NICE 0, it stays at normal priority and says why")
    func withoutLimit() throws {
        let seen = try writerLine(dropNice: true)
        #expect(!hasSysNice(seen.capabilities), "\(seen.capabilities)")
        #expect(niceLimit(seen.limits) == "0", "\(seen.limits)")
        #expect(
            seen.line.hasSuffix(
                "the audit writer runs at normal priority: this process may not raise a thread back from SCHED_IDLE (CAP_SYS_NICE, or systemd's LimitNICE=+0, allows it)"
            ), "\(seen.line)")
        #expect(seen.status == 0)
    }
}
