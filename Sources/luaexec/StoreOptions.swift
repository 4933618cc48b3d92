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
        try TokenStore(path: resolvedPath)
    }
}
