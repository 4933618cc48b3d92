import ArgumentParser

@main
struct Luaexec: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "luaexec",
        abstract: "Manage and use a luaexec appliance.",
        subcommands: [TokenCommand.self])
}
