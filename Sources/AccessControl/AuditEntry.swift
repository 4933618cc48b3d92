/// One record of the audit trail (SPEC M7): the fields of a request's audit line (SPEC O2), or a
/// change made on the box, with the HMAC that chains it to the record before.
public struct AuditEntry: Sendable, Equatable {
    /// Its place in the trail, given when it is stored: 1, 2, 3, ... without gaps.
    public var seq: Int64 = 0
    /// When the answer was ready (or the change made): milliseconds since 1970, UTC.
    public var at: Int64
    /// What it records: a request (`exec` for interactive.lua, `endpoint`, `action`, `admin`,
    /// `metrics`, `whoami`, `other`), a change made with the command line (`cli`), records that
    /// could not be stored (`gap`), or what luaexecd found wrong with the trail (`notice`).
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
    /// next, a number stored as text) give the same bytes.
    static func message(label: String, previous: [UInt8], _ values: some Collection<SQLiteValue>) -> [UInt8] {
        var bytes: [UInt8] = []
        message(label: label, previous: previous, values, into: &bytes)
        return bytes
    }

    /// `message` into `bytes`, which it empties first: the writer keeps one buffer for a batch.
    static func message(
        label: String, previous: [UInt8], _ values: some Collection<SQLiteValue>, into bytes: inout [UInt8]
    ) {
        bytes.removeAll(keepingCapacity: true)
        bytes.reserveCapacity(384)
        bytes += label.utf8
        bytes.append(0)
        bytes += previous
        func length(_ count: Int) {
            for shift in stride(from: 24, through: 0, by: -8) {
                bytes.append(UInt8(truncatingIfNeeded: count >> shift))
            }
        }
        for value in values {
            switch value {
            case .null:
                bytes.append(0)
            case .text(let text):
                bytes.append(1)
                length(text.utf8.count)
                bytes.append(utf8: text)
            case .integer(let number):
                bytes.append(2)
                for shift in stride(from: 56, through: 0, by: -8) {
                    bytes.append(UInt8(truncatingIfNeeded: number >> shift))
                }
            case .blob(let blob):
                bytes.append(3)
                length(blob.count)
                bytes += blob
            }
        }
    }

    static let recordLabel = "luaexec audit record 1"

    /// One column of a record as `encode` wrote it: its number, or where its bytes lie in the
    /// message, or nothing.
    struct EncodedColumn {
        enum Kind { case null, integer, text, blob }
        var kind: Kind
        var integer: Int64 = 0
        var offset = 0
        var count = 0
    }

    /// The MAC's message for this record with `seq` (the bytes `message(label:previous:_:)`
    /// makes of `values(seq:)`), written straight from the fields into `bytes`, and where each
    /// column lies in it: the writer binds the INSERT's values from the message itself. Every
    /// request's record passes here on the audit writer's thread, and going through an array of
    /// `SQLiteValue`s (walked for the MAC, then twice to bind) was a third of that thread's time
    /// in reference counting (bench/NOTES.md).
    func encode(seq: Int64, label: String, previous: [UInt8], into bytes: inout [UInt8], columns: inout [EncodedColumn]) {
        bytes.removeAll(keepingCapacity: true)
        bytes.reserveCapacity(384)
        columns.removeAll(keepingCapacity: true)
        bytes.append(utf8: label)
        bytes.append(0)
        bytes += previous
        func length(_ count: Int) {
            for shift in stride(from: 24, through: 0, by: -8) {
                bytes.append(UInt8(truncatingIfNeeded: count >> shift))
            }
        }
        func integer(_ value: Int64?) {
            guard let value else {
                bytes.append(0)
                return columns.append(EncodedColumn(kind: .null))
            }
            bytes.append(2)
            for shift in stride(from: 56, through: 0, by: -8) {
                bytes.append(UInt8(truncatingIfNeeded: value >> shift))
            }
            columns.append(EncodedColumn(kind: .integer, integer: value))
        }
        func text(_ value: String?) {
            guard let value else {
                bytes.append(0)
                return columns.append(EncodedColumn(kind: .null))
            }
            bytes.append(1)
            length(value.utf8.count)
            let start = bytes.count
            bytes.append(utf8: value)
            columns.append(EncodedColumn(kind: .text, offset: start, count: bytes.count - start))
        }
        integer(seq)
        integer(at)
        text(kind)
        text(requestID)
        text(client)
        text(token)
        text(scope)
        text(method)
        text(path)
        integer(status)
        text(error)
        integer(bytesIn)
        integer(bytesOut)
        integer(durationMicros)
        if let blob = bodySHA256 {
            bytes.append(3)
            length(blob.count)
            let start = bytes.count
            bytes += blob
            columns.append(EncodedColumn(kind: .blob, offset: start, count: blob.count))
        } else {
            bytes.append(0)
            columns.append(EncodedColumn(kind: .null))
        }
        text(detail)
    }
}
