import ArgumentParser
import CRemote
import RemoteClient

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
#if canImport(Glibc)
import Glibc
#endif

/// `luaexec repl`: `lua5.4`'s interactive mode over the wire (SPEC O8). A line that is not yet a
/// whole chunk continues at `>>`; an expression (or `=expr`) is printed; Ctrl-C interrupts the
/// chunk, running or asleep in `sleep` (its own `Lua-Interrupt-Key`, any token that may
/// evaluate), a second Ctrl-C stops waiting for it, and at the prompt it clears the line;
/// Ctrl-D leaves. Line editing and history come from libedit.
struct ReplCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "repl",
        abstract: "An interactive Lua prompt on a remote.",
        discussion: """
            Commands: :status and :reset (admin tokens), :help, :quit; ?name shows what a name is, Tab \
            completes names from the remote's state. History: ~/.local/state/luaexec/history.
            """)

    @Option(name: [.customShort("r"), .customLong("remote")], help: "The remote (default: the default one).")
    var remoteName: String?

    func run() throws {
        try client {
            let remote: Remote
            do { remote = try loadRemotes().chosen(remoteName) } catch let error as RemoteFileError {
                throw ClientFailure(error.description)
            }
            let session = try ReplSession(remote: remote)
            session.loop()
        }
    }
}

final class ReplSession {
    let remote: Remote
    let client: HTTPSClient
    let syntax = ChunkSyntax()
    let printer: LuaPrinter
    let colour: Bool
    let editor: LineEditor

    /// Checks the remote and its token, then opens the line editor: a start-up that fails
    /// (unreachable, a changed key, a refused token, not a luaexec) ends with its message before
    /// anything is opened.
    init(remote: Remote) throws {
        self.remote = remote
        client = remote.client
        colour = isatty(1) != 0 && getenv("NO_COLOR") == nil && getenv("TERM").map { String(cString: $0) } ?? "dumb" != "dumb"
        printer = LuaPrinter(colour: colour)
        let who: TokenInfo
        do {
            switch try remote.checkToken() {
            case .accepted(let info): who = info
            case .refused:
                throw ClientFailure(
                    remote.explain(.refused) + "; log in again: luaexec login \(remote.url) --name \(remote.name)")
            case let other: throw ClientFailure(remote.explain(other))
            }
        } catch let error as ClientError {
            throw ClientFailure(remote.explain(error))
        }
        editor = try LineEditor(history: RemotesFile.historyPath)
        lxr_catch_sigint()
        editor.completer = { [unowned self] text in self.completions(before: text) }
        print("luaexec repl: \(remote.name) (\(remote.url)) as \(who.name), Lua 5.4. :help for commands, Ctrl-D to leave.")
    }

    func read(_ prompt: String) -> LineEditor.Read { editor.read(prompt) }

    func loop() {
        while true {
            switch read("> ") {
            case .end:
                print("")
                return
            case .interrupted:
                print("")
                continue
            case .line(let first):
                let trimmed = first.trimmingCharacters()
                if trimmed.hasPrefix(":") {
                    editor.remember(trimmed)
                    if !command(trimmed) { return }
                    continue
                }
                if trimmed.hasPrefix("?") {
                    editor.remember(trimmed)
                    describe(String(trimmed.dropFirst()))
                    continue
                }
                guard let chunk = complete(first) else { continue }
                editor.remember(chunk.typed)
                evaluate(chunk.text)
            }
        }
    }

    /// What lua.c's loadline does: `=expr` and an expression become `return ...`; a chunk
    /// that ends early (`<eof>`) continues on the next line. Nil when Ctrl-C dropped it.
    func complete(_ first: String) -> (text: String, typed: String)? {
        var line = first
        if line.hasPrefix("=") { line = "return " + line.dropFirst() }
        if syntax.check("return " + line) == .complete { return ("return " + line, first) }
        var buffer = line, typed = first
        while syntax.check(buffer) == .incomplete {
            switch read(">> ") {
            case .line(let next):
                buffer += "\n" + next
                typed += "\n" + next
            case .end:
                return (buffer, typed)  // as lua.c does: what there is goes, and fails
            case .interrupted:
                print("")
                return nil
            }
        }
        return (buffer, typed)
    }

