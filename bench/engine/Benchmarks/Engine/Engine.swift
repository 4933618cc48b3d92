import AccessControl
import Benchmark
import ExecService
import FastCGI
import Foundation
import HTTPCore
import Logging
import LuaRuntime

// What one request costs inside luaexecd, without the socket: parsing nginx's FastCGI records
// into a request, evaluation alone, the whole service path (authenticate, evaluate, render,
// audit), JSON rendering of a large table, and the token check. Allocations are reported next to
// time.
let benchmarks: @Sendable () -> Void = {
    let configuration = Benchmark.Configuration(
        metrics: [.wallClock, .throughput, .mallocCountTotal], warmupIterations: 100, maxDuration: .seconds(3))
    Benchmark.defaultConfiguration = configuration

    let database = NSTemporaryDirectory() + "luaexec-bench-\(UUID().uuidString).db"
    let store = try! TokenStore(path: database)
    let token = try! store.create(name: "bench", scopes: [.exec], expiresAt: nil).secret
    let authenticator = try! Authenticator(store: store)
    var quiet = Logger(label: "bench")
    quiet.logLevel = .warning
    let executor = try! LuaExecutor(logger: quiet) { try LuaVM() }
    let service = ExecService(executor: executor, authenticator: authenticator, logger: quiet)
    let vm = try! LuaVM()
    let chunk = Array("return 1+1".utf8)
    _ = vm.evaluate(Array("big = {} for i = 1, 10000 do big[i] = {id = i, name = 'item' .. i, ok = i % 2 == 0} end".utf8),
                    chunkName: "setup", rendering: .text)
    let sink = Sink()
    // The whole service path as the transport takes it: hand the request over, then run what
    // waits for the state on this thread.
    func respond(_ head: RequestHead, _ body: [UInt8]) -> Response? {
        service.respond(to: head, body: .complete(body), writer: sink)?()
        service.runDeferred()
        return sink.last
    }
    _ = respond(
        RequestHead(method: "POST", path: "/api/v1/exec/interactive.lua", headers: ["authorization": "Bearer \(token)"]),
        Array("big = {} for i = 1, 10000 do big[i] = {id = i, name = 'item' .. i, ok = i % 2 == 0} end".utf8))

    Benchmark("LuaVM.evaluate return 1+1 (load, call, convert)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(vm.evaluate(chunk, chunkName: "interactive.lua", rendering: .text))
        }
    }

    let head = RequestHead(
        method: "POST", path: "/api/v1/exec/interactive.lua", headers: ["authorization": "Bearer \(token)"],
        clientAddress: "127.0.0.1")
    Benchmark("ExecService.respond return 1+1 (auth, evaluate, render text)") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(respond(head, chunk))
        }
    }

    let jsonHead = RequestHead(
        method: "POST", path: "/api/v1/exec/interactive.lua",
        headers: ["authorization": "Bearer \(token)", "accept": "application/json"], clientAddress: "127.0.0.1")
    let bigChunk = Array("return big".utf8)
    Benchmark("ExecService.respond a 10,000-row table as JSON", configuration: .init(maxDuration: .seconds(3))) { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(respond(jsonHead, bigChunk))
        }
    }

    // One request as nginx writes it (nginx/luaexec-fastcgi.conf plus headers): BEGIN_REQUEST,
    // PARAMS, STDIN, each ended by its empty record.
    let params = [
        ("REQUEST_METHOD", "POST"), ("DOCUMENT_URI", "/api/v1/exec/interactive.lua"), ("QUERY_STRING", ""),
        ("CONTENT_TYPE", "application/x-www-form-urlencoded"), ("CONTENT_LENGTH", "10"), ("REMOTE_ADDR", "127.0.0.1"),
        ("SERVER_PROTOCOL", "HTTP/1.1"), ("REQUEST_ID", "5f0c3e0d9a1b4c2d8e7f6a5b4c3d2e1f"), ("HTTP_HOST", "127.0.0.1:8443"),
        ("HTTP_USER_AGENT", "curl/7.88.1"), ("HTTP_ACCEPT", "*/*"), ("HTTP_AUTHORIZATION", "Bearer \(token)"),
        ("HTTP_CONTENT_TYPE", "application/x-www-form-urlencoded"), ("HTTP_CONTENT_LENGTH", "10"),
    ]
    func record(_ type: UInt8, _ content: [UInt8]) -> [UInt8] {
        [1, type, 0, 1, UInt8(content.count >> 8), UInt8(content.count & 0xFF), 0, 0] + content
    }
    var stream: [UInt8] = []
    for (name, value) in params {
        stream += [UInt8(name.utf8.count), UInt8(value.utf8.count)] + Array(name.utf8) + Array(value.utf8)
    }
    let records = record(1, [0, 1, 1, 0, 0, 0, 0, 0]) + record(4, stream) + record(4, []) + record(5, chunk) + record(5, [])
    Benchmark("FastCGIParser: one request's records to a request and its RequestHead") { benchmark in
        var parser = FastCGIParser()
        for _ in benchmark.scaledIterations {
            parser.append(records)
            guard case .request(let request)? = try? parser.next() else { fatalError("no request parsed") }
            blackHole(request.params.head())
            _ = parser.finish()
        }
    }

    Benchmark("Authenticator.authenticate a bearer token") { benchmark in
        for _ in benchmark.scaledIterations {
            blackHole(authenticator.authenticate(token, requiring: .exec))
        }
    }
}

/// Where the service's answers go in the benchmarks: the last one, kept for `blackHole`.
final class Sink: ResponseWriter, @unchecked Sendable {
    var last: Response?
    func send(_ response: Response) { last = response }
    func startStream(_ head: Response) { last = head }
    func write(_ bytes: [UInt8]) -> Bool { true }
    func finish() {}
}
