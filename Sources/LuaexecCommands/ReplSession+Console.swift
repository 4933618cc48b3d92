import RemoteClient

/// Tab completion and `?name` in `luaexec repl` (SPEC O10): both ask the remote's live state
/// (`/api/v1/console/complete` and `/inspect`, docs/console.md), which reads it without
/// running anything there.
extension ReplSession {
    /// The names that complete `text` (the line before the cursor) and how many bytes before the
    /// cursor they replace; nil (a beep) when there are none or the remote cannot say.
    func completions(before text: String) -> (names: [String], word: Int)? {
        guard
            let answer = try? client.send(
                "POST", "/api/v1/console/complete", headers: ["Accept: application/json"], body: Array(text.utf8)),
            answer.status == 200, let body = JSONValue.parse(answer.body), let word = body["word"]?.string,
            let candidates = body["candidates"]?.array
        else { return nil }
        let names = candidates.compactMap { $0["name"]?.string }
        return names.isEmpty ? nil : (names, word.utf8.count)
    }

    /// `?name`: what the name is on the remote, in a line or a few.
    func describe(_ name: String) {
        let answer: Answer
        do {
            answer = try client.send(
                "POST", "/api/v1/console/inspect", headers: ["Accept: application/json"], body: Array(name.utf8))
        } catch {
            complain(remote.explain(error))
            return
        }
        guard let body = JSONValue.parse(answer.body) else {
            complain("HTTP \(answer.status): \(answer.text.trimmingCharacters())")
            return
        }
        guard answer.status == 200 else {
            complain(body["error"]?["message"]?.string ?? "HTTP \(answer.status)")
            return
        }
        print(Self.description(of: body))
    }

    /// The inspection as the REPL prints it:
    ///
    ///     sip.calls.get_all()  -- function defined at .../init.d/20-sip-demo.lua:20-24
    ///     string.format(...)  -- C function
    ///     sip  -- table: 1 key, length 0
    ///       calls = table: 0x...
    ///     toast(text: string, times?: integer)  -- action: Show a message on the box ...
    static func description(of body: JSONValue) -> String {
        let name = body["name"]?.string ?? "?"
        let type = body["type"]?.string ?? "nil"
        var lines: [String] = []
        switch type {
        case "function" where body["what"]?.string == "C":
            lines.append("\(name)(...)  -- C function")
        case "function":
            var parameters = (body["params"]?.array ?? []).compactMap(\.string)
            if body["vararg"]?.bool == true { parameters.append("...") }
            let source = body["source"]?.string ?? "?"
            let line = body["line"]?.int.map { String($0) } ?? "?"
            let last = body["lastline"]?.int.map { String($0) } ?? "?"
            lines.append(
                "\(name)(\(parameters.joined(separator: ", ")))  -- function defined at \(source):\(line)-\(last)")
        case "table":
            let keys = body["keys"]?.int ?? 0
            let counted =
                body["keys_exact"]?.bool == false ? "at least \(keys) keys" : keys == 1 ? "1 key" : "\(keys) keys"
            lines.append("\(name)  -- table: \(counted), length \(body["length"]?.int ?? 0)")
            for entry in body["preview"]?.array ?? [] {
                lines.append(
                    "  \(short(entry["key"], key: true)) = \(short(entry["value"], type: entry["type"]?.string))")
            }
            if body["truncated"]?.bool == true, keys > 0 { lines.append("  ...") }
        case "string":
            let length = body["length"]?.int ?? 0
            let more = body["truncated"]?.bool == true ? "..." : ""
            lines.append("\(name)  -- string of \(length) bytes: \(short(body["value"], type: "string"))\(more)")
        case "action":
            break
        default:
            lines.append(
                "\(name)  -- \(type)\(body["value"].map { $0 == .null ? "" : ": " + short($0, type: type) } ?? "")")
        }
        if let action = body["action"] {
            let parameters = (action["params"]?.array ?? []).map { parameter in
                "\(parameter["name"]?.string ?? "?")\(parameter["optional"]?.bool == true ? "?" : ""): "
                    + (parameter["type"]?.string ?? "?")
            }
            let help = action["help"]?.string.map { ": " + $0 } ?? ""
            lines.append("\(name)(\(parameters.joined(separator: ", ")))  -- action\(help)")
        }
        return lines.joined(separator: "\n")
    }

    /// A key or value of a preview: a name key as is, a string quoted (a value whose `type` is
    /// not string, as `tostring` shows it, not), bytes as base64.
    private static func short(_ value: JSONValue?, key: Bool = false, type: String? = nil) -> String {
        switch value {
        case .string(let text)?:
            if key, ConsoleNames.isName(text) { return text }
            if !key, type != "string" { return text }
            let quoted = "\"" + text.replacing("\\", with: "\\\\").replacing("\"", with: "\\\"") + "\""
            return key ? "[\(quoted)]" : quoted
        case .number(let text)?: return key ? "[\(text)]" : text
        case .bool(let flag)?: return String(flag)
        case .object?:
            let bytes = "<bytes, base64 \(value?["base64"]?.string ?? "")>"
            return key ? "[\(bytes)]" : bytes
        default: return "nil"
        }
    }
}

/// Lua's rule for a name, as the REPL shows table keys.
enum ConsoleNames {
    static func isName(_ text: String) -> Bool {
        guard let first = text.utf8.first, !(0x30...0x39).contains(first) else { return false }
        return text.utf8.allSatisfy {
            $0 == 0x5F || (0x30...0x39).contains($0) || (0x41...0x5A).contains($0) || (0x61...0x7A).contains($0)
        }
    }
}
