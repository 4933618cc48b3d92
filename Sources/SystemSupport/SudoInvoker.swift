#if canImport(Glibc)
import Glibc
#endif

/// Who called `sudo` to run this process, from the process tree rather than the environment:
/// `SUDO_USER` is a variable any process may set, so a command run by a chunk (`io.popen` under
/// the full profile) could put a change on an administrator's name in the audit trail.
///
/// An ancestor named `sudo` whose effective user is root and whose real user is not is the
/// `sudo` an administrator ran (only root can make a process whose effective user is root, and
/// `sudo` keeps the caller as its real user); its real user is the one who called it. A `sudo`
/// whose real user is root too (its monitor, under `use_pty`) is passed over.
public enum SudoInvoker {
    /// The uid of the user who ran `sudo` above this process, or nil.
    public static func uid() -> UInt32? {
        uid(startingAt: getppid()) { pid in
            let bytes = try? Files.contents(atPath: "/proc/\(pid)/status", limit: 64 << 10)
            return bytes.map { String(decoding: $0, as: UTF8.self) }
        }
    }

    /// As `uid()`, walking up from `pid` with `status` giving a process's `/proc/PID/status`.
    static func uid(startingAt pid: Int32, status: (Int32) -> String?) -> UInt32? {
        var pid = pid
        // A few levels: sudo, its monitor, a shell or make between them and luaexec.
        for _ in 0..<16 where pid > 1 {
            guard let text = status(pid), let fields = Fields(text) else { return nil }
            if fields.name == "sudo", fields.effectiveUID == 0, fields.realUID != 0 { return fields.realUID }
            pid = fields.parent
        }
        return nil
    }

    struct Fields {
        var name = ""
        var parent: Int32 = 0
        var realUID: UInt32 = 0
        var effectiveUID: UInt32 = 0

        init?(_ text: String) {
            var seen = 0
            for line in text.split(separator: "\n") {
                let parts = line.split(whereSeparator: { $0 == "\t" || $0 == " " })
                guard let key = parts.first else { continue }
                switch key {
                case "Name:":
                    name = parts.dropFirst().joined(separator: " ")
                    seen += 1
                case "PPid:":
                    guard parts.count > 1, let value = Int32(parts[1]) else { return nil }
                    parent = value
                    seen += 1
                case "Uid:":
                    guard parts.count > 2, let real = UInt32(parts[1]), let effective = UInt32(parts[2]) else {
                        return nil
                    }
                    (realUID, effectiveUID) = (real, effective)
                    seen += 1
                default: continue
                }
            }
            if seen < 3 { return nil }
        }
    }
}
