import Foundation
import Testing

@testable import AccessControl

@Suite("Token format")
struct TokenFormatTests {
    @Test("a new token has the prefix, the length, base62 and a valid checksum")
    func generated() {
        let token = TokenFormat.generate()
        #expect(token.hasPrefix("lxk_"))
        #expect(token.utf8.count == 40)
        #expect(TokenFormat.isWellFormed(token))
        #expect(TokenFormat.generate() != token)
    }

    @Test("a typo, a truncation or a foreign token fails the checksum")
    func malformed() {
        let token = TokenFormat.generate()
        var bytes = Array(token.utf8)
        bytes[10] = bytes[10] == UInt8(ascii: "a") ? UInt8(ascii: "b") : UInt8(ascii: "a")
        #expect(!TokenFormat.isWellFormed(String(decoding: bytes, as: UTF8.self)))
        #expect(!TokenFormat.isWellFormed(token.dropLast()))
        #expect(!TokenFormat.isWellFormed(token + "x"))
        #expect(!TokenFormat.isWellFormed("ghp_" + token.dropFirst(4)))
        #expect(!TokenFormat.isWellFormed(""))
    }

    @Test("CRC32 matches zlib's")
    func crc() {
        #expect(CRC32.checksum(Array("123456789".utf8)) == 0xCBF4_3926)
    }
}

@Suite("Token store and authenticator, on a real SQLite file")
struct TokenStoreTests {
    let path = "/tmp/luaexec-tokens-\(UUID().uuidString).db"

    @Test("only the digest is stored, and the secret authenticates with its scopes")
    func createAndAuthenticate() throws {
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try TokenStore(path: path)
        let (secret, record) = try store.create(name: "ops", scopes: [.exec], expiresAt: nil)
        #expect(record.digest == TokenStore.digest(of: secret))
        let file = try Data(contentsOf: URL(fileURLWithPath: path))
        #expect(file.range(of: Data(secret.utf8)) == nil)

        let authenticator = try Authenticator(store: store)
        #expect(authenticator.authenticate(secret, requiring: .exec) == .allow(TokenIdentity(name: "ops", scopes: [.exec])))
        #expect(authenticator.authenticate(secret, requiring: .admin) == .deny(.insufficientScope(.admin)))
        #expect(authenticator.authenticate(TokenFormat.generate(), requiring: .exec) == .deny(.invalidToken))
    }

    @Test("a duplicate, an unknown and an invalid name are refused with a clear message, and nothing changes")
    func names() throws {
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try TokenStore(path: path)
        _ = try store.create(name: "ops", scopes: [.exec], expiresAt: nil)
        let duplicate = #expect(throws: StoreError.self) { try store.create(name: "ops", scopes: [.exec], expiresAt: nil) }
        #expect(duplicate?.kind == .duplicate)
        #expect(duplicate?.description == "a token named 'ops' already exists; revoke it first or pick another name")
        let unknown = #expect(throws: StoreError.self) { try store.revoke(name: "nobody") }
        #expect(unknown?.kind == .notFound)
        #expect(unknown?.description == "no token named 'nobody'")
        let invalid = #expect(throws: StoreError.self) { try store.create(name: "bad name", scopes: [.exec], expiresAt: nil) }
        #expect(invalid?.kind == .invalid)
        #expect(invalid?.description == "invalid token name 'bad name': use 1 to 64 letters, digits, '.', '_' or '-'")
        #expect(try store.list().map(\.name) == ["ops"])
    }

    @Test("a token expires at its expiry, and a revoked one is refused after a refresh while the others still pass")
    func revokeAndExpire() throws {
        defer { try? FileManager.default.removeItem(atPath: path) }
        let store = try TokenStore(path: path)
        let now = Date(timeIntervalSince1970: 1_800_000_000)
        let expiry = now.addingTimeInterval(60)
        let (secret, _) = try store.create(name: "ops", scopes: [.exec], expiresAt: nil, now: now)
        let (expiring, _) = try store.create(name: "short", scopes: [.exec], expiresAt: expiry, now: now)
        let authenticator = try Authenticator(store: store)
        let ops = AuthDecision.allow(TokenIdentity(name: "ops", scopes: [.exec]))
        let short = AuthDecision.allow(TokenIdentity(name: "short", scopes: [.exec]))
        #expect(authenticator.authenticate(secret, requiring: .exec, now: now) == ops)
        #expect(authenticator.authenticate(expiring, requiring: .exec, now: now) == short)
        // Valid up to the second before its expiry, refused from that second on.
        #expect(authenticator.authenticate(expiring, requiring: .exec, now: expiry.addingTimeInterval(-1)) == short)
        #expect(authenticator.authenticate(expiring, requiring: .exec, now: expiry) == .deny(.invalidToken))
        #expect(authenticator.authenticate(expiring, requiring: .exec, now: expiry.addingTimeInterval(60)) == .deny(.invalidToken))

        // Another process (here: another connection) revokes one; only that one is refused.
        try TokenStore(path: path).revoke(name: "ops")
        try authenticator.refresh()
        #expect(authenticator.authenticate(secret, requiring: .exec, now: now) == .deny(.invalidToken))
        #expect(authenticator.authenticate(expiring, requiring: .exec, now: now) == short)
    }
}

