import DaemonConfig
import Testing

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

@Suite struct DaemonSettingsTests {
    static let example = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("packaging/luaexecd.conf").path

    @Test func anEmptyFileGivesTheDefaults() throws {
        #expect(try DaemonSettings.parse("", file: "c") == DaemonSettings())
        #expect(try DaemonSettings.parse("# nothing set\n", file: "c") == DaemonSettings())
    }

    @Test func theShippedExampleStatesEverySettingWithItsDefault() throws {
        #expect(try DaemonSettings.load(path: Self.example) == DaemonSettings())
        let text = try String(contentsOf: URL(fileURLWithPath: Self.example), encoding: .utf8)
        for key in DaemonSettings.keys {
            let leaf = key.name.split(separator: ".").last!
            #expect(text.contains("\n  \(leaf):") || text.contains("\n\(leaf):"), "the example lacks \(key.name)")
        }
    }

    @Test func everySettingIsRead() throws {
        let settings = try DaemonSettings.parse(
            """
            listen:
              socket: /run/luaexec/fcgi.sock
              threads: 8
            database: /srv/lx.db
            lua:
              init_dir: /srv/init.d
              profile: restricted
            exec:
              interactive: false
              max_body: 4096
            limits:
              time: 0.5
              memory: 32
              queue_timeout: 2
              queue_capacity: 3
              wait_capacity: 7
            auth:
              failure_limit: 4
              block_seconds: 5
            log:
              level: debug
            """, file: "c")
        var expected = DaemonSettings()
        expected.socket = "/run/luaexec/fcgi.sock"
        expected.threads = 8
        expected.database = "/srv/lx.db"
        expected.initDir = "/srv/init.d"
        expected.profile = .restricted
        expected.interactive = false
        expected.maxBody = 4096
        expected.timeLimit = 0.5
        expected.memoryLimitMiB = 32
        expected.queueTimeout = 2
        expected.queueCapacity = 3
        expected.waitCapacity = 7
        expected.authFailureLimit = 4
        expected.authBlockSeconds = 5
        expected.logLevel = "debug"
        #expect(settings == expected)
    }

    @Test(arguments: [
        ("limits:\n  time: 5\n  tme: 3\n", "/etc/luaexec/luaexecd.conf:3: unknown setting 'limits.tme' (known here: limits.time, limits.init_time, limits.memory, limits.persisted, limits.queue_timeout, limits.wait, limits.timers, limits.endpoints, limits.queue_capacity, limits.wait_capacity)"),
        ("\nlimts:\n  time: 5\n", "/etc/luaexec/luaexecd.conf:2: unknown setting 'limts' (known here: audit, auth, exec, limits, listen, log, lua, scripts, database)"),
        ("limits:\n  time: fast\n", "/etc/luaexec/luaexecd.conf:2: limits.time: expected a number of seconds above 0, at most 86400, got 'fast'"),
        ("limits:\n  time: -1\n", "/etc/luaexec/luaexecd.conf:2: limits.time: expected a number of seconds above 0, at most 86400, got '-1'"),
        ("limits:\n  memory: 1.5\n", "/etc/luaexec/luaexecd.conf:2: limits.memory: expected a whole number of MiB from 4 to 1048576, got '1.5'"),
        ("lua:\n  profile: tight\n", "/etc/luaexec/luaexecd.conf:2: lua.profile: expected full or restricted, got 'tight'"),
        ("exec:\n  interactive: maybe\n", "/etc/luaexec/luaexecd.conf:2: exec.interactive: expected true or false, got 'maybe'"),
        ("log:\n  level: loud\n", "/etc/luaexec/luaexecd.conf:2: log.level: expected trace, debug, info, notice, warning, error, critical, got 'loud'"),
        ("limits:\n  time: [1, 2]\n", "/etc/luaexec/luaexecd.conf:2: limits.time: expected a number of seconds above 0, at most 86400, got a list"),
        ("limits: 5\n", "/etc/luaexec/luaexecd.conf:1: 'limits' must be a mapping of names to values"),
        ("- a\n- b\n", "/etc/luaexec/luaexecd.conf:1: the file must be a mapping of names to values"),
        ("database:\n", "/etc/luaexec/luaexecd.conf:1: database: expected the path of the SQLite database, got an empty value"),
        ("exec:\n  interactive: \"true\"\n", "/etc/luaexec/luaexecd.conf:2: exec.interactive: expected true or false, got 'true' in quotes, which makes it text: drop the quotes"),
        ("exec:\n  interactive: yes\n", "/etc/luaexec/luaexecd.conf:2: exec.interactive: expected true or false, got 'yes'"),
        ("limits:\n  time: 0x10\n", "/etc/luaexec/luaexecd.conf:2: limits.time: expected a number of seconds above 0, at most 86400, got '0x10'"),
        ("limits:\n  time: .inf\n", "/etc/luaexec/luaexecd.conf:2: limits.time: expected a number of seconds above 0, at most 86400, got '.inf'"),
    ])
    func aWrongSettingNamesTheFileTheLineAndTheReason(text: String, message: String) {
        #expect(throws: ConfigError.self) { try DaemonSettings.parse(text, file: "/etc/luaexec/luaexecd.conf") }
        do {
            _ = try DaemonSettings.parse(text, file: "/etc/luaexec/luaexecd.conf")
        } catch {
            #expect(error.description == message)
        }
    }

