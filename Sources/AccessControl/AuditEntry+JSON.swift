import SystemSupport

#if canImport(Glibc)
    import Glibc
#endif

extension AuditEntry {
    /// `{"seq":N,"at":"2026-12-01T12:00:00.123Z","kind":...,"request_id":...,"client":...,
    /// "token":...,"scope":...,"method":...,"path":...,"status":N,"error":...,"in":N,"out":N,
    /// "ms":1.234,"body_sha256":"<64 hex>","detail":...}`, absent values as null: as
    /// `GET /api/v1/admin/audit` and `luaexec audit --json` show a record. Never a token, never a
    /// body.
    public var json: String {
        var out = "{\"seq\":\(seq),\"at\":\"\(Self.iso8601(milliseconds: at))\",\"kind\":" + Self.quoted(kind)
        func field(_ name: String, _ value: String?) { out += ",\"\(name)\":" + (value.map(Self.quoted) ?? "null") }
        func field(_ name: String, _ value: Int64?) { out += ",\"\(name)\":" + (value.map { "\($0)" } ?? "null") }
        field("request_id", requestID)
        field("client", client)
        field("token", token)
        field("scope", scope)
        field("method", method)
        field("path", path)
        field("status", status)
        field("error", error)
        field("in", bytesIn)
        field("out", bytesOut)
        out += ",\"ms\":" + (durationMicros.map(Self.milliseconds) ?? "null")
        field("body_sha256", bodySHA256.map(AuditKey.hex))
        field("detail", detail)
        return out + "}"
    }

    /// `1.234` for 1234 µs.
    public static func milliseconds(_ micros: Int64) -> String {
        let sign = micros < 0 ? "-" : ""
        let magnitude = micros.magnitude
        let fraction = String(magnitude % 1000)
        return sign + "\(magnitude / 1000)." + String(repeating: "0", count: 3 - fraction.count) + fraction
    }

    /// `2026-12-01T12:00:00.123Z`.
    public static func iso8601(milliseconds: Int64) -> String {
        let seconds = milliseconds >= 0 ? milliseconds / 1000 : (milliseconds - 999) / 1000
        let fraction = String(milliseconds - seconds * 1000)
        return String(UTCTime.iso8601(secondsSince1970: Double(seconds)).dropLast())
            + "." + String(repeating: "0", count: 3 - fraction.count) + fraction + "Z"
    }

    /// A JSON string: `"`, `\` and control characters escaped.
    static func quoted(_ text: String) -> String {
        var out = "\""
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20 || scalar.value == 0x7F:
                let hex = String(scalar.value, radix: 16)
                out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }
}

extension AuditTrail.Filter {
    /// An instant as a filter takes it: `2026-12-01`, `2026-12-01T12:00`, `2026-12-01T12:00:00Z`
    /// (UTC; a fraction of a second is allowed), or a time ago: `90s`, `30m`, `12h`, `7d`.
    /// Milliseconds since 1970; nil when `text` is none of these.
    public static func instant(_ text: String, now: Int64) -> Int64? {
        if let ago = TokenLifetime(text) { return now - Int64(ago.seconds * 1000) }
        var rest = Substring(text)
        if rest.hasSuffix("Z") { rest = rest.dropLast() }
        let parts = rest.split(separator: "T", maxSplits: 1, omittingEmptySubsequences: false)
        let date = parts[0].split(separator: "-", omittingEmptySubsequences: false)
        guard date.count == 3, date[0].count == 4, date[1].count == 2, date[2].count == 2,
            let year = Int32(date[0]), let month = Int32(date[1]), let day = Int32(date[2]),
            (1...12).contains(month), (1...31).contains(day)
        else { return nil }
        var hour: Int32 = 0
        var minute: Int32 = 0
        var second: Int32 = 0
        var millis: Int64 = 0
        if parts.count == 2 {
            let time = parts[1].split(separator: ":", omittingEmptySubsequences: false)
            guard (2...3).contains(time.count), time[0].count == 2, time[1].count == 2,
                let h = Int32(time[0]), let m = Int32(time[1]), h < 24, m < 60
            else { return nil }
            hour = h
            minute = m
            if time.count == 3 {
                let fields = time[2].split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
                guard fields[0].count == 2, let s = Int32(fields[0]), s < 61 else { return nil }
                second = s
                if fields.count == 2 {
                    let digits = fields[1].prefix(3)
                    guard !fields[1].isEmpty, fields[1].allSatisfy(\.isNumber), let value = Int64(digits) else {
                        return nil
                    }
                    millis = value * Int64([100, 10, 1][digits.count - 1])
                }
            }
        }
        var calendar = tm()
        calendar.tm_year = year - 1900
        calendar.tm_mon = month - 1
        calendar.tm_mday = day
        calendar.tm_hour = hour
        calendar.tm_min = minute
        calendar.tm_sec = second
        return Int64(timegm(&calendar)) * 1000 + millis
    }
}

extension AuditTrail.Verification {
    public var outcomeName: String {
        switch outcome {
        case .intact: "intact"
        case .broken: "broken"
        case .uncheckable: "uncheckable"
        }
    }

    /// What `luaexec audit verify` prints: a first line that says it all, then where the chain
    /// breaks, one line each, and the gaps luaexecd recorded.
    public var text: String {
        var range = records == 0 ? "no records" : "\(records) records"
        if let first, let last { range += first == last ? " (\(first))" : " (\(first) to \(last))" }
        if pruned > 0 { range += ", \(pruned) pruned before them" }
        var lines: [String]
        switch outcome {
        case .intact: lines = ["audit trail intact: \(range)"]
        case .broken: lines = ["audit trail BROKEN: \(range); where it breaks:"]
        case .uncheckable: lines = ["audit trail not checked:"]
        }
        lines += problems.map { "  " + $0 }
        if moreProblems > 0 { lines.append("  ... and \(moreProblems) more") }
        if !gaps.isEmpty {
            lines.append("records luaexecd could not store (known losses, not breaks):")
            lines += gaps.map { "  " + $0 }
        }
        return lines.joined(separator: "\n") + "\n"
    }

    /// `{"outcome":"intact"|"broken"|"uncheckable","records":N,"first":N|null,"last":N|null,
    /// "pruned":N,"problems":[...],"more_problems":N,"gaps":[...]}`.
    public var json: String {
        "{\"outcome\":\"\(outcomeName)\",\"records\":\(records),\"first\":\(first.map { "\($0)" } ?? "null")"
            + ",\"last\":\(last.map { "\($0)" } ?? "null"),\"pruned\":\(pruned),\"problems\":["
            + problems.map(AuditEntry.quoted).joined(separator: ",") + "],\"more_problems\":\(moreProblems),\"gaps\":["
            + gaps.map(AuditEntry.quoted).joined(separator: ",") + "]}"
    }
}
