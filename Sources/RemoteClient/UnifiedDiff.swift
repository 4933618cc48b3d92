/// A unified diff of two texts as `diff -u` writes it (hunks with three lines of context,
/// `\ No newline at end of file`), for `luaexec script diff`.
///
/// Written here rather than run as /usr/bin/diff: the client imports no full Foundation (so no
/// `Process`), needs no temporary file for the remote's copy, and does not depend on diffutils
/// being installed where it runs. The edit script is Myers's shortest one ("An O(ND) Difference
/// Algorithm and Its Variations", 1986) after the common head and tail are set aside; where
/// several shortest scripts exist, GNU diff may choose another, equally short. Past
/// `maximumEdits` differences (two unrelated files), it replaces the differing middle whole
/// instead of searching further, so memory stays bounded.
public enum UnifiedDiff {
    public static let context = 3
    public static let maximumEdits = 2_000

    /// The diff from `old` to `new` with `---`/`+++` labels, or nil when they are the same bytes.
    public static func render(old: [UInt8], new: [UInt8], oldLabel: String, newLabel: String) -> [UInt8]? {
        guard old != new else { return nil }
        let a = lines(old)
        let b = lines(new)
        let operations = self.operations(a, b)
        var out = Array("--- \(oldLabel)\n+++ \(newLabel)\n".utf8)
        for hunk in hunks(operations) {
            let slice = operations[hunk]
            let aCount = slice.filter { $0.kind != .insert }.count
            let bCount = slice.filter { $0.kind != .delete }.count
            let first = operations[hunk.lowerBound]
            out += Array("@@ -\(range(first.a, aCount)) +\(range(first.b, bCount)) @@\n".utf8)
            for operation in slice {
                let (mark, line): (UInt8, [UInt8]) =
                    switch operation.kind {
                    case .equal: (UInt8(ascii: " "), a[operation.a])
                    case .delete: (UInt8(ascii: "-"), a[operation.a])
                    case .insert: (UInt8(ascii: "+"), b[operation.b])
                    }
                out.append(mark)
                out += line
                if line.last != 0x0A { out += Array("\n\\ No newline at end of file\n".utf8) }
            }
        }
        return out
    }

    /// The lines of `text`, each with its newline (the last may lack one).
    static func lines(_ text: [UInt8]) -> [[UInt8]] {
        var lines: [[UInt8]] = []
        var start = 0
        for (index, byte) in text.enumerated() where byte == 0x0A {
            lines.append(Array(text[start...index]))
            start = index + 1
        }
        if start < text.count { lines.append(Array(text[start...])) }
        return lines
    }

    /// `start,count` as diff writes a hunk's range: `start` is 1-based, or the line before
    /// when the range is empty; `,1` is left out.
    static func range(_ before: Int, _ count: Int) -> String {
        switch count {
        case 0: "\(before),0"
        case 1: "\(before + 1)"
        default: "\(before + 1),\(count)"
        }
    }

    struct Operation {
        enum Kind { case equal, delete, insert }
        var kind: Kind
        /// The line of the old text this is at (for an insert: how many old lines come before).
        var a: Int
        /// The same for the new text.
        var b: Int
    }

    /// The edit script, each change's deletions before its insertions, as diff prints them.
    static func operations(_ a: [[UInt8]], _ b: [[UInt8]]) -> [Operation] {
        var head = 0
        while head < a.count, head < b.count, a[head] == b[head] { head += 1 }
        var tail = 0
        while tail < a.count - head, tail < b.count - head, a[a.count - 1 - tail] == b[b.count - 1 - tail] { tail += 1 }
        let middleA = Array(a[head..<(a.count - tail)])
        let middleB = Array(b[head..<(b.count - tail)])
        let pairs = (matches(middleA, middleB) ?? []).map { ($0.0 + head, $0.1 + head) }
        let matched =
            (0..<head).map { ($0, $0) } + pairs + (0..<tail).map { (a.count - tail + $0, b.count - tail + $0) }

        var operations: [Operation] = []
        var (i, j) = (0, 0)
        for (x, y) in matched + [(a.count, b.count)] {
            while i < x {
                operations.append(Operation(kind: .delete, a: i, b: j))
                i += 1
            }
            while j < y {
                operations.append(Operation(kind: .insert, a: i, b: j))
                j += 1
            }
            if x < a.count {
                operations.append(Operation(kind: .equal, a: i, b: j))
                (i, j) = (i + 1, j + 1)
            }
        }
        return operations
    }

    /// The matched lines of Myers's shortest edit script, in order; nil past `maximumEdits`.
    static func matches(_ a: [[UInt8]], _ b: [[UInt8]]) -> [(Int, Int)]? {
        let (n, m) = (a.count, b.count)
        let limit = min(n + m, maximumEdits)
        let offset = limit + 1
        var v = [Int](repeating: 0, count: 2 * limit + 3)
        // trace[d]: v[k] for k in -(d+1)...(d+1) as round d found it.
        var trace: [[Int]] = []
        for d in 0...limit {
            trace.append(Array(v[(offset - d - 1)...(offset + d + 1)]))
            for k in stride(from: -d, through: d, by: 2) {
                var x =
                    k == -d || (k != d && v[offset + k - 1] < v[offset + k + 1])
                    ? v[offset + k + 1] : v[offset + k - 1] + 1
                var y = x - k
                while x < n, y < m, a[x] == b[y] { (x, y) = (x + 1, y + 1) }
                v[offset + k] = x
                if x >= n, y >= m { return backtrack(trace, d: d, n: n, m: m) }
            }
        }
        return nil
    }

    private static func backtrack(_ trace: [[Int]], d: Int, n: Int, m: Int) -> [(Int, Int)] {
        var pairs: [(Int, Int)] = []
        var (x, y) = (n, m)
        for round in stride(from: d, to: 0, by: -1) {
            let saved = trace[round]
            func v(_ k: Int) -> Int { saved[k + round + 1] }
            let k = x - y
            let previous = k == -round || (k != round && v(k - 1) < v(k + 1)) ? k + 1 : k - 1
            let (px, py) = (v(previous), v(previous) - previous)
            // The snake after the edit, then the edit itself.
            let (sx, sy) = previous == k + 1 ? (px, py + 1) : (px + 1, py)
            while x > sx, y > sy {
                (x, y) = (x - 1, y - 1)
                pairs.append((x, y))
            }
            (x, y) = (px, py)
        }
        while x > 0, y > 0 {
            (x, y) = (x - 1, y - 1)
            pairs.append((x, y))
        }
        return pairs.reversed()
    }

    /// The ranges of `operations` each hunk covers: changes with their context, merged when
    /// no more than twice the context lies between them.
    static func hunks(_ operations: [Operation]) -> [Range<Int>] {
        var hunks: [Range<Int>] = []
        var index = 0
        while index < operations.count {
            guard operations[index].kind != .equal else {
                index += 1
                continue
            }
            let start = max(0, index - context)
            var end = index
            while end < operations.count {
                // The end of this change, then how much equal text follows it.
                while end < operations.count, operations[end].kind != .equal { end += 1 }
                var gap = 0
                while end + gap < operations.count, operations[end + gap].kind == .equal { gap += 1 }
                if end + gap < operations.count, gap <= 2 * context {
                    end += gap
                } else {
                    end = min(operations.count, end + context)
                    break
                }
            }
            hunks.append(start..<end)
            index = end
        }
        return hunks
    }
}
