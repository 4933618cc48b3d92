import Foundation
import Testing

@testable import AccessControl

/// The audit trail in the database (SPEC M7) through the real stack: luaexecd writes a record per
/// request, `luaexec audit` lists and verifies it, sqlite3 edits it behind luaexecd's back, and
/// backups, restores and pruning keep it verifiable.
@Suite("Audit trail")
struct AuditTests {
    func luaexec(_ stack: Stack, _ arguments: [String], database: String? = nil) throws -> Stack.ProcessResult {
        try Stack.run(Stack.binDirectory + "/luaexec", arguments + ["--database", database ?? stack.database])
    }

    /// The records `luaexec audit --json` lists with `filters`, newest first.
    func records(_ stack: Stack, _ filters: [String] = [], database: String? = nil) throws -> [[String: Any]] {
        let result = try luaexec(stack, ["audit", "--json", "--limit", "1000"] + filters, database: database)
        #expect(result.status == 0, "\(result.stderr)")
        let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        return object?["records"] as? [[String: Any]] ?? []
    }

    /// Waits until `count` records (with `filters`) have reached the database: the writer
    /// commits every 100 ms.
    func waitForRecords(_ stack: Stack, atLeast count: Int, _ filters: [String] = []) throws -> [[String: Any]] {
        var found: [[String: Any]] = []
        try Stack.waitUntil(timeout: .seconds(10), "\(count) audit records in the database") {
            found = (try? records(stack, filters)) ?? []
            return found.count >= count
        }
        return found
    }

    func sha256(_ bytes: [UInt8], in stack: Stack) throws -> String {
        let file = stack.directory + "/sha-\(UUID().uuidString)"
        try Data(bytes).write(to: URL(fileURLWithPath: file))
        defer { try? FileManager.default.removeItem(atPath: file) }
        return String(try Stack.run("/usr/bin/sha256sum", [file]).stdout.prefix(64))
    }

