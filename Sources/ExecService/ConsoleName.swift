/// What a console asks the state about (SPEC O10): the name being typed before the cursor, or a
/// name to inspect. Only names are understood: Lua names joined by `.`, with `:` before the last
/// (`sip.calls.ge`, `s:up`); no expression is ever evaluated to find a table, so what follows a
/// call or an index (`f().x`, `t[1].x`) has no completions.
struct ConsoleName: Equatable {
    /// The tables walked from the globals, in order.
    var path: [String]
    /// The start of the name being typed (completion), or the last name (inspection).
    var word: String
    /// The last separator is `:`: only functions complete (methods).
    var methods: Bool

    /// The longest name path a console may send; longer is 400 (a name so long is a mistake,
    /// and the walk must stay bounded).
    static let maxLength = 1024

    static let keywords: Set<String> = [
        "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in", "local", "nil",
        "not", "or", "repeat", "return", "then", "true", "until", "while",
    ]

    private static func isNameByte(_ byte: UInt8) -> Bool {
        byte == UInt8(ascii: "_") || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")) || isDigit(byte)
    }

    private static func isDigit(_ byte: UInt8) -> Bool { byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9") }

    /// Whether `text` is a Lua name: not empty, not starting with a digit, not a keyword.
    static func isName(_ text: Substring) -> Bool {
        guard let first = text.utf8.first, !isDigit(first) else { return false }
        return text.utf8.allSatisfy(isNameByte) && !keywords.contains(String(text))
    }

    /// The name being typed at the end of `text` (the text before the cursor: a line, or an
    /// editor's whole text up to the cursor). `.success(nil)`: nothing there to complete (a
    /// number, what follows a call or an index, `..`). A failure is a sentence for a 400.
    static func beforeCursor(_ text: [UInt8]) -> Result<ConsoleName?, ConsoleNameProblem> {
        func nameEnding(at end: Int) -> Int {
            var index = end
            while index > 0, isNameByte(text[index - 1]) { index -= 1 }
            return index
        }
        var start = nameEnding(at: text.count)
        let word = text[start...]
        if let first = word.first, isDigit(first) { return .success(nil) }
        var path: [String] = []
        var methods = false
        while start > 0, text[start - 1] == UInt8(ascii: ".") || text[start - 1] == UInt8(ascii: ":") {
            let separator = text[start - 1]
            // `a..b`: concatenation, and `b` a global.
            if separator == UInt8(ascii: "."), start >= 2, text[start - 2] == UInt8(ascii: ".") { break }
            // `:` only before the last name.
            if separator == UInt8(ascii: ":") && (!path.isEmpty || methods) { return .success(nil) }
            let segmentStart = nameEnding(at: start - 1)
            let segment = String(decoding: text[segmentStart..<(start - 1)], as: UTF8.self)
            guard isName(Substring(segment)) else { return .success(nil) }
            if text.count - segmentStart > maxLength { return .failure(.tooLong) }
            if separator == UInt8(ascii: ":") { methods = true }
            path.insert(segment, at: 0)
            start = segmentStart
        }
        if text.count - start > maxLength { return .failure(.tooLong) }
        return .success(ConsoleName(path: path, word: String(decoding: word, as: UTF8.self), methods: methods))
    }

    /// A name to inspect: `sip.calls.get_all`, `s:upper` (as `s.upper`), spaces around it
    /// ignored.
    static func named(_ text: [UInt8]) -> Result<ConsoleName, ConsoleNameProblem> {
        guard text.count <= maxLength else { return .failure(.tooLong) }
        var trimmed = Substring(String(decoding: text, as: UTF8.self))
        while let first = trimmed.first, first.isWhitespace { trimmed.removeFirst() }
        while let last = trimmed.last, last.isWhitespace { trimmed.removeLast() }
        guard !trimmed.isEmpty else { return .failure(.empty) }
        var segments = trimmed.split(separator: ".", omittingEmptySubsequences: false)
        var methods = false
        if let last = segments.last, last.contains(":") {
            let parts = last.split(separator: ":", omittingEmptySubsequences: false)
            guard parts.count == 2 else { return .failure(.notAName(String(trimmed))) }
            segments.removeLast()
            segments += parts
            methods = true
        }
        guard segments.allSatisfy(isName) else { return .failure(.notAName(String(trimmed))) }
        return .success(
            ConsoleName(path: segments.dropLast().map(String.init), word: String(segments.last!), methods: methods))
    }
}

/// Why a console's name was refused (400), as a sentence.
enum ConsoleNameProblem: Error, Equatable, CustomStringConvertible {
    case tooLong
    case empty
    case notAName(String)

    var description: String {
        switch self {
        case .tooLong:
            "the name is longer than \(ConsoleName.maxLength) bytes; completion and inspection read names up to that"
        case .empty:
            "send a name to inspect in the body, such as sip.calls.get_all"
        case .notAName(let text):
            "'\(text.prefix(80))' is not a name: send Lua names joined by . (and : before the last), such as sip.calls.get_all"
        }
    }
}
