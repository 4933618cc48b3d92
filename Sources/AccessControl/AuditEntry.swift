/// One record of the audit trail (SPEC M7): the fields of a request's audit line (SPEC O2), or a
/// change made on the box, with the HMAC that chains it to the record before.
public struct AuditEntry: Sendable, Equatable {
    /// Its place in the trail, given when it is stored: 1, 2, 3, ... without gaps.
    public var seq: Int64 = 0
    /// When the answer was ready (or the change made): milliseconds since 1970, UTC.
    public var at: Int64
    /// What it records: a request (`exec` for interactive.lua, `endpoint`, `action`, `admin`,
    /// `metrics`, `console`, `whoami`, `other`), a change made with the command line (`cli`), records that
    /// could not be stored (`gap`), refusals without a token counted together (`refused`), or
    /// what luaexecd found wrong with the trail (`notice`).
    public var kind: String
    public var requestID: String?
    public var client: String?
    /// The token's name, never the token.
    public var token: String?
    /// The scope the request needed (`exec`, `admin`, `endpoint:NAME`, ...).
    public var scope: String?
    public var method: String?
    public var path: String?
    public var status: Int64?
    /// The error kind of the audit line (`syntax`, `auth`, `scope`, `busy`, ...); nil when none.
    public var error: String?
    public var bytesIn: Int64?
    public var bytesOut: Int64?
    public var durationMicros: Int64?
    /// The request body's SHA-256 (all 32 bytes; the log line shows the first 6).
    public var bodySHA256: [UInt8]?
    /// What a change changed (`token create ops scopes=exec`), or what a gap or notice says.
    public var detail: String?
    /// HMAC-SHA-256 over the record before's `mac` and this record's fields.
    public var mac: [UInt8] = []

    public init(
        at: Int64, kind: String, requestID: String? = nil, client: String? = nil, token: String? = nil,
        scope: String? = nil, method: String? = nil, path: String? = nil, status: Int64? = nil, error: String? = nil,
        bytesIn: Int64? = nil, bytesOut: Int64? = nil, durationMicros: Int64? = nil, bodySHA256: [UInt8]? = nil,
        detail: String? = nil
    ) {
        self.at = at
        self.kind = kind
        self.requestID = requestID
        self.client = client
        self.token = token
        self.scope = scope
        self.method = method
        self.path = path
        self.status = status
        self.error = error
        self.bytesIn = bytesIn
        self.bytesOut = bytesOut
        self.durationMicros = durationMicros
        self.bodySHA256 = bodySHA256
        self.detail = detail
    }

    /// How the request ended, as the admin status counts it: `ok`, the error kind, or
    /// `http_NNN` for another status of 400 and above.
    public var outcome: String {
        if let error { return error }
        if let status, status >= 400 { return "http_\(status)" }
        return "ok"
    }

    /// The columns of table `audit` but `mac`, in the order `values` gives them and the MAC
    /// covers them.
    static let columns =
        "seq, at, kind, request_id, client, token, scope, method, path, status, error, bytes_in, bytes_out, "
        + "duration_us, body_sha256, detail"

    /// The stored values, as `columns` names them.
    func values(seq: Int64) -> [SQLiteValue] {
        func text(_ value: String?) -> SQLiteValue { value.map { .text($0) } ?? .null }
        func integer(_ value: Int64?) -> SQLiteValue { value.map { .integer($0) } ?? .null }
        var values: [SQLiteValue] = []
        values.reserveCapacity(17)  // and the MAC, appended by the writer
        values += [
            .integer(seq), .integer(at), .text(kind), text(requestID), text(client), text(token), text(scope),
            text(method), text(path), integer(status), text(error), integer(bytesIn), integer(bytesOut),
            integer(durationMicros), bodySHA256.map { .blob($0) } ?? .null, text(detail),
        ]
        return values
    }

    /// A record read back: `columns`, then `mac`.
    init(row: [SQLiteValue]) {
        at = row[1].integer ?? 0
        kind = row[2].text ?? ""
        seq = row[0].integer ?? 0
        requestID = row[3].text
        client = row[4].text
        token = row[5].text
        scope = row[6].text
        method = row[7].text
        path = row[8].text
        status = row[9].integer
        error = row[10].text
        bytesIn = row[11].integer
        bytesOut = row[12].integer
        durationMicros = row[13].integer
        bodySHA256 = row[14].blob
        detail = row[15].text
        mac = row[16].blob ?? []
    }

    /// What the HMAC covers: a label, the previous record's MAC, and each stored value with its
    /// type and length, so that no two different records (a value moved from one field to the
    /// next, a number stored as text) give the same bytes. The writer makes the same bytes
    /// without the values (`AuditBatch`); the verifier makes them from the stored row.
    static func message(label: String, previous: [UInt8], _ values: some Collection<SQLiteValue>) -> [UInt8] {
        var bytes: [UInt8] = []
        bytes.reserveCapacity(384)
        bytes.append(utf8: label)
        bytes.append(0)
        bytes += previous
        for value in values { AuditBatch.value(value, into: &bytes) }
        return bytes
    }

    static let recordLabel = "luaexec audit record 1"
}
