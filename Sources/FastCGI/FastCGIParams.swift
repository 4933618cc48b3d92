import CFastCGI
import ExecService

#if canImport(Glibc)
import Glibc
#endif

/// The CGI variables of one FastCGI request (libfcgi's `envp`: `NAME=value` C strings, ending in
/// NULL), and the `RequestHead` luaexecd builds from them.
public struct FastCGIParams {
    let envp: FCGX_ParamArray?

    /// `envp` must stay valid while this value is used.
    public init(_ envp: FCGX_ParamArray?) { self.envp = envp }

    public func value(_ name: String) -> String? {
        guard let value = FCGX_GetParam(name, envp) else { return nil }
        return String(cString: value)
    }

    static let headerParameters = [("content-type", "CONTENT_TYPE"), ("content-length", "CONTENT_LENGTH")]

    /// The request line and the headers; nginx's `luaexec-fastcgi.conf` sends them, every request
    /// header as `HTTP_NAME` (an endpoint's handler sees them all, as `x-name`).
    public func head() -> RequestHead {
        var headers: [String: String] = [:]
        for (name, parameter) in Self.headerParameters {
            if let value = value(parameter) { headers[name] = value }
        }
        var cursor = envp
        while let entry = cursor?.pointee {
            cursor = cursor?.successor()
            // "HTTP_X_TEST=hi" is the header x-test.
            guard strncmp(entry, "HTTP_", 5) == 0, let equals = strchr(entry, Int32(UInt8(ascii: "="))) else { continue }
            let nameBytes = UnsafeRawBufferPointer(start: entry + 5, count: equals - entry - 5)
            let name = String(unsafeUninitializedCapacity: nameBytes.count) { buffer in
                for (index, byte) in nameBytes.enumerated() {
                    buffer[index] = byte == UInt8(ascii: "_") ? UInt8(ascii: "-") : (byte >= 65 && byte <= 90 ? byte + 32 : byte)
                }
                return nameBytes.count
            }
            headers[name] = String(cString: equals + 1)
        }
        return RequestHead(
            method: value("REQUEST_METHOD") ?? "GET",
            path: value("DOCUMENT_URI") ?? value("SCRIPT_NAME") ?? "/",
            query: value("QUERY_STRING") ?? "",
            headers: headers,
            clientAddress: value("REMOTE_ADDR") ?? "",
            requestID: value("REQUEST_ID"))
    }
}
