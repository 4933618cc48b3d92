import ArgumentParser

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
}
