import AccessControl
import ArgumentParser

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

struct TokenCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token",
        abstract: "Make, list and revoke access tokens.",
        subcommands: [Create.self, List.self, Revoke.self])

    struct Create: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Make a token and print it once; only its digest is stored.")

        @OptionGroup var store: StoreOptions

        @Argument(help: "A name for the token (letters, digits, '.', '_', '-').")
        var name: String

        @Option(
            name: .customLong("scope"),
            help: ArgumentHelp(
                "exec (any Lua), admin, metrics (the metrics only, for a scraper), endpoint:NAME (that endpoint only) or action:NAME (that Action URL only); repeatable.",
                valueName: "scope"))
        var scopes: [Scope] = [.exec]

        @Option(help: ArgumentHelp("Lifetime: \(TokenLifetime.syntax) (default: never).", valueName: "duration"))
        var expires: TokenLifetime?

        func run() throws {
            let expiresAt = expires.map { Date().addingTimeInterval($0.seconds) }
            let database = try store.open()
            let (secret, record) = try TokenStore(database: database).create(
                name: name, scopes: Set(scopes), expiresAt: expiresAt)
            store.recordChange(TokenRecord.changeDetail(created: record), in: database)
            print(secret)
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tokens; never shows a secret.")

        @OptionGroup var store: StoreOptions

        @Flag(help: "One JSON array instead of a table.")
        var json = false

        func run() throws {
            let records = try TokenStore(database: store.open()).list()
            if json {
                print(TokenListing.json(records))
            } else {
                print(TokenListing.table(records), terminator: "")
            }
        }
    }

    struct Revoke: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Revoke a token; the running daemon refuses it within a second.")

        @OptionGroup var store: StoreOptions

        @Argument(help: "The token's name.")
        var name: String

        func run() throws {
            let database = try store.open()
            try TokenStore(database: database).revoke(name: name)
            store.recordChange(TokenRecord.changeDetail(revoked: name), in: database)
        }
    }
}

extension Scope: ExpressibleByArgument {
    public init?(argument: String) { self.init(rawValue: argument) }
    public var defaultValueDescription: String { rawValue }
}

extension TokenLifetime: ExpressibleByArgument {
    public init?(argument: String) { self.init(argument) }
}
