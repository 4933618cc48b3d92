import Foundation
import Testing

/// `luaexec script` (issue 26, SPEC V8 and O8) against two real stacks at once over pinned
/// HTTPS: exact output and exit status, and the effect (or the absence of one) checked through
/// the admin API with curl, not through the client under test.
@Suite("luaexec script: the client of stored scripts, on two appliances")
struct ScriptClientTests {
    static let a = try! Stack(settings: ["auth.failure_limit=1000000"], tcp: true)
    static let b = try! Stack(settings: ["auth.failure_limit=1000000"], tcp: true)

    typealias User = ClientTests.User

    /// A user logged in to both stacks as `a` and `b`, with a directory for script files.
    func user() throws -> User {
        let user = try User()
        try user.login("a", stack: Self.a)
        try user.login("b", stack: Self.b)
        return user
    }

    /// Writes `source` to `name` in the user's home and returns its path.
    func file(_ user: User, _ name: String, _ source: String) throws -> String {
        try bytesFile(user, name, Array(source.utf8))
    }

    func bytesFile(_ user: User, _ name: String, _ bytes: [UInt8]) throws -> String {
        let directory = user.home + "/scripts"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try Data(bytes).write(to: URL(fileURLWithPath: directory + "/" + name))
        return directory + "/" + name
    }

    // MARK: Through the API, with curl

    func record(_ stack: Stack, _ name: String) throws -> [String: Any]? {
        let result = try stack.request(
            "/api/v1/admin/scripts/" + name, token: stack.adminToken, headers: ["Accept: application/json"])
        guard result.status == 200 else { return nil }
        return try JSONSerialization.jsonObject(with: Data(result.body)) as? [String: Any]
    }

    /// `version enabled` of a stored script, or `none`.
    func state(_ stack: Stack, _ name: String) throws -> String {
        guard let record = try record(stack, name) else { return "none" }
        return "\(record["version"] as? Int ?? -1) \((record["enabled"] as? Bool ?? false) ? "enabled" : "disabled")"
    }

    func kept(_ stack: Stack, _ name: String) throws -> [Int] {
        let result = try stack.request("/api/v1/admin/scripts/\(name)/versions", token: stack.adminToken)
        guard result.status == 200,
            let object = try JSONSerialization.jsonObject(with: Data(result.body)) as? [String: Any]
        else { return [] }
        return (object["versions"] as? [[String: Any]] ?? []).compactMap { $0["version"] as? Int }
    }

    func call(_ stack: Stack, _ endpoint: String) throws -> String {
        let result = try stack.request("/api/v1/exec/" + endpoint, token: stack.adminToken)
        return "\(result.status) \(result.text)"
    }

    func global(_ stack: Stack, _ name: String) throws -> String {
        try stack.eval("return tostring(\(name))").text
    }

    func sha256(_ text: String) throws -> String {
        String(try Stack.run("/bin/sh", ["-c", "printf '%s' \"$0\" | sha256sum", text]).stdout.prefix(12))
    }

