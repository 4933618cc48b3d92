import SystemSupport
import Synchronization
import ArgumentParser
import CRemote
import RemoteClient

#if canImport(Glibc)
import Glibc
#endif

/// `luaexec login URL`: trust the appliance's key on first contact, as ssh does, check a token
/// against it and remember both (SPEC O8).
struct LoginCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "login",
        abstract: "Trust a luaexec's certificate key and remember it with a token.",
        discussion: """
            Shows the SHA-256 of the server's public key (the form curl --pinnedpubkey takes) and \
            asks whether to trust it; compare it with what the appliance shows (its package prints \
            it at installation, `make run` when it starts). Later connections are refused \
            if the key changes. The token is read from the terminal without echo, or from \
            --token-file or LUAEXEC_TOKEN. Remotes live in ~/.config/luaexec/remotes.json (mode 0600). \
            Logging in again to the same address keeps its token; a name that stands for another \
            address is pointed at this one only after asking (or with --replace), and then with a \
            token of this appliance's own.
            """)

    @Argument(help: "The appliance's address, e.g. https://box or https://10.0.0.7:8443.")
    var url: String

    @Option(help: "What to call this remote (default: its host, and its port unless 443).")
    var name: String?

    @Option(help: "Trust this key (sha256//BASE64) without asking; anything else is refused.")
    var fingerprint: String?

    @Option(help: "Read the token from this file's first line.")
    var tokenFile: String?

    @Flag(help: "Point --name at this address although it names another appliance now.")
    var replace = false

    func run() throws {
        try client {
            let base: String
            do {
                base = try Remote.normalisedURL(url)
            } catch let error as RemoteFileError {
                throw ClientFailure(error.description)
            }
            let remoteName = name ?? Remote.defaultName(for: base)
            guard Remote.isValidName(remoteName) else {
                throw ClientFailure(
                    "a remote name is letters, digits, '.', '_', '-', ':', '[' and ']': '\(remoteName)'")
            }
            var remotes = try loadRemotes()
            // The name may stand for another appliance: its token must never go to this one.
            let known = remotes.remote(named: remoteName)
            let sameAppliance = known.map { (try? Remote.normalisedURL($0.url)) == base } ?? false
            if let known, !sameAppliance, !replace {
                let question = "'\(remoteName)' is \(known.url). Make it \(base) instead? [y/N] "
                guard let answer = Terminal.ask(question) else {
                    throw ClientFailure("""
                        a remote named '\(remoteName)' is \(known.url); pass --replace to make it \(base), \
                        or choose another --name. Nothing was stored.
                        """)
                }
                guard Self.isYes(answer) else {
                    throw ClientFailure("'\(remoteName)' stays \(known.url); nothing was stored")
                }
            }
            let presented: String
            do { presented = try HTTPSClient.fingerprint(of: base) } catch { throw ClientFailure("cannot reach \(base): \(error)") }

            if let fingerprint {
                let expected = fingerprint.hasPrefix("sha256//") ? fingerprint : "sha256//" + fingerprint
                guard expected == presented else {
                    throw ClientFailure("""
                        \(base) presents the key \(presented), not \(expected); nothing was stored.
                        """)
                }
            } else {
                print("The server at \(base) presents a certificate whose public key has the SHA-256")
                print("  \(presented)")
                if let known, sameAppliance, known.fingerprint != presented {
                    print("(the key trusted for '\(remoteName)' so far was \(known.fingerprint))")
                }
                guard let answer = Terminal.ask("Trust this key and log in? [y/N] ") else {
                    throw ClientFailure("no terminal to ask on: pass --fingerprint \(presented) after checking it")
                }
                guard Self.isYes(answer) else { throw ClientFailure("not trusted; nothing was stored") }
            }

            // Re-pinning the same appliance keeps its token; a new address asks for one.
            let token = try readToken(previous: sameAppliance ? known?.token : nil)
            let remote = Remote(name: remoteName, url: base, fingerprint: presented, token: token)
            let who: TokenInfo
            do {
                switch try remote.checkToken() {
                case .accepted(let info): who = info
                case let failed: throw ClientFailure(remote.explain(failed) + "; nothing was stored")
                }
            } catch let error as ClientError {
                throw ClientFailure(remote.explain(error))
            }
            remotes.store(remote)
            try save(remotes)
            print(terminalSafe("Logged in to \(remoteName) (\(base)) as \(who.name) [\(who.scopes.joined(separator: " "))]."))
            print("Try: luaexec repl -r \(remoteName)")
        }
    }

    static func isYes(_ answer: String) -> Bool { ["y", "yes"].contains(answer.trimmingCharacters().lowercased()) }

    func readToken(previous: String?) throws -> String {
        if let tokenFile {
            guard let bytes = readFile(tokenFile) else { throw ClientFailure("cannot read \(tokenFile)") }
            let line = String(decoding: bytes, as: UTF8.self).split(separator: "\n").first.map(String.init) ?? ""
            return line.trimmingCharacters()
        }
        if let value = getenv("LUAEXEC_TOKEN"), value.pointee != 0 { return String(cString: value).trimmingCharacters() }
        if let previous { return previous }  // re-pinning a known remote keeps its token
        guard let typed = Terminal.askSecret("Token: ") else {
            throw ClientFailure("no terminal to read the token from: use --token-file or LUAEXEC_TOKEN")
        }
        return typed.trimmingCharacters()
    }
}

