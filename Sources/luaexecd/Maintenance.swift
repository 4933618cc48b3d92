import AccessControl
import Logging
import SystemSupport

/// Background upkeep of the token cache: reload within a second of a change made by
/// `luaexec token` (SPEC T4), and write last-used times once a minute.
enum Maintenance {
    static func run(authenticator: Authenticator, logger: Logger) {
        var lastFlush = MonotonicInstant.now()
        while true {
            pauseThread(for: .milliseconds(250))
            do {
                try authenticator.refresh()
                if MonotonicInstant.now().duration(since: lastFlush) >= .seconds(60) {
                    try authenticator.flushUses()
                    lastFlush = MonotonicInstant.now()
                }
            } catch {
                logger.error("token cache upkeep failed", metadata: ["error": "\(error)"])
            }
        }
    }
}