    @Test("every kind of request leaves a record with the audit line's fields, the body's whole SHA-256, never a token")
    func everyKind() throws {
        let stack = try Stack(settings: ["exec.actions=true"])
        let narrow = try stack.makeToken("narrow", scopes: ["exec"])
        let chunk = Array("return 1 + 1".utf8)
        #expect(try stack.request(token: stack.adminToken, body: chunk).text == "2")
        #expect(try stack.request(token: stack.adminToken, body: Array("return +".utf8)).status == 400)
        #expect(try stack.request("/api/v1/exec/status.lua", token: narrow).status == 200)
        #expect(try stack.request("/api/v1/exec/command?action=toast&text=hi", token: narrow).status == 200)
        #expect(try stack.request("/api/v1/admin/status", token: stack.adminToken).status == 200)
        #expect(try stack.request("/api/v1/admin/status", token: narrow).status == 403)
        #expect(try stack.request("/api/v1/metrics", token: stack.adminToken).status == 200)
        #expect(try stack.request("/api/v1/whoami", token: narrow).status == 200)
        #expect(try stack.request(body: chunk).status == 401)
        let create = Array(#"{"name":"made","scopes":["exec"]}"#.utf8)
        #expect(
            try stack.request("/api/v1/admin/tokens", method: "POST", token: stack.adminToken, body: create).status
                == 201)
        #expect(try stack.request("/api/v1/admin/tokens/made", method: "DELETE", token: stack.adminToken).status == 200)

        var requests: [[String: Any]] = []
        try Stack.waitUntil(timeout: .seconds(10), "11 request records in the database") {
            requests = ((try? records(stack)) ?? []).filter { $0["kind"] as? String != "cli" }.reversed()
            return requests.count >= 11
        }
        let summary = requests.map { record in
            [
                record["kind"] as? String ?? "?", record["token"] as? String ?? "-", record["scope"] as? String ?? "-",
                "\(record["method"] as? String ?? "") \(record["path"] as? String ?? "")", "\(record["status"] ?? "")",
                record["error"] as? String ?? "-",
            ].joined(separator: " ")
        }
        #expect(
            summary == [
                "exec admin exec POST /api/v1/exec/interactive.lua 200 -",
                "exec admin exec POST /api/v1/exec/interactive.lua 400 syntax",
                "endpoint narrow endpoint:status.lua GET /api/v1/exec/status.lua 200 -",
                "action narrow action:toast GET /api/v1/exec/command 200 -",
                "admin admin admin GET /api/v1/admin/status 200 -",
                "admin narrow admin GET /api/v1/admin/status 403 scope",
                "metrics admin metrics GET /api/v1/metrics 200 -",
                "whoami narrow - GET /api/v1/whoami 200 -",
                "exec - - POST /api/v1/exec/interactive.lua 401 auth",
                "admin admin admin POST /api/v1/admin/tokens 201 -",
                "admin admin admin DELETE /api/v1/admin/tokens/made 200 -",
            ])
        // The first record is the first request's, field by field, and its request id is the log
        // line's: the two can be matched.
        let first = requests[0]
        #expect(first["in"] as? Int == chunk.count && first["out"] as? Int == 1)
        #expect(first["body_sha256"] as? String == (try sha256(chunk, in: stack)))
        #expect(first["client"] as? String == "unix:")
        let id = try #require(first["request_id"] as? String)
        #expect(stack.luaexecdLog().contains("request id=\(id) client="))
        #expect((first["at"] as? String)?.hasSuffix("Z") == true && (first["ms"] as? Double ?? -1) >= 0)
        // Token changes name what changed.
        #expect(requests[9]["detail"] as? String == "token create made scopes=exec expires=never")
        #expect(requests[10]["detail"] as? String == "token revoke made")
        #expect(!(try luaexec(stack, ["audit", "--json", "--limit", "1000"]).stdout.contains("lxk_")))
    }

    @Test("luaexec audit filters by token, kind, outcome, status and time, as a table or JSON")
    func listing() throws {
        let stack = try Stack()
        let ops = try stack.makeToken("ops", scopes: ["exec"])
        #expect(try stack.request(token: ops, body: Array("return 1".utf8)).status == 200)
        #expect(try stack.request(token: ops, body: Array("error('x')".utf8)).status == 500)
        #expect(try stack.request(token: stack.adminToken, body: Array("return 2".utf8)).status == 200)
        #expect(try stack.request("/api/v1/admin/status", token: ops).status == 403)
        _ = try waitForRecords(stack, atLeast: 5, ["--since", "1h"])
        func seqs(_ filters: [String]) throws -> [String] {
            try records(stack, filters).map { "\($0["kind"]!)/\($0["token"] ?? "-")/\($0["status"]!)" }
        }
        #expect(try seqs(["--token", "ops"]) == ["admin/ops/403", "exec/ops/500", "exec/ops/200"])
        #expect(try seqs(["--kind", "admin"]) == ["admin/ops/403"])
        #expect(try seqs(["--outcome", "runtime"]) == ["exec/ops/500"])
        #expect(try seqs(["--outcome", "error"]) == ["admin/ops/403", "exec/ops/500"])
        #expect(try seqs(["--status", "200", "--token", "admin"]) == ["exec/admin/200"])
        #expect(try seqs(["--until", "2000-01-01"]) == [])
        #expect(try seqs(["--since", "2000-01-01T00:00:00Z", "--kind", "exec", "--limit", "1"]) == ["exec/admin/200"])
        // The token made on the box is on record too, by whoever made it.
        let cli = try records(stack, ["--kind", "cli"])
        #expect(cli.map { $0["detail"] as? String } == ["token create ops scopes=exec expires=never"])

        let table = try luaexec(stack, ["audit", "--token", "ops", "--limit", "2"])
        #expect(table.status == 0)
        let lines = table.stdout.split(separator: "\n")
        #expect(lines.count == 4)
        #expect(lines[0].hasPrefix("SEQ  TIME"))
        let cells = lines[1].split(separator: " ")
        #expect(
            cells[2...8].map(String.init) == ["admin", "ops", "unix:", "GET", "/api/v1/admin/status", "403", "scope"])
        #expect(lines[3].hasPrefix("(older records match too: --before "))
        let bad = try luaexec(stack, ["audit", "--since", "yesterday"])
        #expect(bad.status == 64)
        #expect(bad.stderr.contains("--since: expected 2026-12-01, 2026-12-01T12:00:00Z or 30m, 7d; got 'yesterday'"))
    }

    @Test("luaexec audit and config list write control characters as \\xHH: no cell can rewrite a row or forge one")
    func controlCharactersEscaped() throws {
        let stack = try Stack()
        // An anonymous client's path: a carriage return, "erase the line", a newline, a forged row.
        let forged = try stack.request("/api/v1/x%0d%1b%5b2K%0a999%20forged%1b%5d0;pwned%07")
        #expect(forged.status == 401 || forged.status == 404)
        _ = try waitForRecords(stack, atLeast: 1, ["--since", "1h"])
        let table = try luaexec(stack, ["audit", "--limit", "5"])
        #expect(table.status == 0)
        let raw: (String) -> Bool = { $0.unicodeScalars.contains { $0.value < 0x20 && $0 != "\n" } }
        #expect(!raw(table.stdout), "\(table.stdout.debugDescription)")
        #expect(table.stdout.contains(#"/api/v1/x\x0d\x1b[2K\x0a999 forged\x1b]0;pwned\x07"#), "\(table.stdout)")
        #expect(!table.stdout.split(separator: "\n").contains { $0.hasPrefix("999") })

        // A config value (the CLI's own, or a chunk's config.set) in `config list`.
        #expect(try luaexec(stack, ["config", "set", "ui.title", "a\u{1b}]0;pwned\u{07}b"]).status == 0)
        let list = try luaexec(stack, ["config", "list"])
        #expect(list.status == 0)
        #expect(!raw(list.stdout), "\(list.stdout.debugDescription)")
        #expect(list.stdout.contains(#"a\x1b]0;pwned\x07b"#), "\(list.stdout)")
    }

    /// A copy of the live trail (luaexec backup), edited with sqlite3 and verified with the key.
    /// The trail is kept a batch of records to a row (AuditStoredBatch); the edit is made on it
    /// a row per record (table `audit`, as `unpack` lays it out), then stored in batches again:
    /// what someone who knows the format can do without the key.
    func tampered(_ stack: Stack, _ statements: String) throws -> Stack.ProcessResult {
        let copy = stack.directory + "/copy-\(UUID().uuidString).db"
        #expect(try luaexec(stack, ["backup", copy]).status == 0)
        let database = try SQLiteDatabase(path: copy)
        try database.write { db throws(StoreError) in try AuditStoredBatch.unpack(in: db) }
        let edit = try Stack.run("/usr/bin/sqlite3", [copy, statements])
        #expect(edit.status == 0, "\(edit.stderr)")
        try database.write { db throws(StoreError) in
            try AuditStoredBatch.pack(in: db, rowLimit: 3)
            try db.query("DROP TABLE audit")
        }
        return try luaexec(stack, ["audit", "verify", "--audit-key", stack.directory + "/audit.key"], database: copy)
    }

    @Test(
        "verify passes, then finds a deleted, a changed and an inserted record (sqlite3), and records cut from the end")
    func verify() throws {
        let stack = try Stack()
        for n in 1...6 { #expect(try stack.eval("return \(n)").status == 200) }
        _ = try waitForRecords(stack, atLeast: 6)
        let count = try records(stack).count
        let intact = try luaexec(stack, ["audit", "verify"])
        #expect(intact.status == 0, "\(intact.stderr)")
        #expect(intact.stdout == "audit trail intact: \(count) records (1 to \(count))\n")

        let deleted = try tampered(stack, "DELETE FROM audit WHERE seq = 3")
        #expect(deleted.status == 1)
        #expect(
            deleted.stdout == "audit trail BROKEN: \(count - 1) records (1 to \(count)); where it breaks:\n"
                + "  record 3 is missing (after record 2)\n")
        let changed = try tampered(
            stack, "UPDATE audit SET status = 200, error = NULL, token = 'someone' WHERE seq = 4")
        #expect(changed.status == 1)
        #expect(
            changed.stdout.hasSuffix(
                "where it breaks:\n  record 4 does not match its MAC: it was changed, or inserted\n"))
        let inserted = try tampered(
            stack,
            "INSERT INTO audit (seq, at, kind, token, method, path, status, mac) "
                + "SELECT seq + 1, at, 'exec', 'someone', 'POST', '/api/v1/exec/interactive.lua', 200, mac FROM audit "
                + "WHERE seq = (SELECT max(seq) FROM audit)")
        #expect(inserted.status == 1)
        #expect(
            inserted.stdout.hasSuffix(
                "  record \(count + 1) does not match its MAC: it was changed, or inserted\n"
                    + "  record \(count + 1) comes after the head seal (\(count)): added without the key\n"))
        let cut = try tampered(stack, "DELETE FROM audit WHERE seq >= \(count - 1)")
        #expect(cut.status == 1)
        #expect(
            cut.stdout.hasSuffix(
                "  records \(count - 1) to \(count) at the end are missing (the head seal names \(count))\n"))
        #expect(try luaexec(stack, ["audit", "verify"]).status == 0)  // the live trail is untouched

        // Cut from the live database's end behind luaexecd's back: verify says so, and luaexecd,
        // writing on, notes it in the trail, so the break stays on record.
        try SQLiteDatabase(path: stack.database).write { db throws(StoreError) in
            try AuditStoredBatch.unpack(in: db)
            try db.query("DELETE FROM audit WHERE seq = ?", [.integer(Int64(count))])
            try AuditStoredBatch.pack(in: db)
            try db.query("DROP TABLE audit")
        }
        let broken = try luaexec(stack, ["audit", "verify"])
        #expect(broken.status == 1)
        #expect(broken.stdout.contains("  record \(count) at the end is missing (the head seal names it)\n"))
        #expect(try stack.eval("return 7").status == 200)
        let notice = try waitForRecords(stack, atLeast: 1, ["--kind", "notice"])
        #expect(notice.first?["detail"] as? String == "records \(count) to \(count) at the end were removed")
        let after = try luaexec(stack, ["audit", "verify"])
        #expect(after.status == 1)
        #expect(after.stdout.contains("  record \(count) is missing (after record \(count - 1))\n"))
        #expect(
            after.stdout.contains(
                "luaexecd noted at record \(count + 1): records \(count) to \(count) at the end were removed"))
    }

    @Test("verify without the key, or with another, says so and exits 2")
    func verifyKey() throws {
        let stack = try Stack()
        #expect(try stack.eval("return 1").status == 200)
        let missing = try luaexec(stack, ["audit", "verify", "--audit-key", stack.directory + "/nope.key"])
        #expect(missing.status == 2)
        #expect(
            missing.stderr
                == "luaexec: audit trail not checked: cannot read the audit key \(stack.directory)/nope.key: No such file or directory\n"
        )
        let other = stack.directory + "/other.key"
        try (String(repeating: "ab", count: 32) + "\n").write(toFile: other, atomically: false, encoding: .utf8)
        chmod(other, 0o600)
        let wrong = try luaexec(stack, ["audit", "verify", "--audit-key", other])
        #expect(wrong.status == 2)
        #expect(wrong.stdout.hasPrefix("audit trail not checked:\n  the trail was sealed with key "))
        // The key luaexecd made for itself at start: 0600, 64 hex digits; and where the trail
        // stood, for the journal.
        var info = stat()
        #expect(stat(stack.directory + "/audit.key", &info) == 0 && info.st_mode & 0o777 == 0o600)
        let log = stack.luaexecdLog()
        #expect(log.contains("notice luaexecd: made the audit trail's key file=\(stack.directory)/audit.key\n"))
        let opened = #"notice luaexecd: audit trail opened key_id=[0-9a-f]{16} mac=[0-9a-f]{64} records=0 seq=0\n"#
        #expect(log.range(of: opened, options: .regularExpression) != nil)
    }

    @Test("a key others may read stops luaexecd at start, exit 78, naming the file")
    func keyRefused() throws {
        let directory = NSTemporaryDirectory() + "luaexec-key-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let key = directory + "/audit.key"
        try (String(repeating: "ab", count: 32) + "\n").write(toFile: key, atomically: false, encoding: .utf8)
        chmod(key, 0o644)
        let result = try Stack.run(
            Stack.binDirectory + "/luaexecd",
            [
                "--set", "listen.socket=\(directory)/s.sock", "--set", "database=\(directory)/db",
                "--set", "audit.key=\(key)",
            ])
        #expect(result.status == 78)
        #expect(
            result.stderr.hasSuffix(
                "luaexecd: audit.key: the audit key \(key) may be read or written by others (mode 644): chmod 600 \(key)\n"
            ))
        #expect(!FileManager.default.fileExists(atPath: directory + "/s.sock"))
    }

    @Test("pruning keeps the trail within audit.max_records, and what is left verifies")
    func pruning() throws {
        let stack = try Stack(settings: ["audit.max_records=100"])
        for n in 1...130 { #expect(try stack.eval("return \(n)").status == 200) }
        var report: [String: Any] = [:]
        // Every record written (the last batch follows the last answer by up to 250 ms), and the
        // trail pruned after it.
        try Stack.waitUntil(timeout: .seconds(20), "every record written and the trail pruned") {
            let result = try? luaexec(stack, ["audit", "verify", "--json"])
            report =
                (result.flatMap { try? JSONSerialization.jsonObject(with: Data($0.stdout.utf8)) } as? [String: Any])
                ?? [:]
            let pruned = report["pruned"] as? Int ?? 0
            return pruned > 0 && (report["last"] as? Int ?? 0) >= 130 && (report["records"] as? Int ?? .max) <= 100
        }
        #expect(report["outcome"] as? String == "intact")
        let kept = try #require(report["records"] as? Int)
        let pruned = try #require(report["pruned"] as? Int)
        #expect(kept <= 100 && kept + pruned >= 130)
        #expect(report["first"] as? Int == pruned + 1)
        // Removing the oldest record left, which only pruning (with the key) may do, is found.
        #expect(
            try tampered(stack, "DELETE FROM audit WHERE seq = \(pruned + 1)").stdout.contains(
                "record \(pruned + 1) is missing (after the anchor)"))
    }

    @Test("backup and restore keep the trail: the box's records stay, the restore is one, and it verifies")
    func backupRestore() throws {
        let stack = try Stack()
        #expect(try stack.eval("persisted.x = 'backup'").status == 200)
        _ = try waitForRecords(stack, atLeast: 1)
        let file = stack.directory + "/backup.db"
        #expect(try luaexec(stack, ["backup", file]).status == 0)
        #expect(try stack.eval("persisted.x = 'later'").status == 200)
        let before = try waitForRecords(stack, atLeast: 2)
        let restored = try luaexec(stack, ["restore", file])
        #expect(restored.status == 0, "\(restored.stderr)")
        try Stack.waitUntil(timeout: .seconds(20), "the restored data served") {
            (try? stack.eval("return persisted.x").text) == "backup"
        }
        let after = try waitForRecords(stack, atLeast: before.count + 2)
        #expect(after.contains { $0["kind"] as? String == "cli" && $0["detail"] as? String == "restore \(file)" })
        // Every record from before the restore is still there, as it was.
        let seqs = Set(after.compactMap { $0["seq"] as? Int })
        #expect(before.allSatisfy { seqs.contains($0["seq"] as! Int) })
        let verified = try luaexec(stack, ["audit", "verify"])
        #expect(verified.status == 0, "\(verified.stdout)")

        // A box rebuilt from the backup (a database with no trail yet) takes the backup's trail,
        // which verifies with the key it was made with.
        let fresh = stack.directory + "/fresh.db"
        #expect(try luaexec(stack, ["token", "list"], database: fresh).status == 0)
        #expect(try luaexec(stack, ["restore", file], database: fresh).status == 0)
        let backupRecords = try records(stack, database: file)
        #expect(
            try records(stack, database: fresh).map { $0["seq"] as? Int }.suffix(backupRecords.count)
                == backupRecords.map { $0["seq"] as? Int })
        #expect(try luaexec(stack, ["audit", "verify"], database: fresh).status == 0)
    }

    @Test("SIGTERM writes what waits: the last request's record is in the database when luaexecd has exited")
    func flushedAtShutdown() throws {
        let stack = try Stack(launch: .socketActivation)
        let answer = try stack.eval("return 'last'")
        #expect(answer.text == "last")
        kill(stack.luaexecdPID, SIGTERM)
        _ = try stack.waitForExitStatus()
        let last = try #require(try records(stack, ["--kind", "exec"]).first)
        #expect(stack.luaexecdLog().contains("request id=\(last["request_id"] as? String ?? "?") "))
        #expect(try luaexec(stack, ["audit", "verify"]).status == 0)
    }

    @Test("a flood of requests without a valid token: ten a minute in the trail, the rest counted in one record; a token's records all kept")
    func anonymousFlood() throws {
        let stack = try Stack(launch: .socketActivation)
        let wrong = "lx_" + String(repeating: "A", count: 40)
        var statuses: [Int] = []
        for number in 0..<40 {
            let path = number % 2 == 0 ? "/api/v1/exec/interactive.lua" : "/api/v1/no-such-\(number)"
            statuses.append(try stack.request(path, token: number % 4 == 0 ? nil : wrong, body: Array("return 1".utf8)).status)
        }
        #expect(Set(statuses).isSubset(of: [401, 404, 429]), "\(statuses)")
        #expect(try stack.eval("return 'kept'").text == "kept")
        kill(stack.luaexecdPID, SIGTERM)
        _ = try stack.waitForExitStatus()
        // The first ten a minute one by one: at most ten in any minute, and ten in a minute whose
        // others were folded (a loaded machine may spread the forty over several minutes).
        let all = try records(stack)
        let single = all.filter { ($0["kind"] as? String) != "refused" && ($0["token"] as? String) == nil && ($0["status"] as? Int ?? 0) >= 400 }
        let summaries = all.filter { ($0["kind"] as? String) == "refused" }
        let byMinute = Dictionary(grouping: single) { String(($0["at"] as? String ?? "").prefix(16)) }.mapValues(\.count)
        #expect(byMinute.values.allSatisfy { $0 <= 10 }, "\(byMinute)")
        let folded = summaries.compactMap { ($0["detail"] as? String)?.split(separator: " ").first.flatMap { Int($0) } }
        #expect(folded.count == summaries.count)
        if folded.reduce(0, +) > 0 { #expect(byMinute.values.max() == 10, "\(byMinute)") }
        // Each one that reached luaexecd (nginx's own rate limit may answer some) is in its log.
        let logged = stack.luaexecdLog().split(separator: "\n").filter { $0.contains("luaexecd: request ") && $0.contains(" token=- ") }
        #expect(logged.count > 20)
        #expect(single.count + folded.reduce(0, +) == logged.count, "\(single.count) + \(folded) of \(logged.count)")
        #expect(try records(stack, ["--kind", "exec", "--token", "admin"]).count == 1)
        #expect(try luaexec(stack, ["audit", "verify"]).status == 0)
    }

    @Test("a change made on the box names its user from the process tree: SUDO_USER set by the caller is not believed")
    func forgedSudoUser() throws {
        let stack = try Stack()
        let made = try Stack.run(
            "/usr/bin/env",
            ["SUDO_USER=mallory", "SUDO_UID=4242", Stack.binDirectory + "/luaexec", "token", "create", "blamed", "--scope", "exec",
             "--database", stack.database])
        #expect(made.status == 0, "\(made.stderr)")
        let record = try #require(try records(stack, ["--kind", "cli"]).first)
        #expect(record["detail"] as? String == "token create blamed scopes=exec expires=never")
        let client = try #require(record["client"] as? String)
        // (Under a real sudo, as `sudo make test`, the record names its caller, still not mallory.)
        #expect(!client.contains("mallory"), "\(client)")
        #expect(client.hasPrefix(String(cString: getpwuid(getuid())!.pointee.pw_name)))
    }

    @Test("the admin API lists and verifies the trail for admin tokens only")
    func api() throws {
        let stack = try Stack()
        let exec = try stack.makeToken("runner", scopes: ["exec"])
        #expect(try stack.request(token: exec, body: Array("return 1".utf8)).status == 200)
        _ = try waitForRecords(stack, atLeast: 1, ["--token", "runner"])
        let listed = try stack.request("/api/v1/admin/audit?token=runner&limit=5", token: stack.adminToken)
        #expect(listed.status == 200)
        #expect(listed.headers["content-type"] == "application/json")
        let cli = try luaexec(stack, ["audit", "--json", "--token", "runner", "--limit", "5"])
        #expect(listed.text == cli.stdout.trimmingCharacters(in: .newlines))
        #expect(listed.text.hasPrefix(#"{"records":[{"seq":"#) && listed.text.hasSuffix(#"],"more":false}"#))
        let verified = try stack.request("/api/v1/admin/audit/verify", token: stack.adminToken)
        #expect(verified.status == 200)
        #expect(verified.text.hasPrefix(#"{"outcome":"intact","records":"#))
        let bad = try stack.request("/api/v1/admin/audit?since=soon", token: stack.adminToken)
        #expect(bad.status == 400)
        #expect(bad.text.contains("since: expected 2026-12-01, 2026-12-01T12:00:00Z or 30m, 7d; got 'soon'"))
        #expect(try stack.request("/api/v1/admin/audit?colour=red", token: stack.adminToken).status == 400)
        #expect(try stack.request("/api/v1/admin/audit", method: "DELETE", token: stack.adminToken).status == 405)
        for path in ["/api/v1/admin/audit", "/api/v1/admin/audit/verify"] {
            let refused = try stack.request(path, token: exec)
            #expect(refused.status == 403)
            #expect(refused.headers["www-authenticate"]?.contains(#"error="insufficient_scope""#) == true)
            #expect(!refused.text.contains("records"))
        }
    }
}
