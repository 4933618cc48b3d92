import AccessControl
import ExecService
import Logging
import LuaRuntime
import SystemSupport

#if canImport(Glibc)
import Glibc
#endif

/// Background upkeep: the token cache reloads within a second of a change made by `luaexec
/// token` (SPEC T4), last-used times are written once a minute, and the endpoint registry is
/// published for `luaexec endpoints` (SPEC V4): within a quarter second when a name comes or
/// goes, every 10 s at most when only call counts changed (a write per call would wear an
/// appliance's flash). A config change made by another process (`luaexec config set`) reaches
/// the state, and its callbacks run, within a quarter second; a restored backup resets the state.
enum Maintenance {
    /// The key under which `PublishedInfo` holds the registry.
    static let endpointsKey = "endpoints"

    static func run(
        authenticator: Authenticator, published: PublishedInfo, stateStore: StateStore, service: ExecService,
        executor: LuaExecutor, logger: Logger
    ) {
        var lastFlush = MonotonicInstant.now()
        var lastCounts = MonotonicInstant.now()
        var publishedState:
            (registry: ObjectIdentifier, structure: Int, counts: Int, options: String, timers: (structure: Int, runs: Int))?
        while true {
            do {
                try authenticator.refresh()
                if MonotonicInstant.now().duration(since: lastFlush) >= .seconds(60) {
                    try authenticator.flushUses()
                    lastFlush = MonotonicInstant.now()
                }
                applyChangesFromOutside(stateStore: stateStore, executor: executor, logger: logger)
                let registry = executor.registry
                let generation = registry.generation
                // Timers (SPEC V9) are listed with the endpoints: set or gone is a change of
                // structure, a run one of counts.
                let timers = executor.timers.generation
                let options = "\(service.options.interactive),\(service.options.actions)"
                let structureChanged =
                    publishedState.map {
                        $0.registry != ObjectIdentifier(registry) || $0.structure != generation.structure
                            || $0.options != options || $0.timers.structure != timers.structure
                    } ?? true
                let countsChanged =
                    publishedState.map { $0.counts != generation.counts || $0.timers.runs != timers.runs } ?? true
                if structureChanged
                    || (countsChanged && MonotonicInstant.now().duration(since: lastCounts) >= .seconds(10))
                {
                    try published.publish(endpointsKey, service.endpointsJSON(), pid: getpid())
                    publishedState = (ObjectIdentifier(registry), generation.structure, generation.counts, options, timers)
                    lastCounts = MonotonicInstant.now()
                }
            } catch {
                logger.error("upkeep failed", metadata: ["error": "\(error)"])
            }
            pauseThread(for: .milliseconds(250))
        }
    }

    private static func applyChangesFromOutside(stateStore: StateStore, executor: LuaExecutor, logger: Logger) {
        do {
            let changes = try stateStore.changesFromOutside()
            // Jobs run Lua on the thread that queues them when nobody else is: a large stack.
            if changes.restored {
                logger.notice("a backup was restored: the state starts afresh from it")
                runOnNewThread(stackSize: 16 << 20) {
                    do { try executor.reset() } catch { logger.error("reset after restore failed", metadata: ["error": "\(error)"]) }
                }
            } else if !changes.config.isEmpty {
                runOnNewThread(stackSize: 16 << 20) {
                    executor.runAfterQueued(label: "config") { vm in
                        for change in changes.config {
                            if let failure = vm.applyConfig(path: change.path, value: change.value?.luaValue, save: false) {
                                logger.error(
                                    "config change not applied", metadata: ["path": "\(change.path)", "error": "\(failure.message)"])
                            }
                        }
                    }
                }
            }
        } catch {
            logger.error("config store upkeep failed", metadata: ["error": "\(error)"])
        }
    }
}
