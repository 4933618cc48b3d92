import Foundation
import Synchronization

/// Many requests with large bodies at once, for the bounds on what waiting requests hold.
extension Stack {
    /// Requests sent at once, each on a thread of its own; the answers as they come back.
    final class Flight: Sendable {
        let answers = Mutex<[HTTPResult]>([])
        private let done = DispatchSemaphore(value: 0)
        let count: Int

        init(count: Int) { self.count = count }

        fileprivate func finished(_ answer: HTTPResult?) {
            if let answer { answers.withLock { $0.append(answer) } }
            done.signal()
        }

        /// Returns once every request has its answer (or failed).
        func wait() { for _ in 0..<count { done.wait() } }
    }

    /// Sends `count` evaluations of `chunk` at once, each padded with a Lua comment to `bytes`.
    func sendPadded(_ chunk: String, bytes: Int, count: Int) -> Flight {
        let flight = Flight(count: count)
        let body = Array(chunk.utf8) + Array(repeating: UInt8(ascii: "x"), count: bytes - chunk.utf8.count)
        for _ in 0..<count {
            Thread.detachNewThread { [self] in flight.finished(try? request(token: adminToken, body: body)) }
        }
        return flight
    }

    /// A request on a thread of its own, whose answer is read later.
    final class Pending: Sendable {
        let answer = Mutex<Result<HTTPResult, any Error>?>(nil)
        let done = DispatchSemaphore(value: 0)
        /// Waits for the answer.
        func get() throws -> HTTPResult? {
            done.wait()
            return try answer.withLock { $0 }?.get()
        }
    }

    /// Sends `chunk` to the exec API with `Lua-Interrupt-Key: key` and returns at once.
    func start(_ chunk: String, key: String, token: String? = nil) -> Pending {
        let pending = Pending()
        Thread.detachNewThread { [self] in
            pending.answer.withLock {
                $0 = Result {
                    try request(token: token ?? adminToken, headers: ["Lua-Interrupt-Key: \(key)"], body: Array(chunk.utf8))
                }
            }
            pending.done.signal()
        }
        return pending
    }

    /// Waits until the admin status contains `what`.
    func waitForStatus(_ what: String) throws {
        try Stack.waitUntil(timeout: .seconds(20), what) {
            (try? request("/api/v1/admin/status", token: adminToken))?.text.contains(what) == true
        }
    }

    /// The admin status as JSON, or nil while it cannot be read.
    func statusObject() -> [String: Any]? {
        guard let status = try? request("/api/v1/admin/status", token: adminToken) else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(status.body))) as? [String: Any]
    }

    /// What a hand-edited or foreign database may hold that luaexecd cannot load (issue 24,
    /// item 1): a `persisted` value under `key` nested `depth` tables deep, in the encoding
    /// persist.c stores, and the SQL that inserts it beside a config row of no known type
    /// (`odd.path`, type `widget`, one byte).
    static func unloadableRows(key: String = "deep", depth: Int = 100) -> (value: [UInt8], sql: String) {
        func hex(_ bytes: [UInt8]) -> String { bytes.map { String(format: "%02x", $0) }.joined() }
        func string(_ text: String) -> [UInt8] { [UInt8(ascii: "s"), UInt8(text.utf8.count), 0, 0, 0] + Array(text.utf8) }
        var value: [UInt8] = [UInt8(ascii: "t")]
        for _ in 0..<depth { value = [UInt8(ascii: "m"), 1, 0, 0, 0] + string("x") + value }
        let sql =
            "INSERT INTO persisted VALUES (X'\(hex(string(key)))', X'\(hex(value))');"
            + "INSERT INTO config VALUES ('odd.path', 'widget', X'00');"
        return (value, sql)
    }
}