/// `luaexec remotes`: what `login` stored (never a token).
struct RemotesCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "remotes", abstract: "List the remotes you logged in to.")

    func run() throws {
        try client {
            let remotes = try loadRemotes()
            guard !remotes.remotes.isEmpty else {
                print("No remotes. Log in with: luaexec login https://BOX")
                return
            }
            var rows = [["", "NAME", "URL", "KEY"]]
            for remote in remotes.remotes {
                rows.append([remote.name == remotes.defaultRemote ? "*" : "", remote.name, remote.url, remote.fingerprint])
            }
            printTable(rows)
        }
    }
}

/// `luaexec logout NAME`: forget a remote and its token.
struct LogoutCommand: ParsableCommand {
    static let configuration = CommandConfiguration(commandName: "logout", abstract: "Forget a remote and its token.")

    @Argument(help: "The remote's name (see luaexec remotes).")
    var name: String

    func run() throws {
        try client {
            var remotes = try loadRemotes()
            guard remotes.remote(named: name) != nil else { throw ClientFailure("no remote named '\(name)'") }
            remotes.remotes.removeAll { $0.name == name }
            if remotes.defaultRemote == name { remotes.defaultRemote = remotes.remotes.first?.name }
            try save(remotes)
            print("Forgot \(name).")
        }
    }
}

/// `luaexec eval`: a chunk from -e, a file or standard input, on one remote or several.
struct EvalCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval",
        abstract: "Run a Lua chunk on one or more remotes.",
        discussion: """
            Prints what the chunk printed, as it prints it, and returned as the server renders \
            it; errors go to standard error. Exit status: 0 on success, 1 when the chunk failed in Lua (the kind \
            is in the message), 2 on a connection error, a refusal or a file that cannot be read, 64 \
            when the command line itself is wrong (as sysexits' EX_USAGE). With several remotes, the \
            chunk runs on up to --parallel of them at once and a summary ends the output.
            """)

    @Option(name: .customShort("e"), help: "The chunk itself.")
    var chunk: String?

    @Argument(help: "A file to run, or - for standard input.")
    var file: String?

    @OptionGroup var remotes: RemoteSelection

    @Flag(help: "The server's JSON answer, passed through.")
    var json = false

    @Option(help: "How many remotes at once.")
    var parallel = 8

    @Flag(help: "Only compile the chunk on the remote and report syntax errors; nothing runs.")
    var check = false

    @Option(
        name: .customLong("arg"),
        help: ArgumentHelp("An argument for the chunk's ..., as JSON (repeat for several).", valueName: "JSON"))
    var arguments: [String] = []

    @Option(help: ArgumentHelp("A file holding one JSON array: the chunk's ..., before any --arg.", valueName: "FILE"))
    var argsFile: String?

    func validate() throws {
        guard (chunk == nil) != (file == nil) else { throw ValidationError("give either -e CHUNK or a FILE (- for standard input)") }
        guard parallel >= 1 else { throw ValidationError("--parallel is at least 1") }
        for argument in arguments {
            if let problem = CallBody.problem(withArgument: argument) { throw ValidationError(problem) }
        }
    }

    func run() throws {
        try client {
            let targets = try remotes.targets()
            let (body, chunkName) = try source()
            let (json, check) = (json, check)
            let arguments = try callArguments()
            // One remote: its output on the screen as the chunk prints it (SPEC E13). Several
            // run at once, each printed whole under its heading; streamed all the same, so that
            // what a failed chunk printed is told from its error (output on standard output, the
            // error on standard error, as with one remote).
            let one = targets.count == 1
            try runOnRemotes(targets, parallel: parallel) { remote in
                if one {
                    return remote.run(body, chunkName: chunkName, json: json, check: check, arguments: arguments, live: Self.printNow)
                }
                let printed = Mutex<[UInt8]>([])
                var run = remote.run(body, chunkName: chunkName, json: json, check: check, arguments: arguments) { part in
                    printed.withLock { $0 += part }
                }
                run.output = printed.withLock { $0 } + run.output
                return run
            }
        }
    }

    /// What a chunk printed, on standard output now.
    @Sendable static func printNow(_ bytes: [UInt8]) { writeOut(bytes) }

    /// The chunk's arguments as JSON texts (SPEC E11), or nil when none is given: then the
    /// chunk goes as the body, as before.
    func callArguments() throws -> [String]? {
        guard argsFile != nil || !arguments.isEmpty else { return nil }
        var all: [String] = []
        if let argsFile {
            guard let bytes = readFile(argsFile) else { throw ClientFailure("cannot read \(argsFile): \(systemErrorText())") }
            switch CallBody.arguments(inFile: bytes, named: argsFile) {
            case .failure(let problem): throw ClientFailure(problem.message)
            case .success(let texts): all = texts
            }
        }
        return all + arguments
    }

    /// The chunk and its name (SPEC E9), named as `lua5.4` names them.
    func source() throws -> ([UInt8], String) {
        if let chunk { return (Array(chunk.utf8), "=(command line)") }
        if file == "-" { return (readAll(fd: 0), "=stdin") }
        guard let file else { throw ClientFailure("name a file to run, - for standard input, or give the chunk with -e") }
        guard let bytes = readFile(file) else {
            // `luaexec eval 'return 1'` is a common slip: lua5.4 takes a chunk only with -e too.
            throw ClientFailure("cannot read \(file): \(systemErrorText()) (-e runs a chunk given here)")
        }
        return (bytes, "@" + file)
    }
}

