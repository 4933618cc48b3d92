import SystemSupport
import AccessControl
import ArgumentParser

#if canImport(Glibc)
import Glibc
#endif

/// Where the database lives: --database, else `$LUAEXEC_RUN_DIR/luaexec.db`, else the `make run`
/// state of the current directory (`.run/luaexec.db`) when there is one, else the system's.
struct StoreOptions: ParsableArguments {
    @Option(help: "SQLite database of luaexecd (default: see above).")
    var database: String?

    static let systemDatabase = "/var/lib/luaexec/luaexec.db"

    var resolvedPath: String {
        if let database { return database }
        if let runDir = getenv("LUAEXEC_RUN_DIR").map({ String(cString: $0) }), !runDir.isEmpty {
            return runDir + "/luaexec.db"
        }
        if access(".run/luaexec.db", F_OK) == 0 { return ".run/luaexec.db" }
        return Self.systemDatabase
    }

    func open() throws -> LuaexecDatabase {
        let path = resolvedPath
        _ = Self.invoker  // who ran the command, before it takes the database owner's identity
        try actAsOwnerOfDirectory(of: path)
        do {
            return try LuaexecDatabase(path: path)
        } catch {
            // Not installed here, or a `make run` elsewhere: say where else the command looks.
            guard database == nil, path == Self.systemDatabase, access(path, F_OK) != 0 else { throw error }
            throw StoreError(
                error.description + " (the package's database; for another, pass --database FILE, or set"
                    + " LUAEXEC_RUN_DIR to a run directory, or run the command where `make run` keeps .run/)",
                kind: error.kind)
        }
    }

    /// The audit trail's key for this database: `given`, else `audit.key` beside the database
    /// (`make run`'s `.run/audit.key`) when there is one, else the package's.
    func auditKeyPath(_ given: String? = nil) -> String {
        if let given { return given }
        let path = resolvedPath
        let directory = path.lastIndex(of: "/").map { String(path[..<$0]) } ?? "."
        let beside = (directory.isEmpty ? "/" : directory) + "/audit.key"
        return access(beside, F_OK) == 0 ? beside : Self.systemAuditKey
    }

    static let systemAuditKey = "/etc/luaexec/audit.key"

    /// Who runs the command, as the audit trail names a change made on the box: the user, and
    /// the one who called sudo, found in the process tree (`SudoInvoker`), never in
    /// `SUDO_USER`, which any process may set.
    static let invoker: String = {
        func name(_ uid: uid_t) -> String {
            getpwuid(uid).flatMap { $0.pointee.pw_name.map { String(cString: $0) } } ?? "uid \(uid)"
        }
        let user = name(getuid())
        guard let sudo = SudoInvoker.uid(), sudo != getuid() else { return user }
        return "\(user) (sudo by \(name(sudo)))"
    }()

    /// A change made on the box, as the audit trail records it; nil when there is no key file
    /// (nothing to chain with: luaexecd has not made one yet). A key that exists but cannot be
    /// read is said on standard error, and the change is made without its record.
    func auditRecord(_ detail: String) -> (entry: AuditEntry, key: AuditKey)? {
        let path = auditKeyPath()
        guard access(path, F_OK) == 0 else { return nil }
        do {
            let key = try AuditKey.load(path: path)
            var now = timespec()
            clock_gettime(CLOCK_REALTIME, &now)
            let at = Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
            return (AuditEntry(at: at, kind: "cli", client: Self.invoker, detail: detail), key)
        } catch {
            StandardErrorStream.write("luaexec: warning: not recorded in the audit trail: \(error)\n")
            return nil
        }
    }

    /// Records `detail` in `database`'s audit trail (see `auditRecord`).
    func recordChange(_ detail: String, in database: LuaexecDatabase) {
        guard let (entry, key) = auditRecord(detail) else { return }
        do {
            try AuditTrail(sharing: database).append([entry], key: key, now: entry.at)
        } catch {
            StandardErrorStream.write("luaexec: warning: not recorded in the audit trail: \(error)\n")
        }
    }

    /// Run as root on a database whose directory belongs to another user (the package's
    /// /var/lib/luaexec, owned by luaexec), takes that user's identity first: a database or
    /// journal that root created there would be unwritable for luaexecd.
    private func actAsOwnerOfDirectory(of path: String) throws {
        guard geteuid() == 0 else { return }
        let slash = path.lastIndex(of: "/")
        let directory = slash.map { $0 == path.startIndex ? "/" : String(path[..<$0]) } ?? "."
        var info = stat()
        guard stat(directory, &info) == 0, info.st_uid != 0 else { return }
        guard setgroups(0, nil) == 0, setgid(info.st_gid) == 0, setuid(info.st_uid) == 0 else {
            throw ValidationError("cannot act as the owner (uid \(info.st_uid)) of \(directory): \(systemErrorText())")
        }
    }
}