    /// `:trace locals on`: tracebacks list each frame's locals (SPEC O11).
    var traceLocals = false

    /// Runs a chunk, its output on the screen as it prints it (SPEC E13), then its results or
    /// its error with the traceback.
    func evaluate(_ chunk: String) {
        let answer: Answer
        var headers = ["Accept: text/event-stream, application/json", "Lua-Chunk-Name: =stdin"]
        if traceLocals { headers.append("Lua-Traceback: locals") }
        var events = ServerSentEvents()
        do {
            answer = try client.send(
                "POST", "/api/v1/exec/interactive.lua", headers: headers, body: Array(chunk.utf8), watchInterrupt: true,
                interruptKey: "repl-" + UUID().uuidString
            ) { part in
                for event in events.feed(part) where event.name == "output" {
                    if let bytes = JSONValue.parse(event.data)?.luaBytes { writeOut(bytes) }
                }
            }
        } catch {
            complain(remote.explain(error))
            return
        }
        if answer.interruptSent || answer.cancelled { print("") }  // after the terminal's ^C
        if answer.cancelled {
            complain("stopped waiting; the chunk may still run on \(remote.name) until its time limit")
            return
        }
        // Streamed: the final event's data is the JSON answer (its output already shown).
        var json = answer.body
        if answer.headers["content-type"] == "text/event-stream",
            let final = ServerSentEvents.events(in: answer.body).last(where: {
                $0.name == "result" || $0.name == "error"
            })
        {
            json = final.data
        }
        guard let body = JSONValue.parse(json), case .bool(let ok)? = body["ok"] else {
            complain("HTTP \(answer.status): \(answer.text.trimmingCharacters())")
            return
        }
        if let output = body["output"] { writeOut(Self.bytes(of: output)) }
        if ok {
            if case .array(let results)? = body["results"], !results.isEmpty {
                print(printer.results(results))
            }
        } else {
            var message = body["error"]?["message"]?.string ?? "error"
            if let traceback = body["error"]?["traceback"]?.string { message += "\n" + traceback }
            complain(message)
        }
    }

    /// A Lua string as E5's JSON carries it: text, or `{"base64": ...}`.
    static func bytes(of value: JSONValue) -> [UInt8] {
        if let text = value.string { return Array(text.utf8) }
        if let encoded = value["base64"]?.string, let data = Data(base64Encoded: encoded) { return Array(data) }
        return []
    }

    func complain(_ message: String) {
        let message = terminalSafe(message)
        let text = colour ? "\u{1B}[31m\(message)\u{1B}[0m\n" : message + "\n"
        writeError(text)
    }

    /// A `:command`; false to leave.
    func command(_ line: String) -> Bool {
        switch line {
        case ":quit", ":q", ":exit":
            return false
        case ":help":
            print("""
                Lua as in lua5.4's interactive mode: an expression is printed, an unfinished chunk
                continues at >>, globals live on between lines, locals end with their line.
                  :status   the daemon's status (admin)   :reset   a fresh Lua state (admin)
                  :quit     leave (or Ctrl-D)             Ctrl-C   interrupt a running chunk
                  ?name     what a name is on the remote  Tab      complete a name from the remote
                  :trace locals on|off   tracebacks list each frame's locals
                """)
        case ":trace locals on", ":trace locals off":
            traceLocals = line.hasSuffix("on")
            print(traceLocals ? "tracebacks list each frame's locals" : "tracebacks without locals")
        case ":trace", ":trace locals":
            print("tracebacks \(traceLocals ? "list" : "do not list") each frame's locals (:trace locals on|off)")
        case ":status", ":reset":
            let reset = line == ":reset"
            do {
                let answer = try client.send(
                    reset ? "POST" : "GET", reset ? "/api/v1/admin/reset" : "/api/v1/admin/status",
                    headers: ["Accept: application/json"])
                guard answer.status == 200, let body = JSONValue.parse(answer.body) else {
                    complain(Remote.refusal(answer))  // `HTTP 403: the token lacks the 'admin' scope`
                    return true
                }
                print(reset ? "the Lua state was reset; init scripts ran again" : printer.results([body]))
            } catch {
                complain(remote.explain(error))
            }
        default:
            complain("unknown command \(line); :help lists them")
        }
        return true
    }
}
