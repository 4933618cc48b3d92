import Foundation
import Testing

/// `luaexec login|eval|repl|remotes|logout` (SPEC O8) against the real stack over HTTPS: the
/// key pinned on first contact, exit statuses, several remotes at once, and the repl driven in
/// a real terminal (tmux).
@Suite("Terminal client")
struct ClientTests {
    static let stack = try! Stack(settings: ["auth.failure_limit=1000000", "limits.time=30"], tcp: true)
    static var url: String { "https://127.0.0.1:\(stack.httpsPort!)" }
    /// A second appliance on the same host, on another port.
    static let other = try! Stack(settings: ["auth.failure_limit=1000000"], tcp: true)
    static var otherURL: String { "https://127.0.0.1:\(other.httpsPort!)" }

    /// The SHA-256 of the stack's public key, computed by openssl, not by luaexec.
    static let fingerprint: String = {
        let result = try! Stack.run(
            "/bin/sh",
            [
                "-c",
                "openssl x509 -in '\(Stack.certificate.cert)' -pubkey -noout | openssl pkey -pubin -outform der"
                    + " | openssl dgst -sha256 -binary | openssl enc -base64",
            ])
        return "sha256//" + result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }()

    /// A user of the client: a home of its own (config and history), and the commands it runs.
    struct User {
        let home: String
        init() throws {
            home = NSTemporaryDirectory() + "luaexec-user-\(UUID().uuidString)"
            try FileManager.default.createDirectory(atPath: home, withIntermediateDirectories: true)
        }
        var remotesFile: String { home + "/config/luaexec/remotes.json" }
        var environment: [String: String] {
            [
                "HOME": home, "XDG_CONFIG_HOME": home + "/config", "XDG_STATE_HOME": home + "/state",
                "PATH": "/usr/bin:/bin", "TERM": "xterm",
            ]
        }

        /// `luaexec ARGUMENTS`, with `input` on standard input.
        func luaexec(_ arguments: [String], input: String = "", extra: [String: String] = [:]) throws -> Stack.ProcessResult {
            let inputFile = home + "/stdin-\(UUID().uuidString)"
            try input.write(toFile: inputFile, atomically: true, encoding: .utf8)
            return try Stack.run(
                "/bin/sh", ["-c", "exec \"$0\" \"$@\" < '\(inputFile)'", Stack.binDirectory + "/luaexec"] + arguments,
                environment: environment.merging(extra) { $1 })
        }

        @discardableResult
        func login(_ name: String, token: String? = nil, stack: Stack = ClientTests.stack) throws -> Stack.ProcessResult {
            let result = try luaexec(
                ["login", "https://127.0.0.1:\(stack.httpsPort!)", "--name", name, "--fingerprint", ClientTests.fingerprint],
                extra: ["LUAEXEC_TOKEN": token ?? stack.adminToken])
            #expect(result.status == 0, "login failed: \(result.stderr)")
            return result
        }

        func remotes() throws -> [[String: Any]] {
            let data = try Data(contentsOf: URL(fileURLWithPath: remotesFile))
            return try #require((try JSONSerialization.jsonObject(with: data) as? [String: Any])?["remotes"] as? [[String: Any]])
        }

