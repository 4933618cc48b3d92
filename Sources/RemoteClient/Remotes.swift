import SystemSupport
#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// A luaexec the user logged in to: where it is, the public key it must present, the token.
public struct Remote: Codable, Equatable, Sendable {
    public var name: String
    public var url: String
    /// `sha256//BASE64` of the server's public key.
    public var fingerprint: String
    public var token: String
    /// How long a command waits for each answer (0: as long as the box takes): `--timeout`,
    /// never stored.
    public var timeoutMilliseconds = 0

    enum CodingKeys: String, CodingKey {
        case name, url, fingerprint, token
    }

    public init(name: String, url: String, fingerprint: String, token: String) {
        self.name = name
        self.url = url
        self.fingerprint = fingerprint
        self.token = token
    }
}

/// The remotes file: `$XDG_CONFIG_HOME/luaexec/remotes.json` (default `~/.config/...`), mode
/// 0600 in a 0700 directory, since it holds tokens. Written whole to a new file that replaces
/// the old one, so a crash never leaves half a file.
public struct RemotesFile: Codable, Equatable, Sendable {
    public var defaultRemote: String?
    public var remotes: [Remote] = []

    enum CodingKeys: String, CodingKey {
        case defaultRemote = "default"
        case remotes
    }

    public init() {}

    public static var directory: String {
        if let dir = environment("XDG_CONFIG_HOME"), dir.hasPrefix("/") { return dir + "/luaexec" }
        return (environment("HOME") ?? "/root") + "/.config/luaexec"
    }

    public static var path: String { directory + "/remotes.json" }

    /// The repl's history: `$XDG_STATE_HOME/luaexec/history` (default `~/.local/state/...`).
    public static var historyPath: String {
        if let dir = environment("XDG_STATE_HOME"), dir.hasPrefix("/") { return dir + "/luaexec/history" }
        return (environment("HOME") ?? "/root") + "/.local/state/luaexec/history"
    }

    public static func load() throws(RemoteFileError) -> RemotesFile {
        guard let bytes = readFile(path) else { return RemotesFile() }
        do {
            return try JSONDecoder().decode(RemotesFile.self, from: Data(bytes))
        } catch {
            throw RemoteFileError("\(path) is not a remotes file (\(error)); move it away and log in again")
        }
    }

    public func save() throws(RemoteFileError) {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        let bytes: [UInt8]
        do { bytes = Array(try encoder.encode(self)) + [0x0A] } catch { throw RemoteFileError("\(error)") }
        try Self.makeDirectory(Self.directory)
        try Self.writeReplacing(Self.path, bytes)
    }

    public func remote(named name: String) -> Remote? { remotes.first { $0.name == name } }

    /// The remote a command without `-r` means: the default, else the only one.
    public func chosen(_ name: String?) throws(RemoteFileError) -> Remote {
        if let name {
            guard let remote = remote(named: name) else {
                let known = remotes.map(\.name).joined(separator: ", ")
                throw RemoteFileError("no remote named '\(name)'" + (known.isEmpty ? "; log in with: luaexec login URL" : " (known: \(known))"))
            }
            return remote
        }
        if let defaultRemote, let remote = remote(named: defaultRemote) { return remote }
        if remotes.count == 1 { return remotes[0] }
        if remotes.isEmpty { throw RemoteFileError("no remote yet; log in first: luaexec login https://BOX") }
        throw RemoteFileError("several remotes and no default: name one with -r (\(remotes.map(\.name).joined(separator: ", ")))")
    }

    public mutating func store(_ remote: Remote) {
        if let index = remotes.firstIndex(where: { $0.name == remote.name }) {
            remotes[index] = remote
        } else {
            remotes.append(remote)
        }
        if defaultRemote.flatMap({ self.remote(named: $0) }) == nil { defaultRemote = remote.name }
    }

    /// Creates `path` (and its parents) with mode 0700 where missing.
    public static func makeDirectory(_ path: String) throws(RemoteFileError) {
        var partial = ""
        for component in path.split(separator: "/") {
            partial += "/" + component
            if mkdir(partial, 0o700) != 0 && errno != EEXIST {
                throw RemoteFileError("cannot create \(partial): \(systemErrorText())")
            }
        }
    }

    /// Writes `bytes` to a new file beside `path` (mode 0600, never following a link) and renames
    /// it over `path`.
    static func writeReplacing(_ path: String, _ bytes: [UInt8]) throws(RemoteFileError) {
        let temporary = path + ".new.\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0o600)
        guard fd >= 0 else { throw RemoteFileError("cannot write \(temporary): \(systemErrorText())") }
        let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        let synced = fsync(fd)
        close(fd)
        guard written == bytes.count, synced == 0, rename(temporary, path) == 0 else {
            let reason = systemErrorText()
            unlink(temporary)
            throw RemoteFileError("cannot write \(path): \(reason)")
        }
    }
}

extension Remote {
    /// `https://host[:port][/path]` as stored and compared: `https://` added when missing, the
    /// host in lower case, `:443` and trailing slashes dropped, so that two spellings of one
    /// address are one remote. Anything but https is refused (the message says why).
    public static func normalisedURL(_ url: String) throws(RemoteFileError) -> String {
        var text = url
        if !text.contains("://") { text = "https://" + text }
        guard text.lowercased().hasPrefix("https://") else { throw RemoteFileError("only https:// addresses: \(url)") }
        while text.hasSuffix("/") { text.removeLast() }
        let rest = text.dropFirst("https://".count)
        var authority = rest.prefix { $0 != "/" }.lowercased()
        let path = rest.drop { $0 != "/" }
        if authority.hasSuffix(":443") { authority.removeLast(4) }
        guard !authority.isEmpty, !authority.hasPrefix(":") else { throw RemoteFileError("no host in \(url)") }
        return "https://" + authority + path
    }

    /// The name `login` gives a remote when none is chosen: the host, with the port when it is
    /// not 443 (`box`, `box:8443`, `[fd00::7]:8443`), so that two appliances on one host do
    /// not share a name. `url` is normalised.
    public static func defaultName(for url: String) -> String {
        String(url.dropFirst("https://".count).prefix { $0 != "/" })
    }

    /// Letters, digits and `._-`, and the `:[]` of a host and port; at most 64 bytes.
    public static func isValidName(_ name: String) -> Bool {
        !name.isEmpty && name.utf8.count <= 64
            && name.unicodeScalars.allSatisfy {
                ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)
                    || "._-:[]".unicodeScalars.contains($0)
            }
    }
}

public struct RemoteFileError: Error, Equatable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

func environment(_ name: String) -> String? {
    guard let value = getenv(name) else { return nil }
    let text = String(cString: value)
    return text.isEmpty ? nil : text
}

/// The whole file, or nil when it cannot be opened.
public func readFile(_ path: String) -> [UInt8]? {
    let fd = open(path, O_RDONLY | O_CLOEXEC)
    guard fd >= 0 else { return nil }
    defer { close(fd) }
    return readAll(fd: fd)
}

/// Everything `fd` gives until its end.
public func readAll(fd: Int32) -> [UInt8] {
    var bytes: [UInt8] = []
    var chunk = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = chunk.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { return bytes }
        bytes += chunk[0..<count]
    }
}
