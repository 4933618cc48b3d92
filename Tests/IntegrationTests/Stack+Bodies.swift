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

    /// The admin status as JSON, or nil while it cannot be read.
    func statusObject() -> [String: Any]? {
        guard let status = try? request("/api/v1/admin/status", token: adminToken) else { return nil }
        return (try? JSONSerialization.jsonObject(with: Data(status.body))) as? [String: Any]
    }
}
