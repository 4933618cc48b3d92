import Foundation
import Synchronization
import Testing

/// `persisted`, `shared`, the config store and backups (SPEC V5, V6, A3, L5) through the real
/// stack: SQLite file, luaexecd, nginx, curl.
@Suite("Keeping data: persisted, the config store, backups")
struct PersistenceTests {
    func luaexec(_ stack: Stack, _ arguments: [String]) throws -> Stack.ProcessResult {
        try Stack.run(Stack.binDirectory + "/luaexec", arguments + ["--database", stack.database])
    }

    /// Kills the supervised luaexecd with SIGKILL and waits for the next one to answer.
    func killAndWaitForRestart(_ stack: Stack) throws {
        let first = try Stack.waitForPIDFile(stack.supervisedPIDFile)
        kill(first, SIGKILL)
        try Stack.waitUntil(timeout: .seconds(20), "a new luaexecd") {
            (try? Stack.waitForPIDFile(stack.supervisedPIDFile)) != first
                && (try? stack.eval("return 'up'").text) == "up"
        }
    }

    @Test("a value is there after kill -9 right after its 200, with every type kept apart")
    func survivesKill() throws {
        let stack = try Stack(launch: .supervisedSocketActivation)
        #expect(
            try stack.eval(
                """
                persisted.counter = 41 persisted.ratio = 1.0 persisted.blob = '\\0\\1\\255'
                persisted.book = {alice = {ext = 201, away = false}, list = {'a', 'b'}}
                shared.lost = true lost_global = true
                """
            ).status == 200)
        try killAndWaitForRestart(stack)
        #expect(
            try stack.eval(
                """
                local p = persisted
                return math.type(p.counter), p.counter, math.type(p.ratio), p.blob == '\\0\\1\\255', p.book.alice.ext,
                  p.book.alice.away, table.concat(p.book.list, ','), shared.lost, lost_global
                """
            ).text == "integer\t41\tfloat\ttrue\t201\tfalse\ta,b\tnil\tnil")
    }

    @Test("kill -9 in the middle of a request that writes many keys leaves all of them or none, every time")
    func allOrNothing() throws {
        let stack = try Stack(launch: .supervisedSocketActivation)
        #expect(try stack.eval("for i = 1, 500 do persisted['k' .. i] = 0 end").status == 200)
        var sawNew = false
        var sawOld = false
        for round in 1...6 {
            let writer = Thread {
                _ = try? stack.eval(
                    "local pad = ('x'):rep(2000) for i = 1, 500 do persisted['k' .. i] = \(round) .. pad end")
            }
            writer.start()
            // Kill at a different moment each round: before, during or after the commit.
            usleep(UInt32(round * 15_000))
            try killAndWaitForRestart(stack)
            let values = try stack.eval(
                """
                local seen = {}
                for i = 1, 500 do seen[tostring(persisted['k' .. i]):sub(1, 2)] = true end
                local keys = {} for k in pairs(seen) do keys[#keys + 1] = k end
                table.sort(keys) return table.concat(keys, ',')
                """
            ).text
            // One value across all 500 keys: the round's, or what was there before it.
            #expect(!values.contains(","), "round \(round): \(values)")
            if values.hasPrefix("\(round)") { sawNew = true } else { sawOld = true }
            // Make every key equal again for the next round.
            #expect(try stack.eval("for i = 1, 500 do persisted['k' .. i] = 0 end").status == 200)
        }
        #expect(sawNew || sawOld)
    }

    @Test("a stored value that cannot be loaded never keeps luaexecd from starting: it is set aside, shown and removable")
    func unloadableValueIsSetAside() throws {
        let stack = try Stack(launch: .supervisedSocketActivation)
        // The way in that the daemon itself allowed before: one level per assignment.
        let nested = try stack.eval("persisted.d = {} local t = persisted.d for i = 1, 100 do t.x = {} t = t.x end")
        #expect(nested.status == 500)
        #expect(nested.text.hasPrefix("interactive.lua:1: persisted: tables nested deeper than 64 levels\n"))
        #expect(try stack.eval("persisted.fine = 'kept' config.set('site', 'north')").status == 200)
        // A hand-edited or foreign database: a value nested 100 deep, and a config row of no type.
        let (deep, rows) = Stack.unloadableRows()
        let edit = try Stack.run(
            "/usr/bin/sqlite3",
            [
                stack.database,
                rows
                    // A path the rule refuses now (a URL would resolve it to another route).
                    + "INSERT INTO config VALUES ('old/../admin', 'string', X'6869');",
            ])
        #expect(edit.status == 0, "\(edit.stderr)")
        try killAndWaitForRestart(stack)

        #expect(try stack.eval("return persisted.fine, persisted.deep, config.get('site'), config.get('odd.path')").text
            == "kept\tnil\tnorth\tnil")
        let status = try stack.request("/api/v1/admin/status", token: stack.adminToken).text
        let aside = try #require(
            (try JSONSerialization.jsonObject(with: Data(status.utf8)) as? [String: Any])?["set_aside"] as? [[String: Any]])
        #expect(aside.map { "\($0["section"]!) \($0["key"]!) \($0["reason"]!)" } == [
            "config odd.path not a config value (type 'widget')",
            "config old/../admin not a config path: bad path 'old/../admin': use 1 to 256 letters, digits, '.', '_', '-' and '/', not starting or ending with '.', with no part between slashes empty, '.' or '..'",
            "persisted deep stored data is damaged",
        ])
        #expect(aside.map { $0["bytes"] as? Int } == [1, 2, deep.count])
        let log = stack.luaexecdLog()
        #expect(log.contains(#"saved entry not loaded: set aside (luaexec aside list) key=deep reason="stored data is damaged" section=persisted"#))
        #expect(log.contains("key=odd.path"))
        let listing = try luaexec(stack, ["aside", "list"])
        #expect(listing.status == 0)
        #expect(listing.stdout.hasPrefix("ID  SECTION    KEY           BYTES  SINCE"))
        #expect(listing.stdout.contains("persisted  deep          \(deep.count)"))
        // Nothing is lost: the bytes come back as they were stored.
        let exported = stack.directory + "/deep.bin"
        #expect(try luaexec(stack, ["aside", "export", "3", exported]).status == 0)
        #expect(try Data(contentsOf: URL(fileURLWithPath: exported)) == Data(deep))
        // Another start finds nothing to set aside again, and the value does not come back by itself.
        try killAndWaitForRestart(stack)
        #expect(try luaexec(stack, ["aside", "list"]).stdout.components(separatedBy: "\n").count == 5)
        #expect(try luaexec(stack, ["aside", "drop", "3"]).status == 0)
        #expect(try luaexec(stack, ["aside", "drop", "3"]).status == 1)
        #expect(try luaexec(stack, ["aside", "drop", "2"]).status == 0)
        #expect(try luaexec(stack, ["aside", "drop", "1"]).status == 0)
        #expect(try luaexec(stack, ["aside", "list"]).stdout == "nothing is set aside\n")
        #expect(try stack.request("/api/v1/admin/status", token: stack.adminToken).text.contains(#""set_aside":[]"#))
    }

    @Test("a change the database cannot take (locked by another process, disk full) answers 'not saved' and is undone; a restart agrees")
    func failedSaveIsUndone() throws {
        // The database on a small file system of its own, so that it can be filled.
        let mountPoint = NSTemporaryDirectory() + "luaexec-tmpfs-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: mountPoint, withIntermediateDirectories: true)
        let mounted = try Stack.run("/bin/mount", ["-t", "tmpfs", "-o", "size=4m", "tmpfs", mountPoint])
        try #require(mounted.status == 0, "mount needs root: \(mounted.stderr)")
        defer { _ = try? Stack.run("/bin/umount", ["-l", mountPoint]) }
        let database = mountPoint + "/luaexec.db"
        let stack = try Stack(launch: .supervisedSocketActivation, database: database)
        #expect(try stack.eval("persisted.x = 'saved' config.set('door', 'shut')").status == 200)

        func expectUndone(_ situation: String, cause: String) throws {
            let refused = try stack.eval(
                "persisted.x = ('n'):rep(300000) persisted.y = true config.set('door', 'open') return 'ran'")
            #expect(refused.status == 500, "\(situation)")
            #expect(refused.headers["x-lua-error"] == "runtime")
            #expect(refused.text.contains("the changes to persisted and config were not saved ("), "\(situation): \(refused.text)")
            #expect(refused.text.contains(cause), "\(situation): \(refused.text)")
            #expect(refused.text.contains("; they are undone: persisted and config hold what was saved"))
            #expect(
                try stack.eval("return persisted.x, persisted.y, config.get('door')").text == "saved\tnil\tshut",
                "\(situation)")
        }

        // Locked: another process holds the write lock past the busy timeout (5 s).
        let holder = Process()
        holder.executableURL = URL(fileURLWithPath: "/usr/bin/sqlite3")
        holder.arguments = [database]
        let input = Pipe()
        holder.standardInput = input
        holder.standardOutput = FileHandle.nullDevice
        try holder.run()
        input.fileHandleForWriting.write(Data("BEGIN IMMEDIATE;\nINSERT INTO meta VALUES ('held', 'x');\n".utf8))
        try Stack.waitUntil(timeout: .seconds(10), "the other process to hold the lock") {
            let probe = try? Stack.run("/usr/bin/sqlite3", [database, "BEGIN IMMEDIATE; ROLLBACK;"])
            return probe?.stderr.contains("database is locked") == true
        }
        try expectUndone("locked", cause: "database is locked")
        input.fileHandleForWriting.write(Data("ROLLBACK;\n.quit\n".utf8))
        holder.waitUntilExit()

        // Full: nothing more fits on the file system.
        let filler = mountPoint + "/filler"
        _ = try Stack.run("/bin/dd", ["if=/dev/zero", "of=\(filler)", "bs=64k"])
        try expectUndone("full", cause: "full")
        try FileManager.default.removeItem(atPath: filler)

        // What the state served is what a restart finds, and changes stick again.
        try killAndWaitForRestart(stack)
        #expect(try stack.eval("return persisted.x, persisted.y, config.get('door')").text == "saved\tnil\tshut")
        #expect(try stack.eval("persisted.x = 'later'").status == 200)
        try killAndWaitForRestart(stack)
        #expect(try stack.eval("return persisted.x").text == "later")
    }

    /// Issue 24 (V6), the read-only case: root cannot be refused a write by a file's mode, but
    /// an immutable file (chattr +i, on the ext4 of /var/tmp) refuses root too. The -shm file
    /// stays writable: SQLite maps it, and a write to a mapped immutable page is SIGBUS, not an
    /// error (seen with sqlite3 itself).
    @Test("a change the database refuses (its files made immutable under the daemon) answers 'not saved' and is undone; a restart agrees")
    func readOnlyDatabaseIsUndone() throws {
        let directory = "/var/tmp/luaexec-ro-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let database = directory + "/luaexec.db"
        let stack = try Stack(launch: .supervisedSocketActivation, database: database)
        #expect(try stack.eval("persisted.x = 'saved' config.set('door', 'shut')").status == 200)
        let frozen = [database, database + "-wal", directory]
        let frozenDone = try Stack.run("/usr/bin/chattr", ["+i"] + frozen)
        try #require(frozenDone.status == 0, "chattr +i needs root and a file system that keeps the flag: \(frozenDone.stderr)")
        var thawed = false
        func thaw() throws {
            guard !thawed else { return }
            thawed = true
            #expect(try Stack.run("/usr/bin/chattr", ["-i"] + frozen).status == 0)
        }
        defer { try? thaw() }

        let refused = try stack.eval("persisted.x = 'changed' persisted.y = true config.set('door', 'open') return 'ran'")
        #expect(refused.status == 500)
        #expect(refused.headers["x-lua-error"] == "runtime")
        #expect(refused.text.contains("the changes to persisted and config were not saved ("), "\(refused.text)")
        #expect(refused.text.contains("; they are undone: persisted and config hold what was saved"))
        #expect(try stack.eval("return persisted.x, persisted.y, config.get('door')").text == "saved\tnil\tshut")
        // Other requests go on meanwhile.
        #expect(try stack.eval("return 1 + 1").text == "2")

        try thaw()
        try killAndWaitForRestart(stack)
        #expect(try stack.eval("return persisted.x, persisted.y, config.get('door')").text == "saved\tnil\tshut")
        #expect(try stack.eval("persisted.x = 'later'").status == 200)
        try killAndWaitForRestart(stack)
        #expect(try stack.eval("return persisted.x").text == "later")
    }

    @Test("reset keeps persisted and the config store, loses shared and other globals")
    func resetKeeps() throws {
        let stack = try Stack()
        #expect(
            try stack.eval("persisted.kept = 'p' config.set('kept.path', 3) shared.gone = 1 gone = 1").status == 200)
        #expect(try stack.request("/api/v1/admin/reset", method: "POST", token: stack.adminToken).status == 200)
        #expect(
            try stack.eval("return persisted.kept, config.get('kept.path'), shared.gone, gone").text == "p\t3\tnil\tnil"
        )
    }

    @Test("the size cap and refused types answer with a clear error, and the stored contents stay")
    func refusals() throws {
        let stack = try Stack(settings: ["limits.persisted=1"])
        #expect(try stack.eval("persisted.x = 'kept'").status == 200)
        let function = try stack.eval("persisted.x = print")
        #expect(function.status == 500)
        #expect(
            function.text.hasPrefix(
                "interactive.lua:1: persisted: cannot store a function (only strings, numbers, booleans and tables of them)\n"
            ))
        let cycle = try stack.eval("local t = {} t[1] = t persisted.x = t")
        #expect(cycle.text.hasPrefix("interactive.lua:1: persisted: cannot store a table that contains itself\n"))
        let big = try stack.eval("persisted.big = ('x'):rep(2 << 20)")
        #expect(big.status == 500)
        #expect(
            big.text.hasPrefix(
                "interactive.lua:1: persisted: storing this would exceed the size limit of 1048576 bytes"))
        #expect(try stack.eval("return persisted.x, persisted.big").text == "kept\tnil")
    }

    @Test("config callbacks run once for a change from a chunk, from the CLI and from the admin API, within its limits")
    func configCallbacks() throws {
        let stack = try Stack(settings: ["limits.time=1"])
        #expect(
            try stack.eval(
                """
                fired = {}
                config.register('door.code', function(path) fired[#fired + 1] = path .. '=' .. tostring(config.get(path)) end)
                config.register('broken', function() error('callback broke') end)
                config.register('looping', function() loops = (loops or 0) + 1 while true do end end)
                """
            ).status == 200)
        #expect(try stack.eval("config.set('door.code', 1234)").status == 200)
        #expect(try stack.eval("return table.concat(fired, ' ')").text == "door.code=1234")

        #expect(try luaexec(stack, ["config", "set", "door.code", "4321"]).status == 0)
        try Stack.waitUntil(timeout: .seconds(10), "the CLI's change to reach the state") {
            (try? stack.eval("return #fired").text) == "2"
        }
        #expect(try stack.eval("return fired[2], math.type(config.get('door.code'))").text == "door.code=4321\tinteger")

        let put = try stack.request(
            "/api/v1/admin/config/door.code", method: "PUT", token: stack.adminToken,
            body: Array(#"{"value":"open sesame"}"#.utf8))
        #expect(put.status == 200)
        #expect(put.text == #"{"path":"door.code","value":"open sesame"}"#)
        #expect(
            try stack.eval("return table.concat(fired, ' ')").text
                == "door.code=1234 door.code=4321 door.code=open sesame")

        // A callback that fails or loops fails the request that set its path, within that request's
        // limits, once; the value stays set and saved.
        let broken = try stack.request(
            "/api/v1/admin/config/broken", method: "PUT", token: stack.adminToken, body: Array(#"{"value":true}"#.utf8))
        #expect(broken.status == 500)
        #expect(broken.headers["x-lua-error"] == "runtime")
        #expect(
            broken.text.contains(
                "config: 'broken' was set and saved, but a function registered for it failed: interactive.lua:3: callback broke"))
        let looping = try stack.eval("config.set('looping', 1) return 'after'")
        #expect(looping.status == 504)
        #expect(looping.headers["x-lua-error"] == "timeout")
        // With where the callback was stopped (SPEC O11): in its loop, or, on a loaded machine
        // where the deadline passed first, as luaexec called it.
        #expect(
            looping.text.hasPrefix(
                "config: 'looping' was set and saved, but a function registered for it failed: "
                    + "the chunk exceeded its time limit (1.0 seconds)\nstack traceback:\n\t"))
        // Later requests, of any kind, do not run it again.
        for _ in 0..<3 { #expect(try stack.eval("return 1").text == "1") }
        #expect(try stack.request("/api/v1/admin/status", token: stack.adminToken).status == 200)
        #expect(try stack.eval("return config.get('broken'), config.get('looping'), loops").text == "true\t1\t1")
        #expect(try stack.eval("return #fired").text == "3")
    }

    @Test("the admin config API reads, sets and unsets, and the CLI sees the same store")
    func configAPI() throws {
        let stack = try Stack()
        #expect(
            try stack.eval(
                "config.set('a.int', 5) config.set('a.num', 2.5) config.set('a.flag', false) config.set('a.s', 'x\"y')"
            ).status == 200)
        let all = try stack.request("/api/v1/admin/config", token: stack.adminToken)
        #expect(all.text == #"{"config":{"a.flag":false,"a.int":5,"a.num":2.5,"a.s":"x\"y"}}"#)
        #expect(
            try stack.request("/api/v1/admin/config/a.int", token: stack.adminToken).text
                == #"{"path":"a.int","value":5}"#)
        #expect(try stack.request("/api/v1/admin/config/none", token: stack.adminToken).status == 404)
        #expect(try stack.request("/api/v1/admin/config/.bad", token: stack.adminToken).status == 400)
        let bad = try stack.request(
            "/api/v1/admin/config/a.int", method: "PUT", token: stack.adminToken, body: Array("5".utf8))
        #expect(bad.status == 400)
        // Numbers keep their kind, as config.set keeps them: 2.0 a float, 2 an integer; an
        // integer past 64 bits is refused, not rounded, and stores nothing.
        for (body, kind) in [(#"{"value":2.0}"#, "float"), (#"{"value": 2}"#, "integer"), (#"{"value":2e0}"#, "float")] {
            let put = try stack.request(
                "/api/v1/admin/config/a.kind", method: "PUT", token: stack.adminToken, body: Array(body.utf8))
            #expect(put.status == 200, "\(body)")
            #expect(try stack.eval("return math.type(config.get('a.kind'))").text == kind, "\(body)")
        }
        #expect(try stack.request("/api/v1/admin/config/a.kind", token: stack.adminToken).text == #"{"path":"a.kind","value":2.0}"#)
        #expect(try stack.request("/api/v1/admin/config/a.kind", method: "DELETE", token: stack.adminToken).status == 200)
        let tooBig = try stack.request(
            "/api/v1/admin/config/a.big", method: "PUT", token: stack.adminToken,
            body: Array(#"{"value":18446744073709551616}"#.utf8))
        #expect(tooBig.status == 400)
        #expect(
            tooBig.text
                == #"{"ok":false,"error":{"kind":"http","message":"send {\"value\": ...} with a string, a number or a boolean (DELETE unsets): 18446744073709551616 does not fit a Lua integer (-2^63 to 2^63-1); send it as a string (at byte 9)"}}"#)
        #expect(try stack.request("/api/v1/admin/config/a.big", token: stack.adminToken).status == 404)
        for body in [#"{"value":1,"other":2}"#, #"{"value":[1]}"#, #"{"value":null}"#, #"{"value":1} x"#] {
            let refused = try stack.request(
                "/api/v1/admin/config/a.big", method: "PUT", token: stack.adminToken, body: Array(body.utf8))
            #expect(refused.status == 400, "\(body)")
        }
        #expect(
            try stack.request("/api/v1/admin/config/a.int", method: "DELETE", token: stack.adminToken).status == 200)
        #expect(try stack.eval("return config.get('a.int')").text == "")
        #expect(
            try stack.request("/api/v1/admin/config/a.int", method: "DELETE", token: stack.adminToken).status == 404)
        let exec = try stack.makeToken("exec-only", scopes: ["exec"])
        #expect(try stack.request("/api/v1/admin/config", token: exec).status == 403)

        #expect(try luaexec(stack, ["config", "get", "a.num"]).stdout == "2.5\n")
        #expect(
            try luaexec(stack, ["config", "list"]).stdout == """
                PATH    TYPE     VALUE
                a.flag  boolean  false
                a.num   number   2.5
                a.s     string   x"y

                """)
        #expect(try luaexec(stack, ["config", "get", "a.int"]).status == 1)
        #expect(try luaexec(stack, ["config", "set", "a.n", "x", "--type", "integer"]).status == 64)
        #expect(try luaexec(stack, ["config", "set", "a.s", "7", "--type", "string"]).status == 0)
        try Stack.waitUntil(timeout: .seconds(10), "the change to reach the state") {
            (try? stack.eval("return type(config.get('a.s'))").text) == "string"
        }
        #expect(try luaexec(stack, ["config", "unset", "a.s"]).status == 0)
        try Stack.waitUntil(timeout: .seconds(10), "the unset to reach the state") {
            (try? stack.eval("return config.get('a.s')").text) == ""
        }

        // Settings, not data: a value over 64 KiB is refused at the assignment, by each way in,
        // and nothing is stored; the box goes on serving.
        let huge = String(repeating: "x", count: 65537)
        let put = try stack.request(
            "/api/v1/admin/config/a.huge", method: "PUT", token: stack.adminToken, headers: ["Accept: application/json"],
            body: Array(#"{"value":"\#(huge)"}"#.utf8))
        #expect(put.status == 400)
        #expect(put.text.contains("a config value is at most 65536 bytes; this one is 65537 (keep data in persisted)"))
        let cli = try luaexec(stack, ["config", "set", "a.huge", huge])
        #expect(cli.status == 64)
        #expect(cli.stderr.contains("a config value is at most 65536 bytes"))
        let chunk = try stack.eval("config.set('a.huge', ('x'):rep(65537))")
        #expect(chunk.status == 500)
        #expect(chunk.headers["x-lua-error"] == "runtime")
        #expect(chunk.text.hasPrefix("interactive.lua:1: config.set: a value is at most 65536 bytes; this one is 65537"))
        #expect(try stack.eval("return config.get('a.huge'), 1 + 1").text == "nil\t2")
        #expect(try luaexec(stack, ["config", "get", "a.huge"]).status == 1)
    }

    @Test("a backup taken while 8 clients write restores, and luaexecd serves the restored data")
    func backupAndRestore() throws {
        let stack = try Stack()
        #expect(try stack.eval("persisted.before = 'backup' config.set('site', 'north')").status == 200)
        let stop = Atomic(false)
        let writers = (0..<8).map { n in
            Thread {
                var i = 0
                while !stop.load(ordering: .relaxed) && i < 400 {
                    i += 1
                    _ = try? stack.eval("persisted.w\(n) = \(i)")
                }
            }
        }
        for writer in writers { writer.start() }
        try Stack.waitUntil(timeout: .seconds(20), "the writers to write") {
            (try? stack.eval("return persisted.w7 ~= nil").text) == "true"
        }
        let file = stack.directory + "/backup.db"
        let backup = try luaexec(stack, ["backup", file])
        #expect(backup.status == 0, "\(backup.stderr)")
        #expect(backup.stdout.hasPrefix("\(file): a backup of "), "\(backup.stdout)")
        stop.store(true, ordering: .relaxed)
        var info = stat()
        #expect(stat(file, &info) == 0 && info.st_mode & 0o777 == 0o600)
        #expect(try luaexec(stack, ["backup", file]).status != 0)  // never overwrites

        #expect(
            try stack.eval("persisted.before = 'changed' persisted.after = true config.set('site', 'south')").status
                == 200)
        let restored = try luaexec(stack, ["restore", file])
        #expect(restored.status == 0, "\(restored.stderr)")
        #expect(restored.stdout.hasSuffix(": restored from \(file); a running luaexecd starts afresh from it within a second\n"))
        try Stack.waitUntil(timeout: .seconds(20), "luaexecd to start afresh from the backup") {
            (try? stack.eval("return persisted.before, persisted.after, config.get('site')").text)
                == "backup\tnil\tnorth"
        }
        // The tokens are part of the backup: the admin token still works, and the state has
        // every writer's counter as a whole number.
        #expect(
            try stack.eval(
                "local n = 0 for i = 0, 7 do if math.type(persisted['w' .. i]) == 'integer' then n = n + 1 end end return n"
            ).text == "8")
        #expect(stack.luaexecdLog().contains("a backup was restored"))
    }

    @Test("restore refuses a damaged or foreign file and changes nothing")
    func restoreRefuses() throws {
        let stack = try Stack()
        #expect(try stack.eval("persisted.x = 'untouched'").status == 200)
        let garbage = stack.directory + "/garbage.db"
        try Data((0..<4096).map { _ in UInt8.random(in: 0...255) }).write(to: URL(fileURLWithPath: garbage))
        let foreign = stack.directory + "/foreign.db"
        // Another program's SQLite database, with a table of the same name.
        #expect(try Stack.run("/usr/bin/sqlite3", [foreign, "CREATE TABLE token (x)"]).status == 0)
        // A real backup, cut short.
        let cut = stack.directory + "/cut.db"
        #expect(try luaexec(stack, ["backup", cut]).status == 0)
        let whole = try Data(contentsOf: URL(fileURLWithPath: cut))
        try whole.prefix(whole.count / 2).write(to: URL(fileURLWithPath: cut))
        for (file, reason) in [
            (garbage, "file is not a database"), (foreign, "it is not a luaexec database"), (cut, "was not restored"),
            (stack.directory + "/missing.db", "cannot read"),
        ] {
            let result = try luaexec(stack, ["restore", file])
            #expect(result.status == 1, "\(file)")
            #expect(result.stderr.contains(reason), "\(result.stderr)")
        }
        #expect(try stack.eval("return persisted.x").text == "untouched")
        #expect(!stack.luaexecdLog().contains("a backup was restored"))
    }

    /// A restored trigger would act in the live database: this one inserts a revoked token again,
    /// so revocation answered success while the token kept working (issue 24, item 7).
    @Test("restore refuses a backup whose trigger brings a revoked token back, and revoking then works")
    func restoreRefusesTrigger() throws {
        let stack = try Stack()
        let victim = try stack.makeToken("victim", scopes: ["exec"])
        #expect(try stack.request(token: victim, body: Array("return 1".utf8)).text == "1")
        let file = stack.directory + "/crafted.db"
        #expect(try luaexec(stack, ["backup", file]).status == 0)
        let trigger = """
            CREATE TRIGGER keep_token AFTER DELETE ON token BEGIN
                INSERT INTO token VALUES (old.name, old.digest, old.scopes, old.created_at, old.expires_at, old.last_used_at);
            END
            """
        #expect(try Stack.run("/usr/bin/sqlite3", [file, trigger]).status == 0)

        let restored = try luaexec(stack, ["restore", file])
        #expect(restored.status == 1)
        #expect(
            restored.stderr
                == "luaexec: \(file) was not restored: its schema is not luaexec's (version 7): "
                + "trigger 'keep_token' on token, which luaexec's schema has not\n")
        let schema = try Stack.run(
            "/usr/bin/sqlite3", [stack.database, "SELECT name FROM sqlite_master WHERE type NOT IN ('table', 'index')"])
        #expect(schema.stdout == "")

        let revoked = try stack.request("/api/v1/admin/tokens/victim", method: "DELETE", token: stack.adminToken)
        #expect(revoked.status == 200)
        #expect(revoked.text == "{\"revoked\":\"victim\"}")
        let refused = try stack.request(token: victim, body: Array("return 1".utf8))
        #expect(refused.status == 401)
        #expect(refused.headers["www-authenticate"] == "Bearer realm=\"luaexec\", error=\"invalid_token\"")
        #expect(try luaexec(stack, ["token", "list", "--json"]).stdout.contains("victim") == false)
        #expect(!stack.luaexecdLog().contains("a backup was restored"))
    }
}
