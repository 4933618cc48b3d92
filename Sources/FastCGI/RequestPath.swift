/// The path luaexecd routes on, derived from the CGI variables that any web server sends
/// (docs/servers.md, "The request path").
///
/// Which variable, first found wins:
/// 1. `DOCUMENT_URI` (nginx's `$document_uri`, as the shipped site sends it): decoded and
///    normalised by nginx.
/// 2. `SCRIPT_NAME` + `PATH_INFO` (RFC 3875 §4.1.13 and §4.1.5; lighttpd and Apache httpd send
///    these): decoded by the server. `PATH_INFO` without `SCRIPT_NAME` is refused.
/// 3. The path of `REQUEST_URI` (the request target as the client sent it): decoded and
///    normalised here exactly as nginx does (below).
///
/// `PATH_TRANSLATED` and `SCRIPT_FILENAME` are never read: they name files, not URLs.
///
/// The server routed the request on the path it decoded; luaexecd must route on the same one, or
/// a crafted URL could pass the server's location for one API and reach another. So a decoded
/// variable is never decoded again (a `%2F` the server kept as text stays the three bytes
/// `%2F`), and a `.` or `..` segment in one is refused rather than resolved here: a server that
/// left it there routed on the unresolved path. Runs of slashes are merged, as nginx's
/// `merge_slashes` does; a merge never moves a path out of its parent.
enum RequestPath {
    /// Longer paths are refused: no route is near it, and a server's own limit is usually 8 KiB.
    static let maxLength = 4096

    /// The path, or a message for a 400 naming what is wrong.
    enum Derived: Equatable {
        case path(String)
        case refused(String)
    }

    static func derive(
        documentURI: ArraySlice<UInt8>?, scriptName: ArraySlice<UInt8>?, pathInfo: ArraySlice<UInt8>?,
        requestURI: ArraySlice<UInt8>?
    ) -> Derived {
        if let documentURI {
            return decoded(documentURI, from: "DOCUMENT_URI")
        }
        if let scriptName {
            return decoded(
                scriptName + (pathInfo ?? []), from: pathInfo == nil ? "SCRIPT_NAME" : "SCRIPT_NAME + PATH_INFO")
        }
        if pathInfo != nil {
            return .refused(
                "the web server sent PATH_INFO without SCRIPT_NAME: the request path is SCRIPT_NAME + PATH_INFO (RFC 3875)"
            )
        }
        if let requestURI {
            let path = requestURI.firstIndex(of: UInt8(ascii: "?")).map { requestURI[..<$0] } ?? requestURI
            return raw(path)
        }
        return .refused("the web server sent no request path: none of DOCUMENT_URI, SCRIPT_NAME, REQUEST_URI")
    }

    /// A path the server decoded: checked, slashes merged, nothing decoded or resolved.
    static func decoded(_ bytes: ArraySlice<UInt8>, from name: String) -> Derived {
        if let refusal = refuseLength(bytes.count, of: name) { return refusal }
        guard bytes.first == slash else { return .refused("the request path (\(name)) does not start with '/'") }
        // Nearly every request (nginx's, always) is already in shape: one pass, no copy, over
        // the bytes where they lie (an index into the slice checks its bounds at every byte).
        var clean = true
        var refusal: Derived?
        bytes.withUnsafeBufferPointer { buffer in
            var previous: UInt8 = 0
            for offset in buffer.indices {
                let byte = buffer[offset]
                if byte == 0 {
                    refusal = .refused("the request path (\(name)) contains a NUL byte")
                    return
                }
                if previous == slash && (byte == slash || byte == dot) {
                    clean = false
                    if byte == dot && isDotSegment(bytes[(bytes.startIndex + offset)...]) {
                        refusal = .refused(
                            "the request path (\(name)) has a '.' or '..' segment the web server did not resolve; "
                                + "luaexecd routes only on the path the server routed on")
                        return
                    }
                }
                previous = byte
            }
        }
        if let refusal { return refusal }
        if clean { return .path(String(decoding: bytes, as: UTF8.self)) }
        var merged: [UInt8] = []
        merged.reserveCapacity(bytes.count)
        for byte in bytes where !(byte == slash && merged.last == slash) { merged.append(byte) }
        return .path(String(decoding: merged, as: UTF8.self))
    }

