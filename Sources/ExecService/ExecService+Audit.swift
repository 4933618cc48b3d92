import AccessControl
import HTTPCore

/// The audit trail for the admin API and the page (SPEC M7), scope `admin`:
///
///   GET /api/v1/admin/audit?since=&until=&token=&kind=&status=&outcome=&before=&limit=
///       {"records":[...newest first...],"more":true|false}
///   GET /api/v1/admin/audit/verify
///       {"outcome":"intact"|"broken"|"uncheckable","records":N,...,"problems":[...]}
///
/// `since` and `until` take `2026-12-01`, `2026-12-01T12:00:00Z` or a time ago (`30m`, `7d`);
/// `outcome` is `ok`, `error` or an error kind; `before` a `seq`, for the next page; `limit`
/// 1 to 1000 (100). An empty value filters nothing.
extension ExecService {
    func auditRecords(_ head: RequestHead) -> Response {
        guard let writer = auditWriter else { return Self.plain(404, "no audit trail in the database\n", json: true) }
        let filter: AuditTrail.Filter
        switch Self.auditFilter(head.query, now: AuditWriter.now()) {
        case .success(let parsed): filter = parsed
        case .failure(let problem): return Self.plain(400, problem.message + "\n", json: true)
        }
        do {
            let (entries, more) = try writer.trail.records(filter)
            return Self.json(200, "{\"records\":[" + entries.map(\.json).joined(separator: ",") + "],\"more\":\(more)}")
        } catch {
            return Self.storeFailure(error)
        }
    }

    func auditVerification() -> Response {
        guard let writer = auditWriter else { return Self.plain(404, "no audit trail in the database\n", json: true) }
        do {
            return Self.json(200, try writer.trail.verify(key: writer.key).json)
        } catch {
            return Self.storeFailure(error)
        }
    }

    struct FilterProblem: Error {
        var message: String
    }

    /// The filter a query string asks for; a parameter it does not know or cannot read is a 400
    /// naming it, so that a typo never widens what is shown.
    static func auditFilter(_ query: String, now: Int64) -> Result<AuditTrail.Filter, FilterProblem> {
        var filter = AuditTrail.Filter()
        for pair in QueryString.pairs(in: query) {
            let value = String(decoding: pair.value, as: UTF8.self)
            // An empty field of a form means no filter on it.
            if value.isEmpty { continue }
            func instant() -> Int64? { AuditTrail.Filter.instant(value, now: now) }
            switch pair.name {
            case "since", "until":
                guard let instant = instant() else {
                    return .failure(
                        FilterProblem(
                            message:
                                "\(pair.name): expected 2026-12-01, 2026-12-01T12:00:00Z or 30m, 7d; got '\(value)'"))
                }
                if pair.name == "since" { filter.since = instant } else { filter.until = instant }
            case "AuthToken": continue  // the credentials (SPEC T1), not a filter
            case "token": filter.token = value
            case "kind": filter.kind = value
            case "outcome": filter.outcome = value
            case "status", "before", "limit":
                guard let number = Int64(value), number >= 0 else {
                    return .failure(FilterProblem(message: "\(pair.name): expected a whole number, got '\(value)'"))
                }
                switch pair.name {
                case "status": filter.status = number
                case "before": filter.before = number
                default:
                    guard (1...1000).contains(number) else {
                        return .failure(FilterProblem(message: "limit: expected 1 to 1000, got \(number)"))
                    }
                    filter.limit = Int(number)
                }
            default:
                return .failure(
                    FilterProblem(
                        message:
                            "unknown parameter '\(pair.name)' (known: since, until, token, kind, status, outcome, before, limit)"
                    ))
            }
        }
        return .success(filter)
    }
}
