import CRemote
import RemoteClient

#if canImport(Glibc)
import Glibc
#endif

/// libedit with history, for `luaexec repl` (`Sources/CRemote/lineedit.c`). The editor is
/// closed by `deinit` and nowhere else, so a session that fails half-way cannot close it twice.
final class LineEditor {
    private let editor: OpaquePointer

    enum Read {
        case line(String)
        case end
        case interrupted
    }

    /// Opens the terminal for editing and loads the history file, which is made 0600 in a
    /// 0700 directory before libedit writes it: it holds what was typed, secrets included.
    init(history: String) throws {
        try? RemotesFile.makeDirectory(String(history[..<history.lastIndex(of: "/")!]))
        let fd = open(history, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0o600)
        if fd >= 0 { close(fd) }
        guard let editor = lxe_open("luaexec", history) else { throw ClientFailure("cannot start the line editor") }
        self.editor = editor
    }

    deinit { lxe_close(editor) }

    func read(_ prompt: String) -> Read {
        var line: UnsafePointer<CChar>?
        switch lxe_read(editor, prompt, &line) {
        case 0: return .line(String(cString: line!))
        case 2: return .interrupted
        default: return .end
        }
    }

    /// Adds `line` to the history and saves the history file.
    func remember(_ line: String) { lxe_remember(editor, line) }
}
