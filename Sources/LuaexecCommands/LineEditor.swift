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

    /// Tab completion: given the text before the cursor, the names that complete it and how many
    /// bytes before the cursor they replace; nil offers nothing (libedit beeps).
    var completer: ((String) -> (names: [String], word: Int)?)? {
        didSet {
            // The editor lives as long as `self` (deinit closes it), so an unretained reference
            // is enough; libedit calls back only from `read`.
            lxe_set_completer(
                editor,
                { context, before, length, names, wordLength in
                    guard let context, let before, let names, let wordLength else { return 1 }
                    let editor = Unmanaged<LineEditor>.fromOpaque(context).takeUnretainedValue()
                    let text = String(decoding: UnsafeRawBufferPointer(start: before, count: length), as: UTF8.self)
                    guard let found = editor.completer?(text), !found.names.isEmpty else { return 1 }
                    names.pointee = strdup(found.names.map { $0 + "\n" }.joined())
                    wordLength.pointee = found.word
                    return names.pointee == nil ? 1 : 0
                }, Unmanaged.passUnretained(self).toOpaque())
        }
    }
}
