import CFastCGI
import ExecService

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

    static let headerParameters = [
        ("authorization", "HTTP_AUTHORIZATION"), ("accept", "HTTP_ACCEPT"), ("content-type", "CONTENT_TYPE"),
        ("content-length", "CONTENT_LENGTH"),
    ]

    /// The request line and the headers luaexecd reads; nginx's `luaexec-fastcgi.conf` sends them.
    public func head() -> RequestHead {
        var headers: [String: String] = [:]
        for (name, parameter) in Self.headerParameters {
            if let value = value(parameter) { headers[name] = value }
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
