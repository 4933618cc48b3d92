import CRemote

#if canImport(Glibc)
import Glibc
#endif

/// One HTTPS exchange with a luaexec, through libcurl with the server's public key pinned.
public struct Answer: Sendable {
    public var status: Int
    /// Header names lower-cased.
    public var headers: [String: String]
    public var body: [UInt8]
    /// Ctrl-C ended the wait (no answer came).
    public var cancelled: Bool
    /// Ctrl-C posted an interrupt of the request while waiting.
    public var interruptSent: Bool

    public var text: String { String(decoding: body, as: UTF8.self) }
}

public enum ClientError: Error, CustomStringConvertible, Equatable {
    /// No answer: refused, unreachable, timed out, TLS failed.
    case connection(String)
    /// The server's key is not the pinned one.
    case keyChanged(pinned: String, presented: String?)
    /// No whole answer within the client's timeout, after the request went out.
    case timedOut(milliseconds: Int)

    public var description: String {
        switch self {
        case .connection(let message): message
        case .timedOut(let milliseconds):
            "no whole answer within \(Self.seconds(milliseconds)) s: the request reached the box, and may still be running there"
        case .keyChanged(let pinned, let presented):
            "the server's public key changed: pinned \(pinned), presented \(presented ?? "(unreadable)")"
        }
    }
}

extension ClientError {
    /// `2`, `0.5`: seconds as a person gave them.
    static func seconds(_ milliseconds: Int) -> String {
        milliseconds % 1000 == 0 ? "\(milliseconds / 1000)" : "\(Double(milliseconds) / 1000)"
    }
}

public struct HTTPSClient: Sendable {
    public var baseURL: String
    public var pin: String
    public var token: String?
    public var connectTimeoutMilliseconds = 5_000
    /// The whole exchange; 0: as long as the box takes (luaexecd answers a slow chunk itself,
    /// within its limits, which the client does not know).
    public var timeoutMilliseconds = 0

    public init(baseURL: String, pin: String, token: String?) {
        self.baseURL = baseURL
        self.pin = pin
        self.token = token
    }

    /// - Parameters:
    ///   - watchInterrupt: Ctrl-C while waiting posts `/api/v1/console/interrupt?key=K` when
    ///     `interruptKey` names the request (`Lua-Interrupt-Key: K` goes with it: any token that
    ///     may evaluate may end its own evaluation, running or asleep), else ends the wait.
    ///   - onBody: called with each part of the body as it arrives (a streamed answer), on the
    ///     calling thread, before `send` returns; the answer still holds the whole body.
    public func send(
        _ method: String, _ path: String, headers: [String] = [], body: [UInt8] = [], watchInterrupt: Bool = false,
        interruptKey: String? = nil, onBody: (([UInt8]) -> Void)? = nil
    ) throws(ClientError) -> Answer {
        let receiver = onBody.map(BodyReceiver.init)
        var lines = headers
        if let token { lines.append("Authorization: Bearer \(token)") }
        let authorization = token.map { "Authorization: Bearer \($0)" } ?? ""
        if let interruptKey { lines.append("Lua-Interrupt-Key: \(interruptKey)") }
        // One C copy of every string the request points at: url, method, pin, the interrupt's
        // url and header, then the header lines.
        let interruptURL = baseURL + "/api/v1/console/interrupt?key=" + (interruptKey ?? "")
        let fixed = [baseURL + path, method, pin, interruptURL, authorization]
        var response = lxr_response()
        let code: Int32 = withCStrings(fixed + lines) { strings in
            body.withUnsafeBufferPointer { bodyPointer in
                var request = lxr_request()
                request.url = strings[0]
                request.method = strings[1]
                request.pin = strings[2]
                request.headers = strings.baseAddress! + fixed.count
                request.header_count = Int32(lines.count)
                request.body = bodyPointer.baseAddress
                request.body_length = bodyPointer.count
                request.connect_timeout_ms = connectTimeoutMilliseconds
                request.timeout_ms = timeoutMilliseconds
                request.watch_sigint = watchInterrupt ? 1 : 0
                if interruptKey != nil {
                    request.interrupt_url = strings[3]
                    request.interrupt_header = strings[4]
                }
                if let receiver {
                    // Called during lxr_perform, while `receiver` is alive: unretained is enough.
                    request.on_body = { context, data, length in
                        guard let context, let data else { return }
                        Unmanaged<BodyReceiver>.fromOpaque(context).takeUnretainedValue().take(
                            Array(UnsafeBufferPointer(start: data, count: length)))
                    }
                    request.on_body_context = Unmanaged.passUnretained(receiver).toOpaque()
                }
                return withExtendedLifetime(receiver) { lxr_perform(&request, &response) }
            }
        }
        defer { lxr_response_free(&response) }
        if response.pin_mismatch != 0 {
            throw .keyChanged(pinned: pin, presented: try? Self.fingerprint(of: baseURL))
        }
        if response.cancelled != 0 {
            return Answer(status: 0, headers: [:], body: [], cancelled: true, interruptSent: response.interrupt_sent != 0)
        }
        if response.timed_out != 0 { throw .timedOut(milliseconds: timeoutMilliseconds) }
        guard code == 0 else {
            throw .connection(withUnsafeBytes(of: response.error) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) })
        }
        let headerText = response.headers.map { String(cString: $0) } ?? ""
        return Answer(
            status: Int(response.status), headers: Self.parseHeaders(headerText),
            body: response.body.map { Array(UnsafeBufferPointer(start: $0, count: response.body_length)) } ?? [],
            cancelled: false, interruptSent: response.interrupt_sent != 0)
    }

    /// The SHA-256 of the public key the server at `url` presents, as `sha256//BASE64` (what
    /// `curl --pinnedpubkey` takes). Nothing is sent but a HEAD request without credentials.
    public static func fingerprint(of url: String, timeoutMilliseconds: Int = 5_000) throws(ClientError) -> String {
        var out = [CChar](repeating: 0, count: 128), error = [CChar](repeating: 0, count: 256)
        let status = lxr_fingerprint(url + "/", timeoutMilliseconds, &out, out.count, &error, error.count)
        guard status == 0 else { throw .connection(Self.text(error)) }
        return Self.text(out)
    }

    static func text(_ characters: [CChar]) -> String {
        String(decoding: characters.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    static func parseHeaders(_ text: String) -> [String: String] {
        var headers: [String: String] = [:]
        for line in text.split(separator: "\r\n").dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            let value = line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" }
            headers[line[..<colon].lowercased()] = String(value)
        }
        return headers
    }
}

/// What `send` hands each part of a body to.
private final class BodyReceiver {
    let take: ([UInt8]) -> Void
    init(_ take: @escaping ([UInt8]) -> Void) { self.take = take }
}

/// `body` with the strings as a C array of C strings.
private func withCStrings<R>(_ strings: [String], _ body: (UnsafeBufferPointer<UnsafePointer<CChar>?>) -> R) -> R {
    let copies = strings.map { strdup($0) }
    defer { copies.forEach { free($0) } }
    let pointers = copies.map { UnsafePointer<CChar>($0) }
    return pointers.withUnsafeBufferPointer(body)
}