    /// The summary's elapsed times as `N ms`.
    func steady(_ text: String) -> String {
        text.replacingOccurrences(of: #"\d+(\.\d+)? m?s\n"#, with: "N ms\n", options: .regularExpression)
    }

    // MARK: Push

    @Test("push to two remotes installs on both, prints each under its name and a summary, exit 0")
    func pushToTwo() throws {
        let user = try user()
        let source = """
            pushes = (pushes or 0) + 1
            http.listen('chime', function() return 'chime v1' end)
            print('chime ready')
            """
        let path = try file(user, "chime.lua", source)
        let short = try sha256(source)
        let pushed = try user.luaexec(["script", "push", path, "-r", "a", "-r", "b"])
        #expect(pushed.status == 0, "\(pushed.stderr)")
        #expect(pushed.stderr == "")
        let block = """
            chime.lua: version 1 installed (new script, sha256 \(short))
            chime ready
            registered: endpoint chime

            """
        #expect(
            steady(pushed.stdout) == """
                == a ==
                \(block)== b ==
                \(block)REMOTE  STATUS           ELAPSED
                a       version 1 (new)  N ms
                b       version 1 (new)  N ms

                """)
        for stack in [Self.a, Self.b] {
            #expect(try state(stack, "chime.lua") == "1 enabled")
            #expect(try call(stack, "chime") == "200 chime v1")
            #expect(try global(stack, "pushes") == "1")
        }

        // The same file again: said so, nothing ran, no version made.
        let again = try user.luaexec(["script", "push", path, "-r", "a"])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stdout == "chime.lua: unchanged, version 1 is this file (sha256 \(short)); nothing ran\n")
        let both = try user.luaexec(["script", "push", path, "--all"])
        #expect(both.status == 0)
        #expect(
            steady(both.stdout) == """
                == a ==
                chime.lua: unchanged, version 1 is this file (sha256 \(short)); nothing ran
                == b ==
                chime.lua: unchanged, version 1 is this file (sha256 \(short)); nothing ran
                REMOTE  STATUS                 ELAPSED
                a       unchanged (version 1)  N ms
                b       unchanged (version 1)  N ms

                """)
        for stack in [Self.a, Self.b] {
            #expect(try kept(stack, "chime.lua") == [1])
            #expect(try global(stack, "pushes") == "1")
        }

        // A new version under another name (--name), from standard input: withdraws nothing of chime.lua.
        let v2 = "http.listen('chime', function() return 'chime v2' end)\n"
        let second = try user.luaexec(["script", "push", "-", "--name", "chime.lua", "-r", "b"], input: v2)
        #expect(second.status == 0, "\(second.stderr)")
        #expect(
            second.stdout == "chime.lua: version 2 installed (sha256 \(try sha256(v2)))\nregistered: endpoint chime\n")
        #expect(try call(Self.b, "chime") == "200 chime v2")
        #expect(try call(Self.a, "chime") == "200 chime v1")
        #expect(try kept(Self.b, "chime.lua") == [2, 1])

        let noName = try user.luaexec(["script", "push", "-", "-r", "b"], input: v2)
        #expect(noName.status == 2)
        #expect(noName.stderr == "luaexec: a script from standard input needs --name\n")
    }

    @Test("a syntax error is exit 1 with Lua's message and line, and nothing is stored or run on either box")
    func syntaxError() throws {
        let user = try user()
        let good = "http.listen('gong', function() return 'gong v1' end)\n"
        let path = try file(user, "gong.lua", good)
        #expect(try user.luaexec(["script", "push", path, "-r", "a", "-r", "b"]).status == 0)

        _ = try file(user, "gong.lua", "gong_ran = true\nhttp.listen('gong', function() return 'v2' end)\nreturn +\n")
        let refused = try user.luaexec(["script", "push", path, "-r", "a", "-r", "b"])
        #expect(refused.status == 1)
        #expect(
            refused.stderr == """
                luaexec: a: gong.lua not installed: syntax error; version 1 stays current
                scripts/gong.lua:3: unexpected symbol near '+'
                luaexec: b: gong.lua not installed: syntax error; version 1 stays current
                scripts/gong.lua:3: unexpected symbol near '+'

                """)
        #expect(
            steady(refused.stdout) == """
                == a ==
                == b ==
                REMOTE  STATUS        ELAPSED
                a       syntax error  N ms
                b       syntax error  N ms

                """)
        for stack in [Self.a, Self.b] {
            #expect(try kept(stack, "gong.lua") == [1])
            #expect(try state(stack, "gong.lua") == "1 enabled")
            #expect(try call(stack, "gong") == "200 gong v1")
            #expect(try global(stack, "gong_ran") == "nil")
        }

        // A new name that does not compile: nothing is stored under it.
        let fresh = try file(user, "fresh.lua", "fresh_ran = true\nlocal x = = 1\n")
        let one = try user.luaexec(["script", "push", fresh, "-r", "a"])
        #expect(one.status == 1)
        #expect(
            one.stderr == """
                luaexec: a: fresh.lua not installed: syntax error; nothing is stored under that name
                scripts/fresh.lua:2: unexpected symbol near '='

                """)
        #expect(one.stdout == "")
        #expect(try state(Self.a, "fresh.lua") == "none")
        #expect(try global(Self.a, "fresh_ran") == "nil")
    }

    @Test("a version whose run fails is exit 1 with the 422's message and traceback; the old version still serves")
    func runtimeError() throws {
        let user = try user()
        let path = try file(user, "horn.lua", "http.listen('horn', function() return 'horn v1' end)\n")
        #expect(try user.luaexec(["script", "push", path, "-r", "a", "-r", "b"]).status == 0)

        try
            "http.listen('horn', function() return 'horn v2' end)\nhttp.listen('horn2', function() return 'x' end)\nprint('half way')\nerror('not today')\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        let failed = try user.luaexec(["script", "push", path, "-r", "b"])
        #expect(failed.status == 1)
        #expect(failed.stdout == "")
        #expect(
            failed.stderr.hasPrefix(
                """
                luaexec: b: horn.lua not installed: runtime error; version 1 stays current
                half way
                scripts/horn.lua:4: not today
                stack traceback:

                """), "\(failed.stderr)")
        #expect(failed.stderr.contains("scripts/horn.lua:4: in main chunk"))
        #expect(try kept(Self.b, "horn.lua") == [1])
        #expect(try call(Self.b, "horn") == "200 horn v1")
        #expect(try call(Self.b, "horn2") == "404 no such endpoint: /api/v1/exec/horn2\n")

        // One remote refuses, the other takes it: the worst status wins.
        try "http.listen('horn', function() return 'horn v2' end)\nif HORN_FAILS then error('refused here') end\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        _ = try Self.b.eval("HORN_FAILS = true")
        let mixed = try user.luaexec(["script", "push", path, "--all"])
        #expect(mixed.status == 1)
        #expect(mixed.stdout.contains("\na       version 2      "), "\(mixed.stdout)")
        #expect(mixed.stdout.contains("\nb       runtime error  "), "\(mixed.stdout)")
        #expect(try call(Self.a, "horn") == "200 horn v2")
        #expect(try call(Self.b, "horn") == "200 horn v1")
    }

    @Test("refusals are exit 2 with the reason: an unknown remote, a refused token, a token without admin, a bad name")
    func refusals() throws {
        let user = try user()
        let path = try file(user, "bell-refused.lua", "refused_ran = true\n")
        let unknown = try user.luaexec(["script", "push", path, "-r", "nope"])
        #expect(unknown.status == 2)
        #expect(unknown.stderr == "luaexec: no remote named 'nope' (known: a, b)\n")

        try user.storeRemote(
            "wrong", url: "https://127.0.0.1:\(Self.a.httpsPort!)", token: "lxk_" + String(repeating: "A", count: 36))
        let wrong = try user.luaexec(["script", "push", path, "-r", "wrong"])
        #expect(wrong.status == 2)
        #expect(wrong.stderr == "luaexec: wrong: HTTP 401: the token is unknown, revoked or expired\n")
        #expect(wrong.stdout == "")

        let execOnly = try Self.a.makeToken("script-exec-only", scopes: ["exec"])
        try user.storeRemote("narrow", url: "https://127.0.0.1:\(Self.a.httpsPort!)", token: execOnly)
        let narrow = try user.luaexec(["script", "list", "-r", "narrow"])
        #expect(narrow.status == 2)
        #expect(narrow.stderr == "luaexec: narrow: HTTP 403: the token lacks the 'admin' scope\n")

        // A good remote and a refusing one: the good one is changed, the status is the worst.
        let mixed = try user.luaexec(["script", "push", path, "-r", "a", "-r", "wrong"])
        #expect(mixed.status == 2)
        #expect(try state(Self.a, "bell-refused.lua") == "1 enabled")
        #expect(try state(Self.b, "bell-refused.lua") == "none")

        // The store's own rule, checked before any request: nginx would decode %2F and resolve
        // `..`, so `rm ../tokens/ops` would reach another URL.
        let rule =
            "use 1 to 128 bytes of letters, digits, '.', '_' and '-', ending in '.lua', not starting with '.' or holding '..'"
        for name in ["../tokens/ops", "bell", "a/b.lua"] {
            for arguments in [["push", path, "--name", name], ["rm", name], ["show", name]] {
                let bad = try user.luaexec(["script"] + arguments + ["-r", "b"])
                #expect(bad.status == 2)
                #expect(bad.stderr == "luaexec: bad script name '\(name)': \(rule)\n")
            }
        }
        #expect(!Self.b.luaexecdLog().contains("/api/v1/admin/tokens/ops"))
        #expect(try global(Self.b, "refused_ran") == "nil")

        let missing = try user.luaexec(["script", "show", "never-there.lua", "-r", "b"])
        #expect(missing.status == 2)
        #expect(missing.stderr == "luaexec: b: HTTP 404: no script named 'never-there.lua'\n")
        let notAFile = try user.luaexec(["script", "push", user.home + "/absent.lua", "-r", "b"])
        #expect(notAFile.status == 2)
        #expect(notAFile.stderr == "luaexec: cannot read \(user.home)/absent.lua: No such file or directory\n")
    }

    // MARK: Reading: list, show, diff

    @Test(
        "show prints the stored bytes exactly; list shows each script's state; diff is 0 when same, 1 with a unified diff"
    )
    func listShowDiff() throws {
        let user = try User()
        // A stack of its own, so that the listing holds only what this test made.
        let stack = try Stack(tcp: true)
        try user.login("solo", stack: stack)
        // Not UTF-8, a CR, no newline at the end: still byte for byte.
        let bytes = Array("-- caf\u{e9} ".utf8) + [0xFF, 0x0D, 0x0A] + Array("return 'ok'".utf8)
        let path = try bytesFile(user, "raw.lua", bytes)
        #expect(try user.luaexec(["script", "push", path]).status == 0)
        let out = user.home + "/shown"
        let shown = try Stack.run(
            "/bin/sh", ["-c", "exec \"$0\" script show raw.lua > '\(out)'", Stack.binDirectory + "/luaexec"],
            environment: user.environment)
        #expect(shown.status == 0, "\(shown.stderr)")
        #expect(Array(try Data(contentsOf: URL(fileURLWithPath: out))) == bytes)

        let lines =
            "local a = 1\nlocal b = 2\nlocal c = 3\nlocal d = 4\nlocal e = 5\nlocal f = 6\nlocal g = 7\nlocal h = 8\nlocal i = 9\n"
        let list = try file(user, "list.lua", lines + "http.listen('listed', function() return 'l' end)\n")
        #expect(try user.luaexec(["script", "push", list]).status == 0)
        let broken = try file(user, "broken.lua", "if BROKEN then error('down') end\n")
        #expect(try user.luaexec(["script", "push", broken]).status == 0)
        #expect(try user.luaexec(["script", "disable", "broken.lua"]).status == 0)

        let listed = try user.luaexec(["script", "list"])
        #expect(listed.status == 0, "\(listed.stderr)")
        let rows = listed.stdout.split(separator: "\n").map(String.init)
        try #require(rows.count == 4, "\(listed.stdout)")
        #expect(rows[0].hasPrefix("NAME        ENABLED  VERSION  SHA256        INSTALLED"), "\(rows[0])")
        let when = #"admin \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ"#
        #expect(
            rows[1].range(
                of: #"^broken\.lua  no       1        [0-9a-f]{12}  "# + when + #"  -$"#, options: .regularExpression)
                != nil, "\(rows[1])")
        #expect(
            rows[2].range(
                of: #"^list\.lua    yes      1        "#
                    + (try sha256(lines + "http.listen('listed', function() return 'l' end)\n")) + "  " + when
                    + #"  ok, [0-9.]+ ms$"#, options: .regularExpression) != nil, "\(rows[2])")
        #expect(rows[3].hasPrefix("raw.lua     yes      1        "), "\(rows[3])")
        let json = try user.luaexec(["script", "list", "--json"])
        #expect(json.stdout.hasPrefix(#"{"scripts":[{"name":"broken.lua","#))

        // diff: the same file is 0 and silent.
        let same = try user.luaexec(["script", "diff", list])
        #expect(same.status == 0, "\(same.stderr)")
        #expect(same.stdout == "")
        // Two changes far apart (two hunks) and a missing last newline, as diff -u writes them.
        let edited =
            lines.replacingOccurrences(of: "local b = 2", with: "local b = 20")
            + "http.listen('listed', function() return 'L' end)"
        try edited.write(toFile: list, atomically: true, encoding: .utf8)
        let differs = try user.luaexec(["script", "diff", list])
        #expect(differs.status == 1)
        #expect(
            differs.stdout == """
                --- list.lua on solo (version 1)
                +++ \(list)
                @@ -1,5 +1,5 @@
                 local a = 1
                -local b = 2
                +local b = 20
                 local c = 3
                 local d = 4
                 local e = 5
                @@ -7,4 +7,4 @@
                 local g = 7
                 local h = 8
                 local i = 9
                -http.listen('listed', function() return 'l' end)
                +http.listen('listed', function() return 'L' end)
                \\ No newline at end of file

                """)
        // The same hunks as GNU diff finds.
        let stored = user.home + "/stored.lua"
        try (lines + "http.listen('listed', function() return 'l' end)\n").write(
            toFile: stored, atomically: true, encoding: .utf8)
        let reference = try Stack.run(
            "/usr/bin/diff", ["-u", "--label", "list.lua on solo (version 1)", "--label", list, stored, list])
        #expect(reference.stdout == differs.stdout)

        // A script the box does not have: every line is added.
        let new = try file(user, "new.lua", "return 1\n")
        let absent = try user.luaexec(["script", "diff", new])
        #expect(absent.status == 1)
        #expect(absent.stdout == "--- new.lua on solo (none)\n+++ \(new)\n@@ -0,0 +1 @@\n+return 1\n")
        // Nothing was pushed by diff.
        #expect(try state(stack, "new.lua") == "none")
        #expect(try kept(stack, "list.lua") == [1])
    }

    // MARK: Changes: rollback, disable, enable, rm

    @Test("rollback, --to, disable, enable and rm on two remotes, each effect seen through the API")
    func changes() throws {
        let user = try user()
        let path = try file(user, "lamp.lua", "http.listen('lamp', function() return 'lamp v1' end)\n")
        #expect(try user.luaexec(["script", "push", path, "--all"]).status == 0)
        try "http.listen('lamp', function() return 'lamp v2' end)\n".write(
            toFile: path, atomically: true, encoding: .utf8)
        #expect(try user.luaexec(["script", "push", path, "--all"]).status == 0)
        for stack in [Self.a, Self.b] { #expect(try call(stack, "lamp") == "200 lamp v2") }

        let back = try user.luaexec(["script", "rollback", "lamp.lua", "-r", "a"])
        #expect(back.status == 0, "\(back.stderr)")
        let v1 = try sha256("http.listen('lamp', function() return 'lamp v1' end)\n")
        #expect(back.stdout == "lamp.lua: rolled back to version 1 (sha256 \(v1))\nregistered: endpoint lamp\n")
        #expect(try state(Self.a, "lamp.lua") == "1 enabled")
        #expect(try call(Self.a, "lamp") == "200 lamp v1")
        #expect(try call(Self.b, "lamp") == "200 lamp v2")

        let oldest = try user.luaexec(["script", "rollback", "lamp.lua", "-r", "a"])
        #expect(oldest.status == 2)
        #expect(
            oldest.stderr
                == "luaexec: a: HTTP 409: lamp.lua is at version 1, the oldest version kept: there is nothing to roll back to\n"
        )
        let forward = try user.luaexec(["script", "rollback", "lamp.lua", "--to", "2", "-r", "a"])
        #expect(forward.status == 0, "\(forward.stderr)")
        #expect(forward.stdout.hasPrefix("lamp.lua: rolled back to version 2 "))
        #expect(try call(Self.a, "lamp") == "200 lamp v2")
        let notKept = try user.luaexec(["script", "rollback", "lamp.lua", "--to", "7", "-r", "a"])
        #expect(notKept.status == 2)
        #expect(notKept.stderr == "luaexec: a: HTTP 404: version 7 of lamp.lua is not kept (kept: 1, 2)\n")

        let disabled = try user.luaexec(["script", "disable", "lamp.lua", "-r", "a", "-r", "b"])
        #expect(disabled.status == 0, "\(disabled.stderr)")
        #expect(
            steady(disabled.stdout) == """
                == a ==
                lamp.lua: disabled (version 2 kept)
                withdrawn: endpoint lamp
                == b ==
                lamp.lua: disabled (version 2 kept)
                withdrawn: endpoint lamp
                REMOTE  STATUS    ELAPSED
                a       disabled  N ms
                b       disabled  N ms

                """)
        for stack in [Self.a, Self.b] {
            #expect(try state(stack, "lamp.lua") == "2 disabled")
            #expect(try call(stack, "lamp") == "404 no such endpoint: /api/v1/exec/lamp\n")
        }
        let twice = try user.luaexec(["script", "disable", "lamp.lua", "-r", "a"])
        #expect(twice.stdout == "lamp.lua: unchanged, already disabled (version 2)\n")

        let enabled = try user.luaexec(["script", "enable", "lamp.lua", "-r", "b"])
        #expect(enabled.status == 0, "\(enabled.stderr)")
        #expect(enabled.stdout == "lamp.lua: enabled, version 2 ran\nregistered: endpoint lamp\n")
        #expect(try state(Self.b, "lamp.lua") == "2 enabled")
        #expect(try call(Self.b, "lamp") == "200 lamp v2")
        #expect(try state(Self.a, "lamp.lua") == "2 disabled")

        let removed = try user.luaexec(["script", "rm", "lamp.lua", "-r", "b"])
        #expect(removed.status == 0, "\(removed.stderr)")
        #expect(removed.stdout == "lamp.lua: removed (it was at version 2)\nwithdrawn: endpoint lamp\n")
        #expect(try state(Self.b, "lamp.lua") == "none")
        #expect(try call(Self.b, "lamp") == "404 no such endpoint: /api/v1/exec/lamp\n")
        #expect(try state(Self.a, "lamp.lua") == "2 disabled")
        let gone = try user.luaexec(["script", "rm", "lamp.lua", "-r", "b"])
        #expect(gone.status == 2)
        #expect(gone.stderr == "luaexec: b: HTTP 404: no script named 'lamp.lua'\n")
    }

    @Test("enable runs the version: a run that fails is exit 1 and the script stays disabled")
    func enableFails() throws {
        let user = try user()
        let path = try file(
            user, "fan.lua",
            "if FAN_BROKEN then error('fan jammed') end\nhttp.listen('fan', function() return 'fan' end)\n")
        #expect(try user.luaexec(["script", "push", path, "-r", "a"]).status == 0)
        #expect(try user.luaexec(["script", "disable", "fan.lua", "-r", "a"]).status == 0)
        _ = try Self.a.eval("FAN_BROKEN = true")
        let failed = try user.luaexec(["script", "enable", "fan.lua", "-r", "a"])
        #expect(failed.status == 1)
        #expect(
            failed.stderr.hasPrefix(
                "luaexec: a: fan.lua not enabled: runtime error; version 1 stays current, disabled\nscripts/fan.lua:1: fan jammed\n"
            ), "\(failed.stderr)")
        #expect(try state(Self.a, "fan.lua") == "1 disabled")
        #expect(try call(Self.a, "fan") == "404 no such endpoint: /api/v1/exec/fan\n")
        _ = try Self.a.eval("FAN_BROKEN = nil")
    }

    @Test("push --disabled stores the file disabled on each remote and runs nothing there; enable runs it")
    func pushDisabled() throws {
        let user = try user()
        let path = try file(user, "porch.lua", "PORCH_RAN = true\nhttp.listen('porch', function() return 'lit' end)\n")
        let pushed = try user.luaexec(["script", "push", path, "--disabled", "-r", "a", "-r", "b"])
        #expect(pushed.status == 0, "\(pushed.stderr)")
        #expect(pushed.stdout.contains("porch.lua: version 1 stored disabled (not run) (new script, sha256 "), "\(pushed.stdout)")
        for box in [Self.a, Self.b] {
            #expect(try state(box, "porch.lua") == "1 disabled")
            #expect(try box.eval("return PORCH_RAN").body == [])
            #expect(try call(box, "porch") == "404 no such endpoint: /api/v1/exec/porch\n")
        }
        let again = try user.luaexec(["script", "push", path, "--disabled", "-r", "a"])
        #expect(again.stdout.contains("porch.lua: unchanged, version 1 is this file (sha256 "), "\(again.stdout)")
        #expect(again.stdout.contains(", disabled; nothing ran"))
        #expect(try user.luaexec(["script", "enable", "porch.lua", "-r", "a"]).status == 0)
        #expect(try Self.a.eval("return PORCH_RAN").text == "true")
        #expect(try call(Self.a, "porch") == "200 lit")
        #expect(try Self.b.eval("return PORCH_RAN").body == [])
        for remote in ["a", "b"] { #expect(try user.luaexec(["script", "rm", "porch.lua", "-r", remote]).status == 0) }
    }

    // MARK: The README's example

    /// The README's "Scripts as configuration" example, as the README shows it.
    static let doorbell = #"""
        -- Rings the door's bell: GET /api/v1/exec/doorbell
        http.listen("doorbell", function()
          system.toast("ding dong")
          return "ding dong\n"
        end)
        print("doorbell ready")

        """#
    static let brokenDoorbell = #"""
        -- Rings the door's bell, but not at night
        http.listen("doorbell", function()
          if os.date("*t").hour < 22
            system.toast("ding dong")
          end
          return "ding dong\n"
        end)

        """#

    @Test("the README's example: push, curl, a restart, still answering; a broken version refused, the old one serving")
    func readmeExample() throws {
        let readme = try String(contentsOfFile: Stack.repository + "/README.md", encoding: .utf8)
        #expect(readme.contains("$ cat doorbell.lua\n" + Self.doorbell + "$ luaexec script push doorbell.lua\n"))
        #expect(readme.contains(Self.brokenDoorbell))

        let stack = try Stack(tcp: true, launch: .supervisedSocketActivation)
        let user = try User()
        try user.login("dev", stack: stack)
        let path = try file(user, "doorbell.lua", Self.doorbell)
        let pushed = try user.luaexec(["script", "push", path])
        #expect(pushed.status == 0, "\(pushed.stderr)")
        #expect(
            pushed.stdout == """
                doorbell.lua: version 1 installed (new script, sha256 \(try sha256(Self.doorbell)))
                doorbell ready
                registered: endpoint doorbell

                """)
        #expect(readme.contains("$ luaexec script push doorbell.lua\n" + pushed.stdout))
        #expect(try call(stack, "doorbell") == "200 ding dong\n")

        // luaexecd killed and started again by its supervisor: the stored script runs at start.
        let first = try Stack.waitForPIDFile(stack.supervisedPIDFile)
        kill(first, SIGKILL)
        try Stack.waitUntil(timeout: .seconds(20), "a new luaexecd") {
            (try? Stack.waitForPIDFile(stack.supervisedPIDFile)) != first
                && (try? stack.eval("return 'up'").text) == "up"
        }
        #expect(try call(stack, "doorbell") == "200 ding dong\n")

        _ = try file(user, "doorbell.lua", Self.brokenDoorbell)
        let refused = try user.luaexec(["script", "push", path])
        #expect(refused.status == 1)
        #expect(refused.stdout == "")
        #expect(
            refused.stderr == """
                luaexec: dev: doorbell.lua not installed: syntax error; version 1 stays current
                scripts/doorbell.lua:4: 'then' expected near 'system'

                """)
        #expect(readme.contains(refused.stderr))
        #expect(try call(stack, "doorbell") == "200 ding dong\n")
        #expect(try kept(stack, "doorbell.lua") == [1])
    }
}
