import Foundation
import Testing

/// `make run` (scripts/run.sh) for real, as CI runs it: as root (issue 24, item 15). It must
/// never run luaexecd as root, and the files holding token digests and the token are their
/// owner's alone. The binaries are the tests' own (`LUAEXEC_BIN_DIR`), not a release build.
@Suite("make run", .serialized)
struct MakeRunTests {
    struct Account {
        var name: String
        var uid: UInt32
        var gid: UInt32
    }

    static func account(_ name: String) -> Account? {
        guard let entry = getpwnam(name) else { return nil }
        return Account(name: name, uid: entry.pointee.pw_uid, gid: entry.pointee.pw_gid)
    }

    /// `Uid:` and `Gid:` of /proc/PID/status: real, effective, saved and filesystem ids.
    static func ids(of pid: Int32) throws -> (uid: [UInt32], gid: [UInt32]) {
        let status = String(decoding: try Data(contentsOf: URL(fileURLWithPath: "/proc/\(pid)/status")), as: UTF8.self)
        func field(_ name: String) -> [UInt32] {
            let line = status.split(separator: "\n").first { $0.hasPrefix(name + ":") } ?? ""
            return line.split(whereSeparator: { $0 == "\t" || $0 == " " }).dropFirst().compactMap { UInt32($0) }
        }
        return (field("Uid"), field("Gid"))
    }

    /// The children of `parent` whose command is `name` (from /proc/PID/stat).
    static func children(of parent: Int32, named name: String) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> Int32? in
            guard let pid = Int32(entry),
                let stat = try? String(contentsOfFile: "/proc/\(entry)/stat", encoding: .utf8),
                let open = stat.firstIndex(of: "("), let close = stat.lastIndex(of: ")")
            else { return nil }
            let command = stat[stat.index(after: open)..<close]
            let rest = stat[stat.index(close, offsetBy: 2)...].split(separator: " ")
            guard command == name, rest.count > 1, Int32(rest[1]) == parent else { return nil }
            return pid
        }
    }

    static func owner(_ path: String) throws -> (mode: Int, uid: UInt32) {
        let attributes = try FileManager.default.attributesOfItem(atPath: path)
        return (
            try #require(attributes[.posixPermissions] as? Int),
            UInt32(try #require(attributes[.ownerAccountID] as? NSNumber).uint32Value)
        )
    }

    /// Who `make run` runs as when root runs it: the user who ran `sudo make run`, or else the
    /// system user `luaexec` (made when missing). `nobody` stands in for a sudo user here.
    @Test(
        "run as root, make run serves as another user: luaexecd and nginx, the run directory, database and token 0600",
        .enabled(if: geteuid() == 0, "what root's make run does (CI runs the tests as root)"),
        arguments: [nil, "nobody"] as [String?])
    func asRoot(sudoUser: String?) throws {
        let directory = NSTemporaryDirectory() + "luaexec-makerun-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory + "/run", withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let runDirectory = directory + "/run"
        // What an earlier make run as root left: a database of mode 0644, owned by root.
        let earlier = try Stack.run(
            Stack.binDirectory + "/luaexec", ["token", "create", "earlier", "--database", runDirectory + "/luaexec.db"])
        #expect(earlier.status == 0)
        #expect(chmod(runDirectory + "/luaexec.db", 0o644) == 0)

        let port = try Stack.freePort()
        let httpPort = try Stack.freePort()
        var environment = [
            "LUAEXEC_BIN_DIR=\(Stack.binDirectory)", "LUAEXEC_RUN_DIR=\(runDirectory)", "LUAEXEC_PORT=\(port)",
            "LUAEXEC_HTTP_PORT=\(httpPort)",
        ]
        if let sudoUser { environment.append("SUDO_USER=\(sudoUser)") }
        let run = try Stack.startWithLifeline(
            "/usr/bin/env", ["-u", "SUDO_USER"] + environment + [Stack.repository + "/scripts/run.sh"],
            log: directory + "/make-run.log", pidFile: directory + "/make-run.pid")
        defer { try? run.lifeline.close() }
        let token = runDirectory + "/token"
        let log = { (try? String(contentsOfFile: directory + "/make-run.log", encoding: .utf8)) ?? "" }
        try Stack.waitUntil(timeout: .seconds(60), "make run to serve (\(log()))") {
            FileManager.default.fileExists(atPath: token)
                || FileManager.default.fileExists(atPath: directory + "/make-run.pid.status")
        }
        let runPID = try Stack.waitForPIDFile(directory + "/make-run.pid")
        let secret = try String(contentsOfFile: token, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines)

        let user = try #require(
            Self.account(sudoUser ?? "luaexec"), "the user luaexec exists once make run ran as root")
        #expect(user.uid != 0)
        let daemons = Self.children(of: runPID, named: "luaexecd")
        #expect(daemons.count == 1)
        let nginx = try #require(
            Int32(
                try String(contentsOfFile: runDirectory + "/nginx.pid", encoding: .utf8).trimmingCharacters(
                    in: .whitespacesAndNewlines)))
        for pid in daemons + [nginx] + Self.children(of: nginx, named: "nginx") + [runPID] {
            let ids = try Self.ids(of: pid)
            #expect(ids.uid == Array(repeating: user.uid, count: 4), "pid \(pid)")
            #expect(ids.gid == Array(repeating: user.gid, count: 4), "pid \(pid)")
        }
        #expect(try Self.owner(runDirectory) == (0o700, user.uid))
        #expect(try Self.owner(token) == (0o600, user.uid))
        for file in ["luaexec.db", "luaexec.db-wal", "luaexec.db-shm"] {
            #expect(try Self.owner(runDirectory + "/" + file) == (0o600, user.uid), "\(file)")
        }
        #expect(log().contains("luaexecd and nginx run as \(user.name)"))

        // It serves, with the token it printed.
        let answer = try Stack.run(
            "/usr/bin/curl",
            [
                "-sk", "-H", "Authorization: Bearer \(secret)", "https://127.0.0.1:\(port)/api/v1/exec/interactive.lua",
                "-d", "return 1+1",
            ])
        #expect(answer.stdout == "2")
        // luaexecd, as that user, can read no file of root's.
        let probe = try Stack.run(
            "/usr/bin/curl",
            [
                "-sk", "-H", "Authorization: Bearer \(secret)", "https://127.0.0.1:\(port)/api/v1/exec/interactive.lua",
                "-d", "return io.open('/etc/shadow') == nil, io.open('\(Stack.certificate.key)') == nil",
            ])
        #expect(probe.stdout == "true\ttrue")

        // SIGTERM (what Ctrl-C does to the foreground job) stops both, and the token goes.
        try run.lifeline.close()
        try Stack.waitUntil(timeout: .seconds(20), "make run to stop") {
            FileManager.default.fileExists(atPath: directory + "/make-run.pid.status")
        }
        #expect(!FileManager.default.fileExists(atPath: token))
        for pid in daemons + [nginx] { #expect(kill(pid, 0) != 0, "pid \(pid) outlived make run") }
    }
}
