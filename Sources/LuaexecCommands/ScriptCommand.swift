import AccessControl
import ArgumentParser
import RemoteClient
import SystemSupport

/// `luaexec script push|list|show|diff|rollback|enable|disable|rm`: stored scripts (SPEC V8, M6)
/// over the pinned HTTPS of `login`, on one remote or several at once, as `eval` runs a chunk.
/// docs/scripts.md, "From the command line".
struct ScriptCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "script",
        abstract: "Install, inspect, roll back and remove the scripts a luaexec keeps as configuration.",
        discussion: """
            A stored script lives in the appliance's database with its history and runs at every \
            start and reset, after the init directory's files. `push` sends a file as the next \
            version: the appliance compiles it and runs it at once, and keeps it only if the run \
            succeeds; otherwise it goes on serving what it served. Each command takes -r NAME \
            (repeat for several remotes) or --all, as `luaexec eval` does: with several, each \
            remote's output comes under `== NAME ==` and a summary ends it.

            Exit status (the worst of all remotes): 0 done (or nothing to do); 1 a version that \
            did not compile or whose run failed (Lua's message on standard error, naming \
            scripts/NAME and the line), and for `diff`, the file differs from the remote's \
            script, as diff(1); 2 a connection error or a refusal (an unknown remote or \
            script, a token without the admin scope, a changed key); 64 a wrong command line.
            """,
        subcommands: [
            Push.self, List.self, Show.self, Diff.self, Rollback.self, Enable.self, Disable.self, Remove.self,
        ])

    // MARK: Subcommands

    struct Push: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Install a file as a script's next version, compiled and run at once.",
            discussion: """
                The name is --name, else the file's own name (doorbell.lua). The appliance compiles \
                the file (a syntax error stores nothing), runs it under limits.init_time, and keeps \
                it only if the run succeeds; what the previous version registered and this one \
                does not is withdrawn. A file the remote already has as the current version changes \
                nothing and runs nothing ("unchanged"). Prints the new version, what the run \
                printed, what the script registered and what was withdrawn.

                --disabled stores the file as the next version, disabled: compiled (a syntax error \
                stores nothing), not run, and what the previous version registered is withdrawn; \
                `luaexec script enable` runs it later. The file that is already the current \
                version is disabled, with no new version.
                """)

        @Argument(help: "The script's Lua source, or - for standard input (then --name is needed).")
        var file: String

        @Option(help: "The script's name on the appliance (default: the file's name).")
        var name: String?

        @Flag(help: "Store it disabled, without running it.")
        var disabled = false

        @OptionGroup var remotes: RemoteSelection

        func run() throws {
            try client {
                let targets = try remotes.targets()
                let (source, name) = try readScript(file, name: name)
                let disabled = disabled
                try runOnRemotes(targets) { remote in
                    scriptRun(on: remote) { run throws(ClientError) in
                        var answer = try remote.pushScript(source, name: name, enabled: !disabled)
                        var note = ""
                        if disabled, case .done(let change) = answer, change.script?.enabled == true {
                            // A luaexecd from before `?enabled=false` ignores it: it ran a new
                            // version and enabled it (the current file it left as it was).
                            // Disabled now, and said.
                            answer = try remote.changeScript(name, "disable")
                            if change.changed { note = "; \(remote.name) is older and ran it once before it was disabled" }
                        }
                        run.describe(answer, name: name, verb: "not installed") { change, script in
                            if !change.changed {
                                return (
                                    "\(name): unchanged, version \(script.version) is this file (sha256 \(script.shortSHA256))"
                                        + (script.enabled ? "" : ", disabled") + "; nothing ran",
                                    "unchanged (version \(script.version))"
                                )
                            }
                            return (
                                "\(name): version \(script.version) "
                                    + (script.enabled ? "installed" : note.isEmpty ? "stored disabled (not run)" : "stored, disabled")
                                    + " (\(change.created ? "new script, " : "")sha256 \(script.shortSHA256))" + note,
                                "version \(script.version)" + (change.created ? " (new)" : "")
                                    + (script.enabled ? "" : ", disabled")
                            )
                        }
                    }
                }
            }
        }
    }

    struct List: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "The scripts a remote keeps: version, SHA-256, who installed it, the last run.",
            discussion: """
                LAST RUN is the current version's last run in the running state (at start, reset \
                or install): ok and its time, or the error; - while disabled or not yet run.
                """)

        @OptionGroup var remotes: RemoteSelection

        @Flag(help: "The JSON document GET /api/v1/admin/scripts answers, instead of a table.")
        var json = false

        func run() throws {
            try client {
                let targets = try remotes.targets()
                let json = json
                try runOnRemotes(targets) { remote in
                    scriptRun(on: remote) { run throws(ClientError) in
                        switch try remote.scripts() {
                        case .failure(let refusal): run.refuse(refusal.message)
                        case .success(let listing):
                            run.output = json ? listing.json + [0x0A] : Array(Self.table(listing.records).utf8)
                            run.detail = "\(listing.records.count) script\(listing.records.count == 1 ? "" : "s")"
                        }
                    }
                }
            }
        }

        static func table(_ records: [ScriptRecord]) -> String {
            guard !records.isEmpty else { return "no scripts\n" }
            var rows = [["NAME", "ENABLED", "VERSION", "SHA256", "INSTALLED", "LAST RUN"]]
            for script in records {
                var lastRun = "-"
                if let run = script.lastRun {
                    if let error = run.error {
                        lastRun =
                            "\(error.kind) error: "
                            + (error.message.split(separator: "\n").first.map(String.init) ?? "")
                    } else {
                        lastRun = "ok, \(run.elapsedMilliseconds) ms"
                    }
                    if run.version != script.version { lastRun += " (version \(run.version))" }
                }
                rows.append([
                    script.name, script.enabled ? "yes" : "no", String(script.version), script.shortSHA256,
                    "\(script.installedBy) \(script.installedAt)", lastRun,
                ])
            }
            return TextTable.render(rows)
        }
    }

    struct Show: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Print a script's source, byte for byte as the remote keeps it.")

        @Argument(help: "The script's name (doorbell.lua).")
        var name: String

        @Option(help: "A kept version instead of the current one (see luaexec script list).")
        var version: Int?

        @OptionGroup var remotes: RemoteSelection

        func run() throws {
            try client {
                let (name, version) = (try checked(name), version)
                let targets = try remotes.targets()
                try runOnRemotes(targets) { remote in
                    scriptRun(on: remote) { run throws(ClientError) in
                        switch try remote.scriptSource(name, version: version) {
                        case .failure(let refusal): run.refuse(refusal.message)
                        case .success(let source): run.output = source
                        }
                    }
                }
            }
        }
    }

    struct Diff: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show what pushing a file would change: a unified diff from the remote's script to it.",
            discussion: """
                The diff is `diff -u`'s format, from the remote's current version to the file, \
                computed by luaexec itself (no diff program needed). Exit status as diff(1): 0 \
                when they are the same bytes (nothing printed), 1 when they differ, 2 on trouble. \
                A script the remote does not have differs from any file: every line is added.
                """)

        @Argument(help: "The local file, or - for standard input (then --name is needed).")
        var file: String

        @Option(help: "The script's name on the appliance (default: the file's name).")
        var name: String?

        @OptionGroup var remotes: RemoteSelection

        func run() throws {
            try client {
                let targets = try remotes.targets()
                let (local, name) = try readScript(file, name: name)
                let label = file == "-" ? "(standard input)" : file
                try runOnRemotes(targets) { remote in
                    scriptRun(on: remote) { run throws(ClientError) in
                        let old: [UInt8]
                        let oldLabel: String
                        switch try remote.script(name) {
                        case .success(let current):
                            old = current.source
                            oldLabel = "\(name) on \(remote.name) (version \(current.record.version))"
                        case .failure(let refusal) where refusal.notFound:
                            old = []
                            oldLabel = "\(name) on \(remote.name) (none)"
                        case .failure(let refusal):
                            run.refuse(refusal.message)
                            return
                        }
                        if let diff = UnifiedDiff.render(old: old, new: local, oldLabel: oldLabel, newLabel: label) {
                            run.output = diff
                            run.outcome = .different
                        } else {
                            run.detail = "same"
                        }
                    }
                }
            }
        }
    }

    struct Rollback: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a kept version again and make it current (default: the one before).",
            discussion: """
                No new version is made: a second rollback goes one further back, and the next push \
                is numbered after the newest kept. The version runs as a push does, and becomes \
                current (and enabled) only if the run succeeds.
                """)

        @Argument(help: "The script's name.")
        var name: String

        @Option(help: "The kept version to go back (or forward) to.")
        var to: Int?

        @OptionGroup var remotes: RemoteSelection

        func run() throws {
            let (name, to) = (name, to)
            try change(remotes, name: name, verb: "not rolled back") { remote throws(ClientError) in
                try remote.changeScript(name, "rollback", version: to)
            } done: { change, script in
                change.changed
                    ? (
                        "\(name): rolled back to version \(script.version) (sha256 \(script.shortSHA256))",
                        "version \(script.version)"
                    )
                    : (
                        "\(name): unchanged, version \(script.version) is current",
                        "unchanged (version \(script.version))"
                    )
            }
        }
    }

    struct Enable: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Run a disabled script's current version; it is enabled if the run succeeds.")

        @Argument(help: "The script's name.")
        var name: String

        @OptionGroup var remotes: RemoteSelection

        func run() throws {
            let name = name
            try change(remotes, name: name, verb: "not enabled") { remote throws(ClientError) in
                try remote.changeScript(name, "enable")
            } done: { change, script in
                change.changed
                    ? ("\(name): enabled, version \(script.version) ran", "enabled (version \(script.version))")
                    : ("\(name): unchanged, already enabled (version \(script.version))", "unchanged")
            }
        }
    }

    struct Disable: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Withdraw what a script registered; it is kept, and runs no more until enabled.")

        @Argument(help: "The script's name.")
        var name: String

        @OptionGroup var remotes: RemoteSelection

        func run() throws {
            let name = name
            try change(remotes, name: name, verb: "not disabled") { remote throws(ClientError) in
                try remote.changeScript(name, "disable")
            } done: { change, script in
                change.changed
                    ? ("\(name): disabled (version \(script.version) kept)", "disabled")
                    : ("\(name): unchanged, already disabled (version \(script.version))", "unchanged")
            }
        }
    }

    struct Remove: ParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rm",
            abstract: "Remove a script with every kept version, and withdraw what it registered.",
            discussion: "The audit trail keeps who installed each version and its SHA-256.")

        @Argument(help: "The script's name.")
        var name: String

        @OptionGroup var remotes: RemoteSelection

        func run() throws {
            let name = name
            try change(remotes, name: name, verb: "not removed") { remote throws(ClientError) in
                try remote.removeScript(name)
            } done: { change, _ in
                ("\(name): removed (it was at version \(change.removed?.version ?? 0))", "removed")
            }
        }
    }
}

