import AccessControl
import ArgumentParser

/// `luaexec config`: the config store on the box (SPEC V5). A change reaches the running
/// luaexecd within a quarter second, and the functions scripts registered for the path run.
struct ConfigCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "Read and change the config store that scripts read with config.get.",
        subcommands: [Get.self, Set.self, Unset.self, List.self])

    struct Get: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Print a path's value; exit 1 when it is not set.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The path, e.g. sip.account.user.") var path: String

        func run() throws {
            guard let value = try StateStore(sharing: store.open()).config(path) else {
                throw ValidationErrorExit("'\(path)' is not set")
            }
            print(value)
        }
    }

    struct Set: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Set a path; the running luaexecd runs the functions registered for it.",
            discussion: """
                Without --type the value is a boolean for true or false, an integer or a number \
                when it reads as one, else a string.
                """)
        @OptionGroup var store: StoreOptions
        @Argument(help: "The path: letters, digits, '.', '_', '-', '/'.") var path: String
        @Argument(help: "The value.") var value: String
        @Option(help: "string, integer, number or boolean.") var type: String?

        func run() throws {
            guard ConfigValue.isValidPath(path) else { throw ValidationError(ConfigValue.pathProblem(path)) }
            let typed: ConfigValue
            if let type {
                guard let parsed = ConfigValue(text: value, type: type) else {
                    throw ValidationError("'\(value)' is not a \(type) (types: string, integer, number, boolean)")
                }
                typed = parsed
            } else {
                typed =
                    ["boolean", "integer", "number"].lazy.compactMap { ConfigValue(text: value, type: $0) }.first
                    ?? .string(Array(value.utf8))
            }
            let database = try store.open()
            let state = StateStore(sharing: database)
            if let problem = ConfigValue.sizeProblem(path, typed, in: try state.config()) {
                throw ValidationError(problem)
            }
            try state.setConfig(path, typed)
            store.recordChange("config set \(path) (\(typed.typeName))", in: database)
        }
    }

    struct Unset: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove a path; exit 1 when it is not set.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The path.") var path: String

        func run() throws {
            let database = try store.open()
            let state = StateStore(sharing: database)
            guard try state.config(path) != nil else { throw ValidationErrorExit("'\(path)' is not set") }
            try state.setConfig(path, nil)
            store.recordChange("config unset \(path)", in: database)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every path with its type and value.")
        @OptionGroup var store: StoreOptions

        func run() throws {
            let entries = try StateStore(sharing: store.open()).config()
            print(
                TextTable.render(
                    [["PATH", "TYPE", "VALUE"]] + entries.map { [$0.path, $0.value.typeName, "\($0.value)"] }),
                terminator: "")
        }
    }
}

/// A message on standard error and exit status 1: an expected "no", not a usage error (64).
struct ValidationErrorExit: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// `luaexec backup FILE`: the whole database, consistent while luaexecd runs.
struct BackupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "backup",
        abstract: "Copy the database (tokens, persisted, the config store) into a new file.",
        discussion: "The file holds the tokens' digests: it is made readable by its owner alone.")
    @OptionGroup var store: StoreOptions
    @Argument(help: "The backup file to make; it must not exist.") var file: String

    func run() throws {
        let path = store.resolvedPath
        _ = try store.open()  // acts as the database's owner, as every command does
        try DatabaseBackup.backup(path, to: file)
        // Said, as a person at a shell expects; a script reads the exit status.
        say("\(file): a backup of \(path), readable by its owner alone (it holds the tokens' digests)")
    }
}

/// `luaexec restore FILE`: puts a backup back; the running luaexecd starts afresh from it.
struct RestoreCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "restore",
        abstract: "Replace the database with a backup made by luaexec backup.",
        discussion: """
            A file that is not an intact luaexec database, or that holds anything beyond \
            luaexec's own schema at its version (a trigger, a view, another table, index or \
            column), is refused with what was found, and nothing changes. The \
            running luaexecd notices within a second: its tokens, persisted and config store \
            become the backup's, and the state starts afresh (the init scripts run again).
            """)
    @OptionGroup var store: StoreOptions
    @Argument(help: "A file made by luaexec backup.") var file: String

    func run() throws {
        let path = store.resolvedPath
        _ = try store.open()
        try DatabaseBackup.restore(file, into: path, record: store.auditRecord("restore \(file)"))
        say("\(path): restored from \(file); a running luaexecd starts afresh from it within a second")
    }
}
