import Foundation
import Testing

/// `luaexec token` against a running daemon, and what tokens may and may not do.
@Suite("Tokens: make, list, use, revoke, expire, throttle, keep out of logs")
struct TokenTests {
    func luaexec(_ arguments: [String], database: String) throws -> Stack.ProcessResult {
        try Stack.run(Stack.binDirectory + "/luaexec", ["token"] + arguments + ["--database", database])
    }

    @Test("without --database, a box with no package says where else the command looks for one")
    func noDatabaseSaysWhere() throws {
        // Meaningful where the package is not installed (the test machines): its database absent.
        try #require(access(Stack.systemDatabase, F_OK) != 0, "\(Stack.systemDatabase) exists here")
        let empty = FileManager.default.temporaryDirectory.appendingPathComponent("no-run-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: empty, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: empty) }
        var environment = ProcessInfo.processInfo.environment
        environment["LUAEXEC_RUN_DIR"] = nil
        let listed = try Stack.run(
            "/bin/sh", ["-c", "cd \"$1\" && exec \"$2\" token list", "sh", empty, Stack.binDirectory + "/luaexec"],
            environment: environment)
        #expect(listed.status != 0)
        #expect(listed.stdout == "")
        #expect(listed.stderr.contains("cannot open the database \(Stack.systemDatabase): "), "\(listed.stderr)")
        #expect(listed.stderr.contains(
            "(the package's database; for another, pass --database FILE, or set LUAEXEC_RUN_DIR to a run directory, or run the command where `make run` keeps .run/)"),
            "\(listed.stderr)")
        #expect(access(Stack.systemDatabase, F_OK) != 0, "the command made \(Stack.systemDatabase)")
    }

    @Test("create → list → use → revoke: refused within a second, no restart")
    func lifecycle() throws {
        let stack = try Stack()
        let created = try luaexec(["create", "ops", "--scope", "exec"], database: stack.database)
        #expect(created.status == 0)
        let secret = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(secret.hasPrefix("lxk_") && secret.count == 40)

        let listed = try luaexec(["list"], database: stack.database)
        #expect(listed.status == 0)
        #expect(listed.stdout.hasPrefix("NAME"))
        #expect(listed.stdout.contains("ops"))
        #expect(!listed.stdout.contains(secret))
        let json = try luaexec(["list", "--json"], database: stack.database)
        let items = try #require(try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as? [[String: Any]])
        let ops = try #require(items.first { $0["name"] as? String == "ops" })
        #expect(ops["scopes"] as? [String] == ["exec"])
        #expect(ops["expires"] is NSNull)
        #expect(!json.stdout.contains(secret))

        var used: Stack.HTTPResult?
        try Stack.waitUntil(timeout: .seconds(5), "the new token to work") {
            used = try? stack.request(token: secret, body: Array("return 'used'".utf8))
            return used?.status == 200
        }
        #expect(used?.text == "used")

        #expect(try luaexec(["revoke", "ops"], database: stack.database).status == 0)
        // The daemon polls every 250 ms; the margin is for a loaded machine.
        try Stack.waitUntil(timeout: .seconds(3), "the revoked token to be refused") {
            (try? stack.request(token: secret, body: Array("return 1".utf8)))?.status == 401
        }
        #expect(try stack.request(token: secret, body: Array("revoked_ran = true".utf8)).status == 401)
        #expect(try stack.eval("return revoked_ran").body == [])
    }

    @Test("clear messages and exit codes for a duplicate name, an unknown name, a bad duration")
    func cliErrors() throws {
        let stack = Stack.shared
        let duplicate = try luaexec(["create", "admin"], database: stack.database)
        #expect(duplicate.status == 1)
        #expect(duplicate.stderr.contains("a token named 'admin' already exists"))
        let unknown = try luaexec(["revoke", "nobody-\(UUID().uuidString)"], database: stack.database)
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("no token named"))
        for expires in ["3 weeks", "36526d", "999999999999999999d"] {
            let duration = try luaexec(["create", "x", "--expires", expires], database: stack.database)
            #expect(duration.status == 64)
            #expect(duration.stderr.contains("--expires"))
        }
        #expect(try luaexec(["create", "century-\(UInt32.random(in: 0...UInt32.max))", "--expires", "36525d"], database: stack.database).status == 0)
        let scope = try luaexec(["create", "x", "--scope", "root"], database: stack.database)
        #expect(scope.status == 64)
    }

    @Test("an expired token is refused")
    func expiry() throws {
        let stack = Stack.shared
        let created = try luaexec(["create", "short-\(UInt32.random(in: 0...UInt32.max))", "--expires", "2s"], database: stack.database)
        let secret = created.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        try Stack.waitUntil(timeout: .seconds(15), "the token to expire") {
            (try? stack.request(token: secret, body: Array("return 1".utf8)))?.status == 401
        }
        let listed = try luaexec(["list", "--json"], database: stack.database)
        #expect(listed.stdout.contains("\"expires\":\"20"))
    }

    @Test("an address that keeps failing gets 429; others and valid tokens are not slowed")
    func throttling() throws {
        let stack = try Stack(settings: ["auth.failure_limit=3", "auth.block_seconds=60"], tcp: true)
        let wrong = "lxk_000000000000000000000000000000000000"
        for _ in 0..<3 {
            let failed = try stack.request(token: wrong, body: Array("return 1".utf8), extra: ["--interface", "127.0.0.2"])
            #expect(failed.status == 401)
        }
        let throttled = try stack.request(token: wrong, body: Array("throttled_ran = true".utf8), extra: ["--interface", "127.0.0.2"])
        #expect(throttled.status == 429)
        #expect(Int(throttled.headers["retry-after"] ?? "") ?? 0 > 0)
        #expect(throttled.headers["cache-control"] == "no-store")

        let other = try stack.request(token: wrong, body: Array("return 1".utf8), extra: ["--interface", "127.0.0.3"])
        #expect(other.status == 401)
        let valid = try stack.request(token: stack.adminToken, body: Array("return 'served'".utf8), extra: ["--interface", "127.0.0.2"])
        #expect(valid.status == 200)
        #expect(valid.text == "served")
        #expect(try stack.eval("return throttled_ran").body == [])
    }

    @Test("the secret appears in no log and not in the database, whatever the request")
    func secretNowhere() throws {
        let stack = try Stack()
        let secret = stack.adminToken
        let query = "/api/v1/exec/interactive.lua?AuthToken=\(secret)"
        #expect(try stack.request(query, body: Array("return 1".utf8)).status == 200)
        #expect(try stack.request(query, body: Array("x x".utf8)).status == 400)
        #expect(try stack.request(query, body: [UInt8](repeating: 0x20, count: 2 << 20)).status == 413)
        #expect(try stack.request(query, token: secret, body: Array("return 1".utf8)).status == 400)
        #expect(try stack.request("/api/v1/exec/nope.lua?AuthToken=\(secret)", body: []).status == 404)
        #expect(try stack.request(token: secret, body: [UInt8](repeating: 0x20, count: 2 << 20)).status == 413)
        #expect(try stack.request("/api/v1/admin/status?AuthToken=\(secret)").status == 200)
        // Spellings of the parameter other than the usual (AuthTests.accessLogMasked).
        let encoded = "/api/v1/exec/interactive.lua?x=1&Auth%54oken=\(secret)"
        #expect(try stack.request(encoded, body: Array("return 1".utf8)).status == 200)
        #expect(try stack.request(encoded, body: [UInt8](repeating: 0x20, count: 2 << 20)).status == 413)
        #expect(try stack.request("/api/v1/exec/interactive.lua?authtoken=\(secret)", body: Array("return 1".utf8)).status == 401)
        let twice = "/api/v1/exec/interactive.lua?AuthToken=\(secret)&y=1&AuthToken=\(secret)"
        #expect(try stack.request(twice, body: [UInt8](repeating: 0x20, count: 2 << 20)).status == 413)
        // luaexecd and its socket gone: nginx logs the failed connect (ENOENT) at `crit`, with
        // the request line.
        kill(stack.luaexecdPID, SIGKILL)
        try Stack.waitUntil(timeout: .seconds(10), "luaexecd to be gone") { !Stack.canConnect(stack.fastcgiSocket) }
        try FileManager.default.removeItem(atPath: stack.fastcgiSocket)
        #expect(try stack.request(query, body: Array("return 1".utf8)).status == 502)
        #expect(try stack.request(encoded, body: Array("return 1".utf8)).status == 502)
        #expect(try stack.request(token: secret, body: Array("return 1".utf8)).status == 502)

        // nginx did log the header-form 413, so the error log is live and was searched for real.
        let errorLog = try String(contentsOfFile: stack.directory + "/logs/error.log", encoding: .utf8)
        #expect(errorLog.contains("client intended to send too large body"))
        #expect(errorLog.contains("connect() to unix:\(stack.fastcgiSocket) failed"))
        var searched = 0
        for directory in [stack.directory, stack.directory + "/logs"] {
            for name in try FileManager.default.contentsOfDirectory(atPath: directory) {
                let path = directory + "/" + name
                guard let data = FileManager.default.contents(atPath: path) else { continue }
                searched += 1
                #expect(data.range(of: Data(secret.utf8)) == nil, "the secret is in \(path)")
            }
        }
        #expect(searched >= 4)
    }
}
