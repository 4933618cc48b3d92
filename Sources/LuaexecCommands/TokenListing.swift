import AccessControl
import SystemSupport

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// `luaexec token list`: what each token is, never its secret.
enum TokenListing {
    static func table(_ records: [TokenRecord]) -> String {
        let header = ["NAME", "SCOPES", "CREATED", "EXPIRES", "LAST USED"]
        let rows = records.map { record in
            [
                record.name, scopes(record), date(record.createdAt), record.expiresAt.map(date) ?? "never",
                record.lastUsedAt.map(date) ?? "never",
            ]
        }
        return TextTable.render([header] + rows)
    }

    static func json(_ records: [TokenRecord]) -> String {
        "[" + records.map(\.json).joined(separator: ",") + "]"
    }

    static func scopes(_ record: TokenRecord) -> String {
        record.scopes.sorted().map(\.rawValue).joined(separator: ",")
    }

    static func date(_ date: Date) -> String { UTCTime.iso8601(secondsSince1970: date.timeIntervalSince1970) }
}

/// Columns aligned with two spaces between them, one line per row.
///
/// Cells hold what clients and scripts wrote (an audit record's path, a config value, an
/// endpoint's name): each is written by the log's rule (`LogLine`), control characters and bytes
/// that are not UTF-8 as `\xHH`, so that no cell can move the cursor, rewrite a row above it,
/// set the terminal's title or forge a row of its own.
enum TextTable {
    static func render(_ rows: [[String]]) -> String {
        let rows = rows.map { $0.map(printable) }
        let columns = rows.map(\.count).max() ?? 0
        let widths = (0..<columns).map { column in rows.map { column < $0.count ? $0[column].count : 0 }.max() ?? 0 }
        var text = ""
        for row in rows {
            for (index, cell) in row.enumerated() {
                text += cell
                if index < row.count - 1 { text += String(repeating: " ", count: widths[index] + 2 - cell.count) }
            }
            text += "\n"
        }
        return text
    }

    /// `text` as a terminal shows it safely: control characters escaped, the rest as it is.
    static func printable(_ text: String) -> String {
        // Plain text (nearly every cell) is returned as it is.
        guard text.utf8.contains(where: { $0 < 0x20 || $0 >= 0x7F }) else { return text }
        return String(decoding: LogLine.bytes { $0.text(text) }, as: UTF8.self)
    }
}