// MARK: Shared

/// `name` when the store's rule takes it. Checked here, before any request, with the
/// server's own function: nginx decodes `%2F` and resolves `..` in a path, so a name holding
/// them would reach another URL (`rm ../tokens/ops`) instead of being refused.
private func checked(_ name: String, hint: String = "") throws -> String {
    if let problem = ScriptStore.nameProblem(name) { throw ClientFailure(problem + hint) }
    return name
}

/// The bytes to push or compare, and the script's name: `name`, else the file's own name.
private func readScript(_ file: String, name: String?) throws -> ([UInt8], String) {
    if file == "-" {
        guard let name else { throw ClientFailure("a script from standard input needs --name") }
        return (readAll(fd: 0), try checked(name))
    }
    let scriptName =
        try name.map { try checked($0) }
        ?? checked(String(file.split(separator: "/").last ?? Substring(file)), hint: "; give one with --name")
    guard let bytes = readFile(file) else { throw ClientFailure("cannot read \(file): \(systemErrorText())") }
    return (bytes, scriptName)
}

/// A change on each remote (rollback, enable, disable, rm), described as `describe` does.
private func change(
    _ remotes: RemoteSelection, name: String, verb: String,
    _ send: @escaping @Sendable (Remote) throws(ClientError) -> ScriptAnswer,
    done: @escaping @Sendable (ScriptChange, ScriptRecord) -> (line: String, detail: String)
) throws {
    try client {
        _ = try checked(name)
        let targets = try remotes.targets()
        try runOnRemotes(targets) { remote in
            scriptRun(on: remote) { run throws(ClientError) in
                run.describe(try send(remote), name: name, verb: verb, done: done)
            }
        }
    }
}

