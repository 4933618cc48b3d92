/// A database failure or a refused change, with a message a person can act on.
public struct StoreError: Error, CustomStringConvertible, Sendable {
    /// What went wrong, for an API to choose its status.
    public enum Kind: Sendable {
        /// A name, scope set or value that cannot be stored.
        case invalid
        /// The name is taken.
        case duplicate
        /// Nothing has that name.
        case notFound
        /// The database itself failed.
        case database
    }

    public var kind: Kind
    public var description: String
    public init(_ description: String, kind: Kind = .database) {
        self.description = description
        self.kind = kind
    }
}