    /// The path of a request target as the client sent it, made what nginx makes of it
    /// (`$document_uri`): percent-decoded, and every decoded byte then read as if it had been
    /// sent as is (so `%2F` separates segments and `%2e%2e` is `..`), `.` and `..` segments
    /// resolved, runs of slashes merged. As nginx: a malformed `%`, a NUL, or a `..` above the
    /// root is refused.
    static func raw(_ bytes: ArraySlice<UInt8>) -> Derived {
        if let refusal = refuseLength(bytes.count, of: "REQUEST_URI") { return refusal }
        var decoded: [UInt8] = []
        decoded.reserveCapacity(bytes.count)
        var index = bytes.startIndex
        while index < bytes.endIndex {
            let byte = bytes[index]
            guard byte == UInt8(ascii: "%") else {
                decoded.append(byte)
                index += 1
                continue
            }
            guard bytes.endIndex - index >= 3, let high = hexValue(bytes[index + 1]),
                let low = hexValue(bytes[index + 2])
            else { return .refused("the request path (REQUEST_URI) has a '%' not followed by two hex digits") }
            decoded.append(high << 4 | low)
            index += 3
        }
        guard decoded.first == slash else { return .refused("the request path (REQUEST_URI) does not start with '/'") }
        if decoded.contains(0) { return .refused("the request path (REQUEST_URI) contains a NUL byte") }
        // Segments onto a stack: `out` is "/a/b" (or "/" alone); a path ending in "/", "/." or
        // "/.." keeps a final slash, as nginx's does.
        var out: [UInt8] = [slash]
        var trailingSlash = false
        for segment in decoded.split(separator: slash, omittingEmptySubsequences: false).dropFirst() {
            trailingSlash = segment.isEmpty || segment.elementsEqual([dot]) || segment.elementsEqual([dot, dot])
            if segment.isEmpty || segment.elementsEqual([dot]) { continue }
            if segment.elementsEqual([dot, dot]) {
                guard out.count > 1 else {
                    return .refused("the request path (REQUEST_URI) goes above the root with '..'")
                }
                out.removeSubrange(out.lastIndex(of: slash)!...)
                if out.isEmpty { out = [slash] }
                continue
            }
            if out.count > 1 { out.append(slash) }
            out.append(contentsOf: segment)
        }
        if trailingSlash && out.count > 1 { out.append(slash) }
        return .path(String(decoding: out, as: UTF8.self))
    }

    private static let slash = UInt8(ascii: "/")
    private static let dot = UInt8(ascii: ".")

    private static func refuseLength(_ count: Int, of name: String) -> Derived? {
        count > maxLength ? .refused("the request path (\(name)) is longer than \(maxLength) bytes") : nil
    }

    /// Whether `rest` (which follows a slash) starts with the segment `.` or `..`.
    private static func isDotSegment(_ rest: ArraySlice<UInt8>) -> Bool {
        var index = rest.startIndex
        if index < rest.endIndex && rest[index] == dot { index += 1 } else { return false }
        if index < rest.endIndex && rest[index] == dot { index += 1 }
        return index == rest.endIndex || rest[index] == slash
    }

    private static func hexValue(_ byte: UInt8) -> UInt8? {
        switch byte {
        case UInt8(ascii: "0")...UInt8(ascii: "9"): byte - UInt8(ascii: "0")
        case UInt8(ascii: "a")...UInt8(ascii: "f"): byte - UInt8(ascii: "a") + 10
        case UInt8(ascii: "A")...UInt8(ascii: "F"): byte - UInt8(ascii: "A") + 10
        default: nil
        }
    }
}
