/// Results as `luaexec repl` prints them: what `lua5.4` would print for scalars (a string at
/// the top level as is), tables as Lua constructors that could be pasted back, strings inside
/// them quoted. Colour (ANSI) only when asked, for a terminal.
public struct LuaPrinter: Sendable {
    public var colour: Bool
    /// A table whose one-line form is longer than this is written one entry per line.
    public var width = 72

    public init(colour: Bool) { self.colour = colour }

    /// The results of one evaluation, separated by tabs as `print` separates its arguments.
    public func results(_ values: [JSONValue]) -> String {
        values.map { value in
            if case .string(let text) = value { return paint(text, .string) }
            return render(value, indent: "")
        }.joined(separator: "\t")
    }

    enum Role { case string, number, keyword, key }

    func paint(_ text: String, _ role: Role) -> String {
        guard colour else { return text }
        let code = switch role {
        case .string: "32"
        case .number: "36"
        case .keyword: "35"
        case .key: "33"
        }
        return "\u{1B}[\(code)m\(text)\u{1B}[0m"
    }

    func render(_ value: JSONValue, indent: String) -> String {
        switch value {
        case .null: return paint("nil", .keyword)
        case .bool(let flag): return paint(flag ? "true" : "false", .keyword)
        case .number(let text): return paint(text, .number)
        case .string(let text): return paint(Self.quote(text), .string)
        case .array(let items):
            return table(items.map { (nil, $0) }, indent: indent)
        case .object(let members):
            return table(members.map { (Optional($0.0), $0.1) }, indent: indent)
        }
    }

    func table(_ entries: [(String?, JSONValue)], indent: String) -> String {
        if entries.isEmpty { return "{}" }
        let inner = indent + "  "
        let parts = entries.map { key, value -> String in
            guard let key else { return render(value, indent: inner) }
            return Self.keyText(key, paint: { paint($0, .key) }) + " = " + render(value, indent: inner)
        }
        let oneLine = "{" + parts.joined(separator: ", ") + "}"
        if Self.visibleLength(oneLine) + indent.count <= width && !oneLine.contains("\n") { return oneLine }
        return "{\n" + parts.map { inner + $0 }.joined(separator: ",\n") + "\n" + indent + "}"
    }

    static let keywords: Set<String> = [
        "and", "break", "do", "else", "elseif", "end", "false", "for", "function", "goto", "if", "in", "local", "nil",
        "not", "or", "repeat", "return", "then", "true", "until", "while",
    ]

    /// E5's JSON writes a table with other keys than 1..n as an object whose keys are strings,
    /// so `{1, k = 2}` arrives as `{"1": 1, "k": 2}`: a key that reads as an integer is written
    /// as one (`[1]`), which is what such a key nearly always was.
    static func keyText(_ key: String, paint: (String) -> String) -> String {
        if let integer = Int64(key), String(integer) == key { return "[\(integer)]" }
        let bytes = Array(key.utf8)
        let identifier = !bytes.isEmpty && !(0x30...0x39).contains(bytes[0])
            && bytes.allSatisfy { $0 == 0x5F || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0) }
        return identifier && !keywords.contains(key) ? paint(key) : "[" + quote(key) + "]"
    }

    /// A Lua string literal for `text`, with the escapes `string.format("%q")` uses for
    /// control characters.
    public static func quote(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 || scalar.value == 0x7F {
                    out += "\\" + String(scalar.value)
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }

    static func visibleLength(_ text: String) -> Int {
        var count = 0, escape = false
        for scalar in text.unicodeScalars {
            if scalar == "\u{1B}" { escape = true } else if escape { if scalar == "m" { escape = false } } else { count += 1 }
        }
        return count
    }
}