/// `-r NAME` (repeatable) or `--all`: the remotes a client command reaches (SPEC O8).
struct RemoteSelection: ParsableArguments {
    @Option(
        name: [.customShort("r"), .customLong("remote")], help: "A remote (repeat for several; default: the default one).")
    var remoteNames: [String] = []

    @Flag(help: "Every remote.")
    var all = false

    // A box that takes the request and never answers (hung, or a stalled link) would hold the
    // command, and a fleet's run with it, for good: curl's --max-time, per remote.
    @Option(
        help: ArgumentHelp(
            "Give up on a remote that has not answered in full within this many seconds (default: wait as long as it takes).",
            valueName: "SECONDS"))
    var timeout: Double?

    func validate() throws {
        if let timeout, !(timeout > 0 && timeout <= 86_400) {
            throw ValidationError("--timeout takes seconds, more than 0 and at most 86400 (a day)")
        }
    }

    /// The remotes named, every one with `--all`, else the default one.
    func targets() throws -> [Remote] {
        let remotes = try loadRemotes()
        var chosen: [Remote]
        do {
            if all {
                guard !remotes.remotes.isEmpty else {
                    throw RemoteFileError("no remote yet; log in first: luaexec login https://BOX")
                }
                chosen = remotes.remotes
            } else if remoteNames.isEmpty {
                chosen = [try remotes.chosen(nil)]
            } else {
                chosen = try remoteNames.map { name throws(RemoteFileError) in try remotes.chosen(name) }
            }
        } catch let error as RemoteFileError {
            throw ClientFailure(error.description)
        }
        if let timeout {
            let milliseconds = max(1, Int((timeout * 1000).rounded()))
            for index in chosen.indices { chosen[index].timeoutMilliseconds = milliseconds }
        }
        return chosen
    }
}

/// Runs `body` on each remote (up to `parallel` at once) and prints what each did as `eval`
/// does: one remote's output and errors as they are; several, each under `== NAME ==`, then a
/// summary of each one's status and time. Ends the command with the worst exit status.
func runOnRemotes(_ targets: [Remote], parallel: Int = 8, _ body: @escaping @Sendable (Remote) -> RemoteRun) throws {
    if targets.count == 1 {
        let run = body(targets[0])
        emit(run, heading: false)
        throw ExitCode(run.exitStatus)
    }
    let runs = parallelMap(targets, width: parallel, body)
    for run in runs { emit(run, heading: true) }
    var rows = [["REMOTE", "STATUS", "ELAPSED"]]
    for run in runs {
        rows.append([run.remote, run.summary, String(format: run.elapsed)])
    }
    printTable(rows)
    throw ExitCode(runs.map(\.exitStatus).max() ?? 0)
}

func emit(_ run: RemoteRun, heading: Bool) {
    if heading { say("== \(run.remote) ==") }
    writeOut(run.output)
    if !run.output.isEmpty, run.output.last != 0x0A, heading || isatty(1) != 0 { writeOut([0x0A]) }
    writeError(terminalSafe(run.errors))
}

