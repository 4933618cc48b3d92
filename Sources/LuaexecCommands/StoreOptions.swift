import AccessControl
import ArgumentParser

#if canImport(Glibc)
import Glibc
#endif

/// Where the tokens live: --database, else `$LUAEXEC_RUN_DIR/luaexec.db`, else the `make run`
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

    func open() throws -> TokenStore {
        let path = resolvedPath
        try actAsOwnerOfDirectory(of: path)
        return try TokenStore(path: path)
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
            throw ValidationError("cannot act as the owner (uid \(info.st_uid)) of \(directory): \(String(cString: strerror(errno)))")
        }
    }
}