    @Test func brokenYAMLNamesTheLine() {
        do {
            _ = try DaemonSettings.parse("limits:\n  time: 5\n   memory: [\n", file: "x.conf")
            Issue.record("parsed")
        } catch {
            #expect(error.line == 3)
            #expect(error.description.hasPrefix("x.conf:3: not valid YAML: "))
        }
    }

    @Test func quotedTextAndNumbersInEveryFormAreRead() throws {
        let settings = try DaemonSettings.parse(
            "database: \"/srv/with space.db\"\nlimits:\n  time: .5\n  queue_timeout: 1e1\n  memory: +64\n", file: "c")
        #expect(settings.database == "/srv/with space.db")
        #expect(settings.timeLimit == 0.5)
        #expect(settings.queueTimeout == 10)
        #expect(settings.memoryLimitMiB == 64)
    }

    @Test func aSettingGivenTwiceIsRefused() {
        do {
            _ = try DaemonSettings.parse("limits:\n  time: 5\n  time: 6\n", file: "x.conf")
            Issue.record("parsed")
        } catch {
            #expect(error.description == "x.conf:3: set more than once: time")
        }
    }

    @Test func aMissingFileSaysSo() {
        do {
            _ = try DaemonSettings.load(path: "/nonexistent/luaexecd.conf")
            Issue.record("loaded")
        } catch {
            #expect(error.line == nil)
            #expect(error.description.hasPrefix("/nonexistent/luaexecd.conf: cannot read the file"))
        }
    }

    @Test func onlySocketThreadsAndDatabaseNeedARestart() {
        var changed = DaemonSettings()
        changed.timeLimit = 1
        changed.logLevel = "debug"
        changed.profile = .restricted
        #expect(DaemonSettings().restartOnlyChanges(to: changed) == [])
        changed.threads = 2
        changed.database = "/x"
        #expect(DaemonSettings().restartOnlyChanges(to: changed) == ["listen.threads", "database"])
    }
}

@Suite struct SettingOverrideTests {
    @Test func setTakesTheFilesNamesAndChecks() throws {
        var settings = DaemonSettings()
        try settings.set("limits.time=0.5")
        try settings.set("listen.socket=/tmp/x.sock")
        try settings.set("exec.interactive=false")
        #expect(settings.timeLimit == 0.5)
        #expect(settings.socket == "/tmp/x.sock")
        #expect(settings.interactive == false)
        try settings.set("listen.socket=")
        #expect(settings.socket == nil)
    }

    @Test(arguments: [
        ("limits.time", "--set: 'limits.time' is not NAME=VALUE"),
        ("limits.tim=3", "--set: unknown setting 'limits.tim' (known: listen.socket, listen.threads, listen.max_connections, listen.read_timeout, database, lua.init_dir, lua.profile, lua.safe_mode, exec.interactive, exec.actions, exec.max_body, limits.time, limits.init_time, limits.memory, limits.persisted, limits.queue_timeout, limits.wait, limits.timers, limits.endpoints, limits.queue_capacity, limits.wait_capacity, auth.failure_limit, auth.block_seconds, log.level, audit.key, audit.retention_days, audit.max_records, scripts.keep_versions)"),
        ("limits.memory=lots", "--set: limits.memory: expected a whole number of MiB from 4 to 1048576, got 'lots'"),
        // Past an upper bound: this one was accepted and trapped luaexecd at the first failed authentication.
        (
            "auth.block_seconds=9223372036854775807",
            "--set: auth.block_seconds: expected a whole number of seconds from 1 to 31536000 (a year), got '9223372036854775807'"
        ),
        ("limits.queue_capacity=1000001", "--set: limits.queue_capacity: expected a whole number from 1 to 1000000, got '1000001'"),
        ("limits.wait_capacity=0", "--set: limits.wait_capacity: expected a whole number from 1 to 100000, got '0'"),
        ("exec.max_body=1073741825", "--set: exec.max_body: expected a number of bytes from 0 to 1073741824, got '1073741825'"),
    ])
    func aWrongOverrideSaysWhy(assignment: String, message: String) {
        var settings = DaemonSettings()
        do {
            try settings.set(assignment)
            Issue.record("accepted")
        } catch {
            #expect(error.description == message)
        }
    }
}