extension String {
    init(format elapsed: Duration) {
        let ms = Double(elapsed.components.seconds) * 1000 + Double(elapsed.components.attoseconds) / 1e15
        self = ms < 1000 ? "\(Int(ms.rounded())) ms" : "\((ms / 100).rounded() / 10) s"
    }

    func trimmingCharacters() -> String {
        String(self.drop { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }.reversed().drop { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }.reversed())
    }
}

struct ClientFailure: Error, CustomStringConvertible {
    var description: String
    init(_ description: String) { self.description = description }
}

/// Runs a client command: a ClientFailure (usage, connection, a refused token) is printed
/// and ends the command with status 2, so that 1 stays "the chunk failed in Lua".
func client(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let failure as ClientFailure {
        writeError(terminalSafe("luaexec: \(failure.description)\n"))
        throw ExitCode(2)
    }
}

func loadRemotes() throws -> RemotesFile {
    do { return try RemotesFile.load() } catch { throw ClientFailure(error.description) }
}

func save(_ remotes: RemotesFile) throws {
    do { try remotes.save() } catch { throw ClientFailure(error.description) }
}

func printTable(_ rows: [[String]]) {
    var widths = [Int](repeating: 0, count: rows.first?.count ?? 0)
    for row in rows { for (index, cell) in row.enumerated() { widths[index] = max(widths[index], cell.count) } }
    for row in rows {
        let line = row.enumerated().map { index, cell in
            index == row.count - 1 ? cell : cell + String(repeating: " ", count: widths[index] - cell.count)
        }.joined(separator: "  ")
        say(String(line.reversed().drop { $0 == " " }.reversed()))
    }
}

/// A line to standard output, unbuffered like the answers written beside it.
func say(_ line: String) {
    writeOut(Array((line + "\n").utf8))
}

func writeOut(_ bytes: [UInt8], to fd: Int32 = 1) {
    var offset = 0
    while offset < bytes.count {
        let written = bytes[offset...].withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
        if written < 0 && errno == EINTR { continue }
        guard written > 0 else { return }
        offset += written
    }
}

func writeError(_ text: String) {
    writeOut(Array(text.utf8), to: 2)
}

/// `text` from a box (an error message, a traceback, a token's name) as a terminal may show it:
/// control characters but the line break and the tab written as `\xHH`, as the log writes them,
/// so that a box cannot move the cursor, retitle the window or clear the screen (ESC, BEL, CSI
/// and OSC sequences, C1 controls included). A chunk's output and results are written as they
/// are, as `lua5.4` writes them: they are what the user asked for.
func terminalSafe(_ text: String) -> String {
    func unsafe(_ scalar: Unicode.Scalar) -> Bool {
        (scalar.value < 0x20 && scalar != "\n" && scalar != "\t") || (0x7F...0x9F).contains(scalar.value)
    }
    guard text.unicodeScalars.contains(where: unsafe) else { return text }
    var out = ""
    for scalar in text.unicodeScalars {
        guard unsafe(scalar) else {
            out.unicodeScalars.append(scalar)
            continue
        }
        for byte in String(scalar).utf8 {
            out += "\\x" + (byte < 0x10 ? "0" : "") + String(byte, radix: 16)
        }
    }
    return out
}

/// Questions on the controlling terminal, as ssh and sudo ask them.
enum Terminal {
    /// A line typed at /dev/tty, or nil when there is no terminal.
    static func ask(_ prompt: String) -> String? { read(prompt, echo: true) }

    /// A line typed at /dev/tty without echo.
    static func askSecret(_ prompt: String) -> String? { read(prompt, echo: false) }

    private static func read(_ prompt: String, echo: Bool) -> String? {
        let fd = open("/dev/tty", O_RDWR | O_CLOEXEC)
        guard fd >= 0 else { return nil }
        defer { close(fd) }
        var saved = termios()
        let isTerminal = tcgetattr(fd, &saved) == 0
        guard isTerminal else { return nil }
        _ = prompt.withCString { Glibc.write(fd, $0, strlen($0)) }
        if !echo {
            var quiet = saved
            quiet.c_lflag &= ~tcflag_t(ECHO)
            tcsetattr(fd, TCSAFLUSH, &quiet)
        }
        defer {
            if !echo {
                tcsetattr(fd, TCSAFLUSH, &saved)
                _ = Glibc.write(fd, "\n", 1)
            }
        }
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while Glibc.read(fd, &byte, 1) == 1 && byte != 0x0A { line.append(byte) }
        return String(decoding: line, as: UTF8.self)
    }
}
