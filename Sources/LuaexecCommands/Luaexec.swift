import ArgumentParser

#if canImport(Glibc)
    import Glibc
#endif

/// The `luaexec` command line. Its own executable in development; in the Debian package,
/// `/usr/bin/luaexec` is a link to luaexecd, which runs this when called by that name (one
/// statically linked Swift runtime on the appliance's flash instead of two).
public struct Luaexec: ParsableCommand {
    public init() {}

    public static let configuration = CommandConfiguration(
        commandName: "luaexec",
        abstract: "Manage and use a luaexec appliance.",
        subcommands: [
            LoginCommand.self, EvalCommand.self, ReplCommand.self, RemotesCommand.self, LogoutCommand.self,
            TokenCommand.self, EndpointsCommand.self, ConfigCommand.self, AsideCommand.self, BackupCommand.self,
            RestoreCommand.self, AuditCommand.self, ScriptCommand.self,
        ])

    /// As ArgumentParser's `main`, but a command that fails while it runs (a database that
    /// will not open, a backup refused) says so as the client commands do, `luaexec: ...`, not
    /// ArgumentParser's `Error: ...`, which stays for what was typed wrong (with the usage, 64).
    public static func main() {
        var command: any ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            exit(withError: error)
        }
        do {
            try command.run()
        } catch {
            // Help asked for (0), a usage error (64) or an exit code a command chose: as
            // ArgumentParser says them.
            guard exitCode(for: error) == .failure, !(error is ExitCode) else { exit(withError: error) }
            writeError(terminalSafe("luaexec: \(message(for: error))\n"))
            Glibc.exit(ExitCode.failure.rawValue)
        }
    }
}