        /// Writes a remote into the remotes file by hand (replacing one of the same name), as
        /// if `login` had stored it: an appliance that has since gone down, changed its key, ...
        func storeRemote(_ name: String, url: String, fingerprint: String = ClientTests.fingerprint, token: String = "lxk_x") throws {
            var file: [String: Any] = [:]
            if FileManager.default.fileExists(atPath: remotesFile) {
                file = try #require(
                    try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: remotesFile))) as? [String: Any])
            } else {
                try FileManager.default.createDirectory(atPath: home + "/config/luaexec", withIntermediateDirectories: true)
            }
            var remotes = (file["remotes"] as? [[String: Any]] ?? []).filter { $0["name"] as? String != name }
            remotes.append(["name": name, "url": url, "fingerprint": fingerprint, "token": token])
            file["remotes"] = remotes
            try JSONSerialization.data(withJSONObject: file).write(to: URL(fileURLWithPath: remotesFile))
        }
    }

    @Test("login with --fingerprint checks the token, stores the remote 0600 in a 0700 directory, never lists the token")
    func loginWithFingerprint() throws {
        let user = try User()
        let result = try user.login("box")
        #expect(result.stdout == "Logged in to box (\(Self.url)) as admin [admin exec].\nTry: luaexec repl -r box\n")
        let file = try FileManager.default.attributesOfItem(atPath: user.remotesFile)
        #expect((file[.posixPermissions] as? Int) == 0o600)
        let directory = try FileManager.default.attributesOfItem(atPath: user.home + "/config/luaexec")
        #expect((directory[.posixPermissions] as? Int) == 0o700)
        let stored = try user.remotes()
        #expect(stored.count == 1)
        #expect(stored[0]["fingerprint"] as? String == Self.fingerprint)
        #expect(stored[0]["url"] as? String == Self.url)

        let listed = try user.luaexec(["remotes"])
        #expect(listed.status == 0)
        #expect(listed.stdout.contains("*  box   \(Self.url)  \(Self.fingerprint)"))
        #expect(!listed.stdout.contains("lxk_"))

        let logout = try user.luaexec(["logout", "box"])
        #expect(logout.status == 0)
        #expect(try user.remotes().isEmpty)
    }

    @Test("a wrong fingerprint or a refused token stores nothing")
    func refusedLogins() throws {
        let user = try User()
        let wrong = "sha256//" + String(repeating: "A", count: 43) + "="
        let mismatch = try user.luaexec(
            ["login", Self.url, "--name", "box", "--fingerprint", wrong], extra: ["LUAEXEC_TOKEN": Self.stack.adminToken])
        #expect(mismatch.status == 2)
        #expect(mismatch.stderr == "luaexec: \(Self.url) presents the key \(Self.fingerprint), not \(wrong); nothing was stored.\n")
        #expect(!FileManager.default.fileExists(atPath: user.remotesFile))

        let badToken = try user.luaexec(
            ["login", Self.url, "--name", "box", "--fingerprint", Self.fingerprint],
            extra: ["LUAEXEC_TOKEN": "lxk_" + String(repeating: "A", count: 36)])
        #expect(badToken.status == 2)
        #expect(badToken.stderr.contains("refused the token (unknown, revoked or expired); nothing was stored"))
        #expect(!FileManager.default.fileExists(atPath: user.remotesFile))

        let noTerminal = try user.luaexec(["login", Self.url, "--name", "box"])
        #expect(noTerminal.status == 2)
        #expect(noTerminal.stderr == "luaexec: no terminal to ask on: pass --fingerprint \(Self.fingerprint) after checking it\n")
    }

    @Test("a changed key is refused loudly with both fingerprints and the command that re-pins")
    func changedKey() throws {
        let user = try User()
        try user.login("box")
        // The appliance "got a new certificate": the key the user trusted is another one now.
        let old = "sha256//" + String(repeating: "B", count: 43) + "="
        let text = try String(contentsOfFile: user.remotesFile, encoding: .utf8)
        try text.replacingOccurrences(of: Self.fingerprint.replacingOccurrences(of: "/", with: "\\/"), with: old.replacingOccurrences(of: "/", with: "\\/"))
            .write(toFile: user.remotesFile, atomically: true, encoding: .utf8)
        #expect(try user.remotes()[0]["fingerprint"] as? String == old)

        let refused = try user.luaexec(["eval", "-e", "ran_with_changed_key = true"])
        #expect(refused.status == 2)
        #expect(refused.stdout == "")
        let repin = "luaexec login \(Self.url) --name box --fingerprint \(Self.fingerprint)"
        #expect(refused.stderr.contains("the public key of box (\(Self.url)) is not the one you trusted; refusing to talk to it."))
        #expect(refused.stderr.contains("  trusted:   \(old)\n  presented: \(Self.fingerprint)\n"))
        #expect(refused.stderr.contains("\n  \(repin)\n"))
        #expect(try Self.stack.eval("return ran_with_changed_key").text == "")  // nothing was sent

        // The printed command re-pins, keeping the stored token.
        let again = try user.luaexec(Array(repin.split(separator: " ").dropFirst().map(String.init)))
        #expect(again.status == 0, "\(again.stderr)")
        #expect(try user.luaexec(["eval", "-e", "return 'trusted again'"]).stdout == "trusted again")
    }

    @Test("eval runs -e, a file and standard input, names the chunk, and exits 0, 1 or 2")
    func eval() throws {
        let user = try User()
        try user.login("box")
        let ok = try user.luaexec(["eval", "-e", "print('out') return 1 + 1, 'x'"])
        #expect(ok.status == 0)
        #expect(ok.stdout == "out\n2\tx")

        // A short path: Lua shortens long chunk names (LUA_IDSIZE) from the left.
        let tools = "/tmp/lx-\(UUID().uuidString.prefix(8))"
        let script = tools + "/setup.lua"
        try FileManager.default.createDirectory(atPath: tools, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: tools) }
        try "local x = 1\nlocal function check() error('not configured') end\ncheck()\n".write(toFile: script, atomically: true, encoding: .utf8)
        let failed = try user.luaexec(["eval", script])
        #expect(failed.status == 1)
        #expect(failed.stdout == "")
        let reference = try Stack.run("/usr/bin/lua5.4", [script])
        // The same message and traceback lines as lua5.4 running the file (its traceback also
        // names lua.c's own frames).
        let expectedMessage = reference.stderr.split(separator: "\n")[0].replacingOccurrences(of: "/usr/bin/lua5.4: ", with: "")
        #expect(failed.stderr.hasPrefix("luaexec: runtime error\n\(expectedMessage)\nstack traceback:\n"))
        #expect(failed.stderr.contains("\t\(script):2: in local 'check'\n\t\(script):3: in main chunk"))

        // What a box sends into an error message reaches the terminal as text: no escape
        // sequence of its moves the cursor, retitles the window or clears the screen.
        let hostile = try user.luaexec(["eval", "-e", #"error("E\27[31mred\27]0;title\7\r", 0)"#])
        #expect(hostile.status == 1)
        #expect(hostile.stderr.hasPrefix("luaexec: runtime error\nE\\x1b[31mred\\x1b]0;title\\x07\\x0d\nstack traceback:\n\t"), "\(hostile.stderr)")

        let syntax = try user.luaexec(["eval", "-e", "return +"])
        #expect(syntax.status == 1)
        #expect(syntax.stderr == "luaexec: syntax error\n(command line):1: unexpected symbol near '+'\n")

        let stdin = try user.luaexec(["eval", "-"], input: "return debug.getinfo(1, 'S').source, ...")
        #expect(stdin.status == 0)
        #expect(stdin.stdout == "=stdin")

        let json = try user.luaexec(["eval", "--json", "-e", "return {1, 2}, nil, 'é'"])
        #expect(json.status == 0)
        #expect(json.stdout.hasPrefix(#"{"ok":true,"results":[[1,2],null,"é"],"output":"","elapsed_ms":"#))

        let usage = try user.luaexec(["eval"])
        #expect(usage.status == 64)  // swift-argument-parser's EX_USAGE
        let chunkAsFile = try user.luaexec(["eval", "return 1"])
        #expect(chunkAsFile.status == 2)
        #expect(chunkAsFile.stderr == "luaexec: cannot read return 1: No such file or directory (-e runs a chunk given here)\n")
        let unknown = try user.luaexec(["eval", "-r", "nope", "-e", "return 1"])
        #expect(unknown.status == 2)
        #expect(unknown.stderr == "luaexec: no remote named 'nope' (known: box)\n")

        let narrow = try Self.stack.makeToken("client-narrow", scopes: ["metrics"])
        let other = try User()
        try other.login("narrow", token: narrow)
        let forbidden = try other.luaexec(["eval", "-e", "return 1"])
        #expect(forbidden.status == 2)
        #expect(forbidden.stderr == "luaexec: narrow: HTTP 403: the token lacks the 'exec' scope\n")
    }

    @Test("a hostile box: its name's escape sequences are shown as text, and an endless answer is cut at 256 MiB")
    func hostileBox() throws {
        // A TLS server with the stack's certificate that says its token is named with escape
        // sequences, and answers every chunk with 300 MiB.
        let script = """
            import http.server, ssl, sys
            class Box(http.server.BaseHTTPRequestHandler):
                protocol_version = "HTTP/1.1"
                def do_GET(self):
                    body = b'{"name":"ops\\u001b]0;PWNED\\u0007\\u001b[2J","scopes":["exec"]}'
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                def do_POST(self):
                    self.rfile.read(int(self.headers.get("Content-Length", 0)))
                    self.send_response(200)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(300 << 20))
                    self.end_headers()
                    try:
                        for _ in range(300): self.wfile.write(b"A" * (1 << 20))
                    except Exception:
                        pass
                def log_message(self, *args):
                    pass
            server = http.server.HTTPServer(("127.0.0.1", 0), Box)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(sys.argv[1], sys.argv[2])
            server.socket = context.wrap_socket(server.socket, server_side=True)
            print(server.server_address[1], flush=True)
            server.serve_forever()
            """
        let box = Process()
        box.executableURL = URL(fileURLWithPath: "/usr/bin/python3")
        box.arguments = ["-c", script, Stack.certificate.cert, Stack.certificate.key]
        let portPipe = Pipe()
        box.standardOutput = portPipe
        // Not the test's own: a server left running would hold the runner's output open.
        box.standardError = FileHandle.nullDevice
        try box.run()
        defer {
            // SIGKILL: the runner's children inherit SIGTERM blocked.
            kill(box.processIdentifier, SIGKILL)
            box.waitUntilExit()
        }
        let port = String(decoding: portPipe.fileHandleForReading.availableData, as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(Int(port) != nil, "the box did not start: \(port)")

        let user = try User()
        let login = try user.luaexec(
            ["login", "https://127.0.0.1:\(port)", "--name", "evil", "--fingerprint", Self.fingerprint],
            extra: ["LUAEXEC_TOKEN": Self.stack.adminToken])
        #expect(login.status == 0, "\(login.stderr)")
        #expect(login.stdout.hasPrefix(
            "Logged in to evil (https://127.0.0.1:\(port)) as ops\\x1b]0;PWNED\\x07\\x1b[2J [exec].\n"), "\(login.stdout)")
        let endless = try user.luaexec(["eval", "-r", "evil", "-e", "return 1"])
        #expect(endless.status == 2)
        #expect(endless.stderr.contains("the answer passed 256 MiB, more than luaexecd ever sends; the rest was not read"), "\(endless.stderr)")
    }

    @Test("--timeout gives up on a box that has not answered in time, says the request may run on there, and exits 2")
    func evalTimeout() throws {
        let user = try User()
        try user.login("box")
        let waited = try user.luaexec(["eval", "--timeout", "0.5", "-e", "sleep(10) timeout_chunk_done = true return 1"])
        #expect(waited.status == 2)
        #expect(waited.stdout == "")
        #expect(waited.stderr == "luaexec: box (\(Self.url)) sent no whole answer within 0.5 s (--timeout): the request reached it, and may still be running there\n")
        // The client left while the chunk slept: the box had not run its last line.
        #expect(try Self.stack.eval("return timeout_chunk_done").body == [])
        // In time, the same option changes nothing; script commands take it too.
        let quick = try user.luaexec(["eval", "--timeout", "30", "-e", "return 'in time'"])
        #expect(quick.status == 0)
        #expect(quick.stdout == "in time")
        #expect(try user.luaexec(["script", "list", "--timeout", "30"]).status == 0)
        let zero = try user.luaexec(["eval", "--timeout", "0", "-e", "return 1"])
        #expect(zero.status == 64)
        #expect(zero.stderr.hasPrefix("Error: --timeout takes seconds, more than 0 and at most 86400 (a day)\n"))
    }

    @Test("the repl's :status and :reset with a token without admin say so in a sentence, and the session goes on")
    func replAdminCommandsRefused() throws {
        let user = try User()
        try user.login("box", token: try Self.stack.makeToken("repl-exec-\(UInt32.random(in: 0...UInt32.max))", scopes: ["exec"]))
        let session = try user.luaexec(["repl"], input: ":status\n:reset\nreturn 40 + 2\n")
        #expect(session.status == 0, "\(session.stderr)")
        #expect(session.stdout.contains("42\n"), "\(session.stdout)")
        let refusal = "HTTP 403: the token lacks the 'admin' scope\n"
        #expect(session.stderr.components(separatedBy: refusal).count == 3, "\(session.stderr)")
        #expect(!session.stderr.contains("{"), "\(session.stderr)")
    }

    @Test("eval --check compiles on the remote, runs nothing, and exits 1 on a syntax error")
    func evalCheck() throws {
        let user = try User()
        try user.login("box")
        let ok = try user.luaexec(["eval", "--check", "-e", "checked_by_client = true return 1"])
        #expect(ok.status == 0)
        #expect(ok.stdout == "")
        #expect(ok.stderr == "")
        #expect(try Self.stack.eval("return checked_by_client").body == [])
        let syntax = try user.luaexec(["eval", "--check", "-e", "checked_by_client = = true"])
        #expect(syntax.status == 1)
        #expect(syntax.stderr == "luaexec: syntax error\n(command line):1: unexpected symbol near '='\n")
        #expect(try Self.stack.eval("return checked_by_client").body == [])
    }

    @Test("eval --arg and --args-file pass JSON values as the chunk's ...")
    func evalArguments() throws {
        let user = try User()
        try user.login("box")
        let file = user.home + "/args.json"
        try #" [ "from file", {"k": [1, 2.5]} ] "#.write(toFile: file, atomically: true, encoding: .utf8)
        let result = try user.luaexec([
            "eval", "--json", "--args-file", file, "--arg", "42", "--arg", #""é\n""#, "--arg", "null", "-e",
            "return select('#', ...), ...",
        ])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.hasPrefix(#"{"ok":true,"results":[5,"from file",{"k":[1,2.5]},42,"é\n",null],"#))
        // A chunk that is not UTF-8 goes as base64 and keeps its bytes.
        let binary = user.home + "/binary.lua"
        try Data(Array("return '".utf8) + [0xFF] + Array("', ...".utf8)).write(to: URL(fileURLWithPath: binary))
        let bytes = try user.luaexec(["eval", "--arg", "1", binary])
        #expect(bytes.status == 0, "\(bytes.stderr)")
        #expect(Array(bytes.stdout.utf8) == Array("\u{FFFD}\t1".utf8))
        let notJSON = try user.luaexec(["eval", "--arg", "hello", "-e", "return ..."])
        #expect(notJSON.status == 64)
        #expect(notJSON.stderr.contains(#"--arg hello is not JSON; a string is written in quotes: --arg '"hello"'"#))
        try #"{"a": 1}"#.write(toFile: file, atomically: true, encoding: .utf8)
        let notArray = try user.luaexec(["eval", "--args-file", file, "-e", "return ..."])
        #expect(notArray.status == 2)
        #expect(notArray.stderr == "luaexec: \(file) must hold one JSON array: the chunk's ... in order\n")
    }

    @Test("eval on three remotes at once: one down, its error in the summary, the others fine")
    func severalRemotes() throws {
        let user = try User()
        try user.login("a")
        try user.login("b")
        // A third appliance that is down: nothing listens on its port.
        let port = try Stack.freePort()
        var file = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: user.remotesFile))) as! [String: Any]
        var remotes = file["remotes"] as! [[String: Any]]
        remotes.append(["name": "down", "url": "https://127.0.0.1:\(port)", "fingerprint": Self.fingerprint, "token": "lxk_x"])
        file["remotes"] = remotes
        try JSONSerialization.data(withJSONObject: file).write(to: URL(fileURLWithPath: user.remotesFile))

        let result = try user.luaexec(["eval", "--all", "-e", "fleet = (fleet or 0) + 1 return 'ran'"])
        #expect(result.status == 2)
        let lines = result.stdout.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
        try #require(lines.count >= 9, "\(result.stdout)")
        #expect(Array(lines.prefix(5)) == ["== a ==", "ran", "== b ==", "ran", "== down =="])
        #expect(lines[5].hasPrefix("REMOTE  STATUS"))
        #expect(lines[6].range(of: #"^a       ok +\d+ ms$"#, options: .regularExpression) != nil, "\(lines[6])")
        #expect(lines[7].range(of: #"^b       ok +\d+ ms$"#, options: .regularExpression) != nil, "\(lines[7])")
        #expect(lines[8].hasPrefix("down    cannot reach down (https://127.0.0.1:\(port)): "))
        #expect(result.stderr.hasPrefix("luaexec: cannot reach down (https://127.0.0.1:\(port)): "))
        #expect(try Self.stack.eval("return fleet").text.isEmpty == false)

        // What a failed chunk printed is output, on standard output under its remote; the error
        // is on standard error, as with one remote.
        let two = try user.luaexec(["eval", "-r", "a", "-r", "b", "-e", "print('printed first') io.write('no newline') error('both')"])
        #expect(two.status == 1)
        #expect(two.stdout.hasPrefix("== a ==\nprinted first\nno newline\n== b ==\nprinted first\nno newline\nREMOTE  STATUS"), "\(two.stdout)")
        #expect(two.stdout.contains("a       runtime error"))
        #expect(two.stdout.contains("b       runtime error"))
        #expect(!two.stderr.contains("printed first"), "\(two.stderr)")
        #expect(two.stderr.hasPrefix("luaexec: runtime error\n(command line):1: both\nstack traceback:\n"), "\(two.stderr)")
        // Results after output, as one remote's answer has them.
        let results = try user.luaexec(["eval", "-r", "a", "-r", "b", "-e", "print('p') return 1, 'x'"])
        #expect(results.status == 0)
        #expect(results.stdout.hasPrefix("== a ==\np\n1\tx\n== b ==\np\n1\tx\nREMOTE"), "\(results.stdout)")
    }

    // MARK: - The repl in a real terminal

    /// A tmux server of its own, running one program in a 100×40 window.
    final class Terminal {
        let socket = "luaexec-\(UUID().uuidString.prefix(8))"

        init(_ command: String, environment: [String: String]) throws {
            let assignments = environment.map { "\($0.key)='\($0.value)'" }.joined(separator: " ")
            // The tmux server outlives this call: it must hold none of the descriptors by which
            // Process sees its child end (or Stack.run would wait for the server).
            let started = try Stack.run(
                "/usr/bin/perl",
                [
                    "-MPOSIX", "-e", "POSIX::close($_) for 3..1023; exec @ARGV or die", "/usr/bin/tmux", "-L", socket,
                    "new-session", "-d", "-x", "100", "-y", "40", "env \(assignments) \(command); echo EXITED $?; sleep 600",
                ])
            guard started.status == 0 else { throw StackError("tmux: \(started.stderr)") }
        }

        deinit { _ = try? Stack.run("/usr/bin/tmux", ["-L", socket, "kill-server"]) }

        func type(_ text: String) throws { _ = try Stack.run("/usr/bin/tmux", ["-L", socket, "send-keys", "-l", text]) }
        func press(_ key: String) throws { _ = try Stack.run("/usr/bin/tmux", ["-L", socket, "send-keys", key]) }
        func line(_ text: String) throws {
            try type(text)
            try press("Enter")
        }

        var screen: String {
            (try? Stack.run("/usr/bin/tmux", ["-L", socket, "capture-pane", "-p", "-S", "-200"]).stdout) ?? ""
        }

        /// The screen with lines that wrapped at the window's edge joined again.
        var joinedScreen: String {
            (try? Stack.run("/usr/bin/tmux", ["-L", socket, "capture-pane", "-p", "-J", "-S", "-200"]).stdout) ?? ""
        }

        /// Waits until the screen shows `text` `count` times.
        @discardableResult
        func waitFor(_ text: String, count: Int = 1, timeout: Duration = .seconds(15)) throws -> String {
            var last = ""
            do {
                try Stack.waitUntil(timeout: timeout, "'\(text)' on the screen") {
                    last = screen
                    return last.components(separatedBy: text).count - 1 >= count
                }
            } catch {
                throw StackError("\(error)\n--- screen ---\n\(last)")
            }
            return last
        }
    }

    @Test("login asks on the terminal: the key to trust, then the token without echo")
    func loginPrompts() throws {
        let user = try User()
        let terminal = try Terminal(Stack.binDirectory + "/luaexec login \(Self.url) --name asked", environment: user.environment)
        // (capture-pane drops the spaces that end a line, such as a prompt's)
        let screen = try terminal.waitFor("Trust this key and log in? [y/N]")
        #expect(screen.contains("presents a certificate whose public key has the SHA-256\n  \(Self.fingerprint)\n"))
        try terminal.line("y")
        try terminal.waitFor("Token:")
        try terminal.line(Self.stack.adminToken)
        let done = try terminal.waitFor("EXITED 0")
        #expect(done.contains("Logged in to asked (\(Self.url)) as admin [admin exec]."))
        #expect(!done.contains(Self.stack.adminToken))  // typed without echo
        #expect(try user.remotes()[0]["name"] as? String == "asked")
    }

    @Test("repl: continuation lines, expressions, =x, errors, history after a restart, Ctrl-C, Ctrl-D")
    func repl() throws {
        // A stack of its own: the spinning chunk holds the state until Ctrl-C ends it.
        let stack = try Stack(settings: ["limits.time=30"], tcp: true)
        let user = try User()
        try user.login("box", stack: stack)
        let command = Stack.binDirectory + "/luaexec repl"
        do {
            let terminal = try Terminal(command, environment: user.environment)
            try terminal.waitFor("Ctrl-D to leave.")
            try terminal.line("function add(a,")
            try terminal.waitFor("\n>>")
            try terminal.line("b)")
            try terminal.line("return a + b")
            try terminal.line("end")
            try terminal.line("add(40, 2)")
            try terminal.waitFor("\n42\n")
            try terminal.line("1+1")
            try terminal.waitFor("\n2\n")
            try terminal.line("x = {1, 'two', nested = {flag = true}}")
            try terminal.line("=x")
            try terminal.waitFor(#"{[1] = 1, [2] = "two", nested = {flag = true}}"#)
            try terminal.line("'top level strings are not quoted'")
            try terminal.waitFor("\ntop level strings are not quoted\n")
            try terminal.line("error('bad')")
            let errorScreen = try terminal.waitFor("stdin:1: in main chunk")
            #expect(errorScreen.contains("stdin:1: bad\nstack traceback:\n"))
            try terminal.line("while true do end")
            try terminal.waitFor("> while true do end\n")
            try Stack.waitUntil(timeout: .seconds(10), "the chunk to run") {
                (try? stack.request("/api/v1/admin/status", token: stack.adminToken).text.contains(#""running":{"#)) ?? false
            }
            try terminal.press("C-c")
            try terminal.waitFor("the chunk was interrupted by its client (Lua-Interrupt-Key)")
            try terminal.line("'still here'")
            try terminal.waitFor("\nstill here\n")
            try terminal.type("half a line")
            try terminal.press("C-c")
            try terminal.line("'after ctrl-c'")
            try terminal.waitFor("\nafter ctrl-c\n")
            // Asleep in sleep, the chunk is not the running one: its key ends it all the same.
            try terminal.line("print('zz') sleep(25) repl_sleeper_woke = true")
            try terminal.waitFor("\nzz\n")
            try Stack.waitUntil(timeout: .seconds(10), "the chunk to sleep") {
                (try? stack.request("/api/v1/admin/status", token: stack.adminToken).text.contains(#""why":"sleep""#)) ?? false
            }
            try terminal.press("C-c")
            try terminal.waitFor("the chunk was interrupted by its client (Lua-Interrupt-Key)", count: 2)
            #expect(try stack.eval("return repl_sleeper_woke").body == [])
            try terminal.press("C-d")
            try terminal.waitFor("EXITED 0")
        }
        do {
            // A token without admin ends its own chunk too.
            let execOnly = try User()
            try execOnly.login("box", token: try stack.makeToken("rx", scopes: ["exec"]), stack: stack)
            let terminal = try Terminal(command, environment: execOnly.environment)
            try terminal.waitFor("Ctrl-D to leave.")
            try terminal.line("while true do end")
            try Stack.waitUntil(timeout: .seconds(10), "the chunk to run") {
                (try? stack.request("/api/v1/admin/status", token: stack.adminToken).text.contains(#""token":"rx""#)) ?? false
            }
            try terminal.press("C-c")
            try terminal.waitFor("the chunk was interrupted by its client (Lua-Interrupt-Key)")
            try terminal.line("'still here'")
            try terminal.waitFor("\nstill here\n")
            try terminal.press("C-d")
            try terminal.waitFor("EXITED 0")
        }
        let history = try String(contentsOfFile: user.home + "/state/luaexec/history", encoding: .utf8)
        #expect(history.contains("add(40,\\0402)"))  // libedit's file encoding of a space
        let mode = try FileManager.default.attributesOfItem(atPath: user.home + "/state/luaexec/history")[.posixPermissions] as? Int
        #expect(mode == 0o600)

        // A new repl recalls the history: Up brings back the last line.
        let again = try Terminal(command, environment: user.environment)
        try again.waitFor("Ctrl-D to leave.")
        try again.press("Up")
        try again.waitFor("> print('zz') sleep(25) repl_sleeper_woke = true")
        try again.press("Up")
        try again.waitFor("> 'after ctrl-c'")
        try again.press("Enter")
        try again.waitFor("\nafter ctrl-c\n", count: 1)
        try again.press("C-d")
        try again.waitFor("EXITED 0")
    }

    // MARK: - Start-up failures

    /// An HTTPS server that is not a luaexec: openssl's test server, which answers every request
    /// with an HTML page of its own, with the stacks' certificate (so the pinned key matches).
    final class NotLuaexec {
        let url: String
        private let lifeline: FileHandle

        init() throws {
            let port = try Stack.freePort()
            url = "https://127.0.0.1:\(port)"
            let directory = NSTemporaryDirectory() + "luaexec-not-\(UUID().uuidString)"
            lifeline = try Stack.startWithLifeline(
                "/usr/bin/openssl",
                [
                    "s_server", "-accept", "127.0.0.1:\(port)", "-cert", Stack.certificate.cert, "-key", Stack.certificate.key,
                    "-www", "-quiet",
                ],
                log: directory + "/s_server.log", pidFile: directory + "/s_server.pid"
            ).lifeline
            try Stack.waitUntil(timeout: .seconds(10), "openssl s_server at \(url)") {
                (try? Stack.run("/usr/bin/curl", ["-sk", "-o", "/dev/null", url]).status) == 0
            }
        }

        deinit { try? lifeline.close() }
    }

    @Test("repl: each start-up failure exits 2 with its message, as a plain process and in a terminal, never a crash")
    func replStartupFailures() throws {
        let notLuaexec = try NotLuaexec()
        let downPort = try Stack.freePort()  // nothing listens there
        let revokedName = "repl-revoked-\(UUID().uuidString.prefix(8))"
        let revoked = try Self.stack.makeToken(revokedName, scopes: ["exec"])
        let old = "sha256//" + String(repeating: "B", count: 43) + "="
        let url = Self.url, fingerprint = Self.fingerprint
        let cases: [(what: String, arguments: [String], prepare: (User) throws -> Void, message: String)] = [
            ("no remote", ["repl"], { _ in }, "luaexec: no remote yet; log in first: luaexec login https://BOX\n"),
            ("an unknown remote", ["repl", "-r", "nope"], { try $0.login("box") }, "luaexec: no remote named 'nope' (known: box)\n"),
            (
                "a refused connection", ["repl"], { try $0.storeRemote("down", url: "https://127.0.0.1:\(downPort)") },
                "luaexec: cannot reach down (https://127.0.0.1:\(downPort)): Failed to connect to 127.0.0.1 port \(downPort)"
                    + " after N ms: Couldn't connect to server\n"
            ),
            (
                "a key that is not the pinned one", ["repl"],
                { try $0.storeRemote("box", url: url, fingerprint: old, token: Self.stack.adminToken) },
                """
                luaexec: the public key of box (\(url)) is not the one you trusted; refusing to talk to it.
                  trusted:   \(old)
                  presented: \(fingerprint)
                Someone may be intercepting the connection, or the appliance has a new certificate.
                If you know it has, trust the new key with:
                  luaexec login \(url) --name box --fingerprint \(fingerprint)

                """
            ),
            (
                "a revoked token", ["repl"], { try $0.login("box", token: revoked) },
                "luaexec: box (\(url)) refused the token (unknown, revoked or expired); log in again: luaexec login \(url) --name box\n"
            ),
            (
                "a server that is not a luaexec", ["repl"], { try $0.storeRemote("other", url: notLuaexec.url) },
                "luaexec: other (\(notLuaexec.url)) does not answer as a luaexec: HTTP 200 (text/html) to GET /api/v1/whoami\n"
            ),
        ]
        let users = try cases.map { item in
            let user = try User()
            try item.prepare(user)
            return user
        }
        let revoke = try Stack.run(Stack.binDirectory + "/luaexec", ["token", "revoke", revokedName, "--database", Self.stack.database])
        #expect(revoke.status == 0, "\(revoke.stderr)")
        try Stack.waitUntil(timeout: .seconds(5), "the daemon to refuse the revoked token") {
            (try? Self.stack.request("/api/v1/whoami", token: revoked).status) == 401
        }
        // curl says how long the refused connection took.
        func steady(_ text: String) -> String { text.replacingOccurrences(of: #"after \d+ ms"#, with: "after N ms", options: .regularExpression) }

        for (item, user) in zip(cases, users) {
            let plain = try user.luaexec(item.arguments)
            #expect(plain.status == 2, "\(item.what): \(plain.stderr)")  // a crash is 11 (SIGSEGV) or 6
            #expect(steady(plain.stderr) == item.message, "\(item.what)")
            #expect(plain.stdout == "", "\(item.what)")

            let terminal = try Terminal(
                Stack.binDirectory + "/luaexec " + item.arguments.joined(separator: " "), environment: user.environment)
            try terminal.waitFor("EXITED")
            let screen = steady(terminal.joinedScreen)
            #expect(screen.hasPrefix(item.message + "EXITED 2\n"), "\(item.what): \(screen)")
        }
    }

    // MARK: - Names and addresses

    @Test("login without --name names an appliance by host and port: two on one host are two remotes, each with its token")
    func twoAppliancesOnOneHost() throws {
        let user = try User()
        _ = try Self.stack.eval("which_box = 'first'")
        _ = try Self.other.eval("which_box = 'second'")
        let appliances = [(Self.stack, Self.url, "first"), (Self.other, Self.otherURL, "second")]
        for (stack, url, _) in appliances {
            let name = String(url.dropFirst("https://".count))
            let result = try user.luaexec(
                ["login", url, "--fingerprint", Self.fingerprint], extra: ["LUAEXEC_TOKEN": stack.adminToken])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout == "Logged in to \(name) (\(url)) as admin [admin exec].\nTry: luaexec repl -r \(name)\n")
        }
        let stored = try user.remotes()
        #expect(stored.map { $0["name"] as? String } == appliances.map { String($0.1.dropFirst("https://".count)) })
        #expect(stored.map { $0["url"] as? String } == appliances.map { $0.1 })
        #expect(stored.map { $0["token"] as? String } == appliances.map { $0.0.adminToken })
        for (_, url, expected) in appliances {
            let result = try user.luaexec(["eval", "-r", String(url.dropFirst("https://".count)), "-e", "return which_box"])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout == expected)
        }
    }

    @Test("login under a name that stands for another appliance: refused without --replace; with it, the new one's token is asked for and the old one never leaves")
    func loginUnderAnotherAppliancesName() throws {
        let user = try User()
        try user.login("box")
        let before = try Data(contentsOf: URL(fileURLWithPath: user.remotesFile))

        let refused = try user.luaexec(["login", Self.otherURL, "--name", "box", "--fingerprint", Self.fingerprint])
        #expect(refused.status == 2)
        #expect(refused.stderr == """
            luaexec: a remote named 'box' is \(Self.url); pass --replace to make it \(Self.otherURL), or choose another \
            --name. Nothing was stored.

            """)
        let noToken = try user.luaexec(["login", Self.otherURL, "--name", "box", "--replace", "--fingerprint", Self.fingerprint])
        #expect(noToken.status == 2)
        #expect(noToken.stderr == "luaexec: no terminal to read the token from: use --token-file or LUAEXEC_TOKEN\n")
        #expect(try Data(contentsOf: URL(fileURLWithPath: user.remotesFile)) == before)
        // The first appliance's token was never offered to the second (it would have refused it).
        #expect(!Self.other.luaexecdLog().contains(#"endpoint="GET /api/v1/whoami" status=401"#))

        _ = try Self.other.eval("replaced_box = 'the second one'")
        let replaced = try user.luaexec(
            ["login", Self.otherURL, "--name", "box", "--replace", "--fingerprint", Self.fingerprint],
            extra: ["LUAEXEC_TOKEN": Self.other.adminToken])
        #expect(replaced.status == 0, "\(replaced.stderr)")
        let stored = try user.remotes()
        #expect(stored.count == 1)
        #expect(stored[0]["url"] as? String == Self.otherURL)
        #expect(stored[0]["token"] as? String == Self.other.adminToken)
        #expect(try user.luaexec(["eval", "-r", "box", "-e", "return replaced_box"]).stdout == "the second one")
    }

    @Test("login on a terminal asks before it points a name at another appliance, then asks for that one's token")
    func loginAsksBeforeReplacing() throws {
        let user = try User()
        try user.login("box")
        let command = Stack.binDirectory + "/luaexec login \(Self.otherURL) --name box"
        let question = "'box' is \(Self.url). Make it \(Self.otherURL) instead? [y/N]"

        let declined = try Terminal(command, environment: user.environment)
        try declined.waitFor(question)
        try declined.line("n")
        let screen = try declined.waitFor("EXITED 2")
        #expect(screen.contains("luaexec: 'box' stays \(Self.url); nothing was stored\n"))
        #expect(try user.remotes().map { $0["url"] as? String } == [Self.url])

        let accepted = try Terminal(command, environment: user.environment)
        try accepted.waitFor(question)
        try accepted.line("y")
        try accepted.waitFor("Trust this key and log in? [y/N]")
        try accepted.line("y")
        try accepted.waitFor("Token:")
        try accepted.line(Self.other.adminToken)
        let done = try accepted.waitFor("EXITED 0")
        #expect(done.contains("Logged in to box (\(Self.otherURL)) as admin [admin exec]."))
        let stored = try user.remotes()
        #expect(stored.count == 1)
        #expect(stored[0]["url"] as? String == Self.otherURL)
        #expect(stored[0]["token"] as? String == Self.other.adminToken)
    }
}