@Suite("Bearer credentials (RFC 6750)")
struct BearerCredentialsTests {
    @Test("b64token's characters (RFC 6750 §2.1) and no other byte, of all 256")
    func b64TokenCharacters() {
        let allowed = Set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/=".utf8)
        for byte in 0...255 {
            #expect(BearerCredentials.isB64TokenCharacter(UInt8(byte)) == allowed.contains(UInt8(byte)), "byte \(byte)")
        }
    }

    @Test("header and query forms", arguments: [
        ("Bearer abc", [String](), Result<String?, AuthFailure>.success("abc")),
        ("bearer abc", [], .success("abc")),
        ("BEARER  abc", [], .success("abc")),
        (nil, ["abc"], .success("abc")),
        (nil, [], .success(nil)),
    ] as [(String?, [String], Result<String?, AuthFailure>)])
    func accepted(header: String?, query: [String], expected: Result<String?, AuthFailure>) {
        #expect(BearerCredentials.extract(authorization: header, queryTokens: query) == expected)
    }

    @Test("malformed or doubled credentials are invalid requests", arguments: [
        ("Bearer abc", ["abc"]),
        ("Basic dXNlcjpwYXNz", []),
        ("Bearer", []),
        ("Bearer a b", []),
        ("Bearer a,b", []),
        (nil, ["a", "b"]),
        (nil, [""]),
    ] as [(String?, [String])])
    func refused(header: String?, query: [String]) {
        guard case .failure(.invalidRequest) = BearerCredentials.extract(authorization: header, queryTokens: query) else {
            Issue.record("accepted \(String(describing: header)) \(query)")
            return
        }
    }
}

@Suite("Scopes: exec, admin and the narrow endpoint:NAME, action:NAME")
struct ScopeTests {
    @Test("scopes parse and print as tokens store them", arguments: ["exec", "admin", "endpoint:status.lua", "action:toast", "endpoint:a~b-c_d"])
    func roundTrip(text: String) throws {
        #expect(try #require(Scope(rawValue: text)).rawValue == text)
    }

    @Test("malformed scopes are refused", arguments: ["", "root", "endpoint:", "endpoint:a/b", "action:..", "action:.", "door:a", "endpoint:a b", "EXEC"])
    func malformed(text: String) {
        #expect(Scope(rawValue: text) == nil)
    }

    @Test("exec covers every endpoint and action; a narrow scope covers only itself")
    func coverage() {
        let exec = TokenIdentity(name: "e", scopes: [.exec])
        #expect(exec.permits(.endpoint("a")) && exec.permits(.action("b")) && exec.permits(.exec))
        #expect(!exec.permits(.admin))
        let bell = TokenIdentity(name: "b", scopes: [.endpoint("a")])
        #expect(bell.permits(.endpoint("a")))
        #expect(!bell.permits(.endpoint("b")) && !bell.permits(.exec) && !bell.permits(.action("a")) && !bell.permits(.admin))
        let admin = TokenIdentity(name: "a", scopes: [.admin])
        #expect(!admin.permits(.exec) && !admin.permits(.endpoint("a")))
    }

    @Test("a token made after the authenticator loaded is known at its first use")
    func freshTokenWithoutRefresh() throws {
        let path = "/tmp/luaexec-scope-\(UUID().uuidString).db"
        defer { try? FileManager.default.removeItem(atPath: path) }
        let authenticator = try Authenticator(store: try TokenStore(path: path))
        // Another process makes the token: its own connection to the file.
        let (secret, _) = try TokenStore(path: path).create(name: "new", scopes: [.endpoint("a")], expiresAt: nil)
        #expect(authenticator.authenticate(secret, requiring: .endpoint("a")) == .allow(TokenIdentity(name: "new", scopes: [.endpoint("a")])))
        #expect(authenticator.authenticate(secret, requiring: .exec) == .deny(.insufficientScope(.exec)))
    }
}
