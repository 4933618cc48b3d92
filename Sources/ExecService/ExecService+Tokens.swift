import AccessControl
import HTTPCore

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

/// Token management over HTTP (SPEC M4), for the web page's Access tab: what `luaexec token`
/// does on the box, with the same rules and messages.
///
///   GET    /api/v1/admin/tokens         {"tokens":[{"name":...,"scopes":[...],"created":...,"expires":...,"last_used":...}]}
///   POST   /api/v1/admin/tokens         {"name":"ops","scopes":["exec"],"expires":"30d"} → 201, the record and "token" once
///   DELETE /api/v1/admin/tokens/<name>
///
/// Two rules the command line does not need: a token cannot give another a scope it does not
/// have itself, and the last admin token cannot be revoked here, since nobody could then reach
/// this API to make another.
extension ExecService {
    func tokenListing() -> Response {
        do {
            let records = try authenticator.store.list()
            return Self.json(200, "{\"tokens\":[" + records.map(\.json).joined(separator: ",") + "]}")
        } catch {
            return Self.storeFailure(error)
        }
    }

    func createToken(_ call: Call, audit: inout AuditRecord) -> Response {
        let body: [UInt8]
        switch wholeBody(call.body, json: true) {
        case .refused(let refusal): return refusal
        case .read(let bytes): body = bytes
        }
        audit.body = body
        do {
            return try createToken(body, maker: call.identity, audit: &audit)
        } catch {
            return Self.storeFailure(error)
        }
    }

    func revokeToken(_ call: Call, audit: inout AuditRecord) -> Response {
        do {
            return try revokeToken(call.rest, by: call.identity, audit: &audit)
        } catch {
            return Self.storeFailure(error)
        }
    }

    private struct NewToken: Decodable {
        var name: String
        var scopes: [String]?
        var expires: String?
    }

    private func createToken(_ body: [UInt8], maker: TokenIdentity, audit: inout AuditRecord) throws(StoreError)
        -> Response
    {
        guard let request = try? JSONDecoder().decode(NewToken.self, from: Data(body)) else {
            return Self.plain(
                400,
                "send {\"name\": \"ops\", \"scopes\": [\"exec\"], \"expires\": \"30d\"} (scopes and expires may be left out)\n",
                json: true)
        }
        var scopes: Set<Scope> = []
        for text in request.scopes ?? ["exec"] {
            guard let scope = Scope(rawValue: text) else {
                return Self.plain(400, "unknown scope '\(text)': use \(Scope.syntax)\n", json: true)
            }
            guard maker.permits(scope) else {
                return Self.plain(
                    403, "your token lacks the scope '\(text)', so it cannot give it to another\n", json: true)
            }
            scopes.insert(scope)
        }
        var expiresAt: Date?
        if let expires = request.expires {
            guard let lifetime = TokenLifetime(expires) else {
                return Self.plain(400, "expires: expected \(TokenLifetime.syntax), got '\(expires)'\n", json: true)
            }
            expiresAt = Date().addingTimeInterval(lifetime.seconds)
        }
        let (secret, record) = try authenticator.store.create(name: request.name, scopes: scopes, expiresAt: expiresAt)
        audit.detail = TokenRecord.changeDetail(created: record)
        // Our own connection made the change, which `data_version` does not count: reload now,
        // so that the token works the moment this answer arrives (SPEC T7).
        try authenticator.refresh(force: true)
        logger.notice(
            "token created",
            metadata: [
                "name": "\(record.name)", "scopes": "\(scopes.sorted().map(\.rawValue).joined(separator: ","))",
                "by": "\(maker.name)",
            ])
        return Self.json(201, String(record.json.dropLast()) + ",\"token\":\"" + secret + "\"}")
    }

    private func revokeToken(_ name: String, by revoker: TokenIdentity, audit: inout AuditRecord) throws(StoreError)
        -> Response
    {
        let records = try authenticator.store.list()
        guard let target = records.first(where: { $0.name == name }) else {
            return Self.plain(404, "no token named '\(name)'\n", json: true)
        }
        let now = Date()
        let otherAdmins = records.filter { $0.name != name && $0.scopes.contains(.admin) && !$0.isExpired(at: now) }
        if target.scopes.contains(.admin) && otherAdmins.isEmpty {
            return Self.plain(
                409,
                "'\(name)' is the last admin token: revoking it here would leave nobody able to use this API. "
                    + "Make another admin token first, or revoke it on the box with luaexec token revoke.\n",
                json: true)
        }
        try authenticator.store.revoke(name: name)
        audit.detail = TokenRecord.changeDetail(revoked: name)
        try authenticator.refresh(force: true)
        logger.notice("token revoked", metadata: ["name": "\(name)", "by": "\(revoker.name)"])
        return Self.json(200, "{\"revoked\":\"\(name)\"}")
    }

    /// 400 for a name or scopes that cannot be stored, 409 for a taken name, 404 for a missing
    /// one, 500 when the database failed.
    static func storeFailure(_ error: StoreError) -> Response {
        let status: Int
        switch error.kind {
        case .invalid: status = 400
        case .duplicate: status = 409
        case .notFound: status = 404
        case .database: status = 500
        }
        return plain(status, error.description + "\n", json: true)
    }
}
