import SystemSupport
import AccessControl
import ArgumentParser

#if canImport(Glibc)
import Glibc
#endif

/// `luaexec aside`: saved entries luaexecd could not load (SPEC V6). luaexecd never lets a stored
/// value keep it from starting: an entry it cannot load (nested past the limit, damaged, larger
/// than the memory cap; a hand-edited or foreign database) is moved to the `set_aside` table at
/// start and logged; it stays there, listed here and in the status, until removed.
struct AsideCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "aside",
        abstract: "List, export and remove saved entries that luaexecd could not load.",
        subcommands: [List.self, Export.self, Drop.self], defaultSubcommand: List.self)

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Every entry set aside, oldest first.")
        @OptionGroup var store: StoreOptions

        func run() throws {
            let entries = try StateStore(sharing: store.open()).setAside()
            guard !entries.isEmpty else {
                print("nothing is set aside")
                return
            }
            print(
                TextTable.render(
                    [["ID", "SECTION", "KEY", "BYTES", "SINCE", "REASON"]]
                        + entries.map {
                            [String($0.id), $0.section, $0.key, String($0.bytes), TokenListing.date($0.setAsideAt), $0.reason]
                        }),
                terminator: "")
        }
    }

    struct Export: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Write an entry's stored bytes (luaexec's encoding, as saved) to a new file.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The entry's ID (luaexec aside list).") var id: Int64
        @Argument(help: "The file to make; it must not exist.") var file: String

        func run() throws {
            guard let value = try StateStore(sharing: store.open()).setAsideValue(id: id) else {
                throw ValidationErrorExit("nothing is set aside with ID \(id)")
            }
            let fd = open(file, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0o600)
            guard fd >= 0 else { throw ValidationErrorExit("cannot create \(file): \(systemErrorText())") }
            defer { close(fd) }
            let written = value.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            guard written == value.count else {
                throw ValidationErrorExit("cannot write \(file): \(systemErrorText())")
            }
        }
    }

    struct Drop: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Remove an entry set aside, for good.")
        @OptionGroup var store: StoreOptions
        @Argument(help: "The entry's ID (luaexec aside list).") var id: Int64

        func run() throws {
            let database = try store.open()
            guard try StateStore(sharing: database).dropSetAside(id: id) else {
                throw ValidationErrorExit("nothing is set aside with ID \(id)")
            }
            store.recordChange("aside drop \(id)", in: database)
        }
    }
}
