import HTTPCore
/// What luaexecd's answers may make a browser or the web server in front do.
///
/// The web console is served from the same origin as every endpoint, and keeps its token in
/// that origin's `sessionStorage`; a handler is Lua that any `exec` token can install. So no
/// answer of luaexecd may run script in that origin, and no handler may set a header that a web
/// server acts on (nginx's `X-Accel-Redirect` reaches internal locations with the caller's
/// credentials) or that changes the origin for the browser (a cookie, HSTS, a service worker's
/// scope, wiped storage, reports sent elsewhere). luaexecd enforces both itself, so that they
/// hold behind any web server (docs/endpoints.md, "What a handler may set"; README, security).
enum HeaderPolicy {
    /// On every answer luaexecd writes. `sandbox` gives a document an opaque origin with scripts,
    /// forms, popups and storage off, whatever its type (HTML, SVG, XML with a stylesheet);
    /// `default-src 'none'` loads nothing; `nosniff` stops a browser from reading a body as a
    /// type it was not given; `no-referrer` keeps a URL with `?AuthToken=` out of Referer.
    /// As the lines go on the wire (`Response.fixedLines`).
    static let securityLines: StaticString = """
        Content-Security-Policy: sandbox; default-src 'none'; base-uri 'none'; form-action 'none'; \
        frame-ancestors 'none'\r
        X-Content-Type-Options: nosniff\r
        Referrer-Policy: no-referrer\r

        """

    /// Why a handler may not send the header `name: value`, or nil when it may. The value has
    /// been checked for line breaks already.
    static func refusal(name: String, value: String) -> String? {
        let lower = name.lowercased()
        if ownHeaders.contains(lower) { return "set the header '\(name)', which luaexec sets itself" }
        if lower == "location" {
            return isAbsoluteWebURL(value)
                ? nil : "set the header 'Location' to '\(value)', not an absolute http:// or https:// URL"
        }
        if handlerHeaders.contains(lower) { return nil }
        if lower.hasPrefix("x-"), !serverHeaderPrefixes.contains(where: { lower.hasPrefix($0) }) { return nil }
        return "set the header '\(name)', which a handler may not set "
            + "(web servers and browsers act on it; docs/endpoints.md lists what a handler may set)"
    }

    /// Set by luaexec on every answer, or by the transport.
    private static let ownHeaders: Set<String> = [
        "status", "content-length", "server-timing", "x-lua-error", "content-security-policy",
        "content-security-policy-report-only", "x-content-type-options", "referrer-policy",
    ]

    /// What a handler may set besides `Location` and extension headers: the representation, its
    /// caching and validators, and CORS without credentials. Nothing here reaches beyond the
    /// answer it is on.
    private static let handlerHeaders: Set<String> = [
        "content-type", "content-disposition", "content-language", "content-encoding",
        "cache-control", "expires", "etag", "last-modified", "vary", "retry-after", "allow",
        "access-control-allow-origin", "access-control-allow-methods", "access-control-allow-headers",
        "access-control-expose-headers", "access-control-max-age",
    ]

    /// `X-` names a web server or a browser acts on: nginx's internal redirects and limits,
    /// lighttpd's and Apache's file sending, h2o's and Perlbal's reproxying, and the security
    /// headers the site sets.
    private static let serverHeaderPrefixes = [
        "x-accel-", "x-sendfile", "x-lighttpd-", "x-reproxy", "x-lua-", "x-frame-options", "x-xss-protection",
        "x-permitted-cross-domain-policies", "x-dns-prefetch-control", "x-download-options",
    ]

    /// `http://` or `https://` and a host: never a path, which a CGI server (Apache, lighttpd)
    /// follows as a local redirect inside itself (RFC 3875 §6.2.2), nor `//host`, `javascript:`
    /// or `data:`.
    private static func isAbsoluteWebURL(_ value: String) -> Bool {
        let lower = value.lowercased()
        for scheme in ["http://", "https://"] where lower.hasPrefix(scheme) {
            let rest = lower.utf8.dropFirst(scheme.utf8.count)
            return rest.first.map { $0 != UInt8(ascii: "/") } ?? false
        }
        return false
    }
}