/// One remote's part of a script command, timed; an exchange that fails (unreachable, a
/// changed key) is that remote's failure, exit 2.
private func scriptRun(on remote: Remote, _ body: (inout RemoteRun) throws(ClientError) -> Void) -> RemoteRun {
    let started = MonotonicInstant.now()
    var run = RemoteRun(remote: remote.name)
    do {
        try body(&run)
    } catch {
        let message = remote.explain(error)
        run.outcome = .failed(message.split(separator: "\n").first.map(String.init) ?? message)
        run.errors = "luaexec: \(message)\n"
    }
    run.elapsed = MonotonicInstant.now().duration(since: started)
    return run
}

extension RemoteRun {
    /// A refusal (exit 2), said as `eval` says one: `luaexec: box: HTTP 404: no script named ...`.
    fileprivate mutating func refuse(_ message: String) {
        outcome = .failed(message)
        errors = "luaexec: \(remote): \(message)\n"
    }

    /// What a change did: on success `done`'s line, what the run printed, what the script holds
    /// and what was withdrawn; a version that failed to compile or run is exit 1 with Lua's
    /// message (`scripts/NAME:LINE: ...`) and what stays current.
    fileprivate mutating func describe(
        _ answer: ScriptAnswer, name: String, verb: String,
        done: (ScriptChange, ScriptRecord) -> (line: String, detail: String)
    ) {
        switch answer {
        case .refused(let message):
            refuse(message)
        case .done(let change):
            let (line, detail) = done(change, change.script ?? ScriptRecord(name: name))
            self.detail = detail
            var text = Array((line + "\n").utf8) + change.output
            if !change.output.isEmpty, change.output.last != 0x0A { text.append(0x0A) }
            if change.changed, let script = change.script, script.enabled, !script.registered.isEmpty {
                text += Array("registered: \(script.registered.joined(separator: ", "))\n".utf8)
            }
            if !change.withdrawn.isEmpty {
                text += Array("withdrawn: \(change.withdrawn.joined(separator: ", "))\n".utf8)
            }
            output = text
        case .luaFailure(let failure):
            outcome = .luaError(kind: failure.kind)
            let stays: String
            if let current = failure.current {
                stays = "version \(current.version) stays current" + (current.enabled ? "" : ", disabled")
            } else {
                stays = "nothing is stored under that name"
            }
            var text = "luaexec: \(remote): \(name) \(verb): \(failure.kind) error; \(stays)\n"
            text += String(decoding: failure.output, as: UTF8.self)
            if !failure.output.isEmpty, failure.output.last != 0x0A { text += "\n" }
            text += failure.message + "\n"
            if let traceback = failure.traceback { text += traceback + "\n" }
            errors = text
        }
    }
}
