import CYAML

/// A node of a YAML document, with the line it starts on: what the config file's checks need,
/// read with Debian's libyaml (YAML 1.1; scalars resolved as YAML 1.2's core schema).
///
/// libyaml rather than a Swift YAML package: those import full Foundation, whose ICU data
/// alone is 34 MB of an appliance's flash.
struct ConfigNode {
    enum Kind {
        /// `plain`: unquoted, so subject to resolution as null, bool or number.
        case scalar(String, plain: Bool)
        case mapping([(key: ConfigNode, value: ConfigNode)])
        case sequence([ConfigNode])
    }

    var kind: Kind
    /// 1-based; 0 for a value that came from the command line.
    var line: Int

    /// A plain scalar, as `--set` values are.
    init(plain text: String) {
        kind = .scalar(text, plain: true)
        line = 0
    }

    init(kind: Kind, line: Int) {
        self.kind = kind
        self.line = line
    }

    /// The text of a scalar that is not null; nil for mappings, sequences and null.
    var string: String? {
        guard case .scalar(let text, _) = kind, !isNull else { return nil }
        return text
    }

    var isNull: Bool {
        guard case .scalar(let text, plain: true) = kind else { return false }
        return ["", "~", "null", "Null", "NULL"].contains(text)
    }

    var bool: Bool? {
        guard case .scalar(let text, plain: true) = kind else { return nil }
        switch text {
        case "true", "True", "TRUE": return true
        case "false", "False", "FALSE": return false
        default: return nil
        }
    }

    var int: Int? {
        guard case .scalar(let text, plain: true) = kind else { return nil }
        return Int(text.hasPrefix("+") ? String(text.dropFirst()) : text)
    }

    /// A finite number, integer or not.
    var number: Double? {
        guard case .scalar(let text, plain: true) = kind,
            text.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) || "+-.eE".utf8.contains($0) }),
            let value = Double(text), value.isFinite
        else { return nil }
        return value
    }

    /// What the node is, for an error message: "a mapping", "a list", "an empty value".
    var kindName: String {
        switch kind {
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .scalar: isNull ? "an empty value" : "a value"
        }
    }

    /// Why a text is not a YAML document, and where.
    struct SyntaxError: Error {
        var line: Int
        var problem: String
    }

    /// The first document of `text`, or nil when it has none (empty, or only comments).
    static func parse(_ text: String) throws(SyntaxError) -> ConfigNode? {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { throw SyntaxError(line: 0, problem: "out of memory") }
        defer { yaml_parser_delete(&parser) }
        let bytes = Array(text.utf8)
        var document = yaml_document_t()
        let loaded = bytes.withUnsafeBufferPointer { buffer in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            return yaml_parser_load(&parser, &document)
        }
        guard loaded == 1 else {
            var problem = parser.problem.map { String(cString: $0) } ?? "unreadable"
            if let context = parser.context { problem += " (\(String(cString: context)))" }
            throw SyntaxError(line: Int(parser.problem_mark.line) + 1, problem: problem)
        }
        defer { yaml_document_delete(&document) }
        guard let root = yaml_document_get_root_node(&document) else { return nil }
        return node(root, in: &document, depth: 0)
    }

    private static func node(_ node: UnsafeMutablePointer<yaml_node_t>, in document: inout yaml_document_t, depth: Int)
        -> ConfigNode
    {
        let line = Int(node.pointee.start_mark.line) + 1
        // A config file is two levels deep; an alias cycle or a deep nest stops here.
        guard depth < 16 else { return ConfigNode(kind: .sequence([]), line: line) }
        switch node.pointee.type {
        case YAML_SCALAR_NODE:
            let scalar = node.pointee.data.scalar
            let text = String(decoding: UnsafeBufferPointer(start: scalar.value, count: scalar.length), as: UTF8.self)
            return ConfigNode(kind: .scalar(text, plain: scalar.style == YAML_PLAIN_SCALAR_STYLE), line: line)
        case YAML_MAPPING_NODE:
            var pairs: [(key: ConfigNode, value: ConfigNode)] = []
            var pair = node.pointee.data.mapping.pairs.start
            while let current = pair, current != node.pointee.data.mapping.pairs.top {
                if let key = yaml_document_get_node(&document, current.pointee.key),
                    let value = yaml_document_get_node(&document, current.pointee.value)
                {
                    pairs.append((Self.node(key, in: &document, depth: depth + 1), Self.node(value, in: &document, depth: depth + 1)))
                }
                pair = current + 1
            }
            return ConfigNode(kind: .mapping(pairs), line: line)
        default:
            var items: [ConfigNode] = []
            var item = node.pointee.data.sequence.items.start
            while let current = item, current != node.pointee.data.sequence.items.top {
                if let child = yaml_document_get_node(&document, current.pointee) {
                    items.append(Self.node(child, in: &document, depth: depth + 1))
                }
                item = current + 1
            }
            return ConfigNode(kind: .sequence(items), line: line)
        }
    }
}
