import SystemSupport

/// The outcome of authenticating a request: an expected value, not an error.
public enum AuthDecision: Sendable, Equatable {
    case allow(TokenIdentity)
    case deny(AuthFailure)
}

/// Who a request is, once its token checked out. Never holds the secret.
public struct TokenIdentity: Sendable, Equatable {
    public var name: String
    public var scopes: Set<Scope>

    public init(name: String, scopes: Set<Scope>) {
        self.name = name
        self.scopes = scopes
    }

    /// Whether this token may act where `needed` is required (`exec` covers every endpoint and
    /// action; a narrow scope covers only itself).
    public func permits(_ needed: Scope) -> Bool {
        scopes.contains { $0.covers(needed) }
    }
}

/// Why a request was refused, in RFC 6750's terms.
public enum AuthFailure: Error, Sendable, Equatable {
    /// No credentials at all: 401 without an error code.
    case missingCredentials
    /// Credentials in both places, or a malformed header: 400 `invalid_request`.
    case invalidRequest(String)
    /// Unknown, revoked, expired or malformed token: 401 `invalid_token`.
    case invalidToken
    /// The token lacks the scope: 403 `insufficient_scope`.
    case insufficientScope(Scope)
}

/// Finds the bearer token of a request (RFC 6750 §2.1 header, §2.3 query parameter).
public enum BearerCredentials {
    /// - Parameters:
    ///   - authorization: the `Authorization` header, if any.
    ///   - queryTokens: every `AuthToken` query parameter value, already percent-decoded.
    /// - Returns: the token, nil when there are no credentials, or why they are malformed.
    public static func extract(authorization: String?, queryTokens: [String]) -> Result<String?, AuthFailure> {
        if queryTokens.count > 1 {
            return .failure(.invalidRequest("more than one AuthToken query parameter"))
        }
        guard let authorization else {
            guard let token = queryTokens.first else { return .success(nil) }
            guard !token.isEmpty else { return .failure(.invalidRequest("the AuthToken query parameter is empty")) }
            return .success(token)
        }
        guard queryTokens.isEmpty else {
            return .failure(.invalidRequest("a token was sent both in the Authorization header and in the query"))
        }
        return withUTF8Bytes(of: authorization) { bytes in
            token(inAuthorization: bytes).map { .some(String(decoding: UnsafeBufferPointer(rebasing: bytes[$0]), as: UTF8.self)) }
        }
    }

    /// Where the token lies in an `Authorization` header's bytes: credentials = "Bearer" 1*SP
    /// b64token. Every request passes here, on the bytes nginx sent; index loops, not slice
    /// operations (a third of the cost).
    public static func token(inAuthorization bytes: UnsafeBufferPointer<UInt8>) -> Result<Range<Int>, AuthFailure> {
        var index = 0
        while index < bytes.count, bytes[index] != UInt8(ascii: " ") { index += 1 }
        // The scheme, ASCII case-insensitive: `| 0x20` lower-cases letters, and "bearer" has no
        // other byte.
        let bearer: StaticString = "bearer"
        guard index == bearer.utf8CodeUnitCount,
            (0..<index).allSatisfy({ bytes[$0] | 0x20 == bearer.utf8Start[$0] })
        else {
            return .failure(.invalidRequest("the Authorization header must use the Bearer scheme"))
        }
        while index < bytes.count, bytes[index] == UInt8(ascii: " ") { index += 1 }
        var valid = index < bytes.count
        for byte in UnsafeBufferPointer(rebasing: bytes[index...]) where !isB64TokenCharacter(byte) { valid = false }
        guard valid else {
            return .failure(.invalidRequest("the Authorization header must be 'Bearer <token>'"))
        }
        return .success(index..<bytes.count)
    }

    // b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
    static func isB64TokenCharacter(_ byte: UInt8) -> Bool {
        // A bit per byte value, 0-63 and 64-127 (none above): every request's token is read
        // here, and a test per byte, rather than a `switch` and a base62 decoding, is ~5
        // instructions a byte instead of ~20.
        let word = byte < 64 ? b64Low : byte < 128 ? b64High : 0
        return (word >> UInt64(byte & 63)) & 1 == 1
    }

    /// Bit n of `b64Low` is byte n's, of `b64High` byte 64 + n's: the characters above
    /// (BearerCredentialsTests checks both against them).
    static let b64Low: UInt64 = 0x23ff_e800_0000_0000
    static let b64High: UInt64 = 0x47ff_fffe_87ff_fffe
}
