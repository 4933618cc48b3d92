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

        @Option(name: .customLong("scope"), help: "exec or admin; repeat for both (default: exec).")
        var scopes: [Scope] = [.exec]

        @Option(help: "Lifetime, e.g. 30d, 12h, 45m, 90s (default: never expires).")
        var expires: TokenDuration?

        func run() throws {
            let expiresAt = expires.map { Date().addingTimeInterval($0.seconds) }
            do {
                let (secret, _) = try store.open().create(name: name, scopes: Set(scopes), expiresAt: expiresAt)
                print(secret)
            } catch let error as StoreError {
                throw ValidationError(error.description)
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List tokens; never shows a secret.")

        @OptionGroup var store: StoreOptions

        func run() throws {
            for record in try store.open().list() {
                let scopes = record.scopes.sorted().map(\.rawValue).joined(separator: ",")
                let expires = record.expiresAt.map { "\(Int64($0.timeIntervalSince1970))" } ?? "never"
                print("\(record.name)\t\(scopes)\texpires=\(expires)")
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
            do {
                try store.open().revoke(name: name)
            } catch let error as StoreError {
                throw ValidationError(error.description)
            }
        }
    }
}

extension Scope: ExpressibleByArgument {}

/// A lifetime such as `30d`, `12h`, `45m` or `90s`.
struct TokenDuration: ExpressibleByArgument {
    var seconds: Double

    init?(argument: String) {
        guard let unit = argument.last, let value = Double(argument.dropLast()), value > 0 else { return nil }
        switch unit {
        case "s": seconds = value
        case "m": seconds = value * 60
        case "h": seconds = value * 3600
        case "d": seconds = value * 86400
        default: return nil
        }
    }
}
