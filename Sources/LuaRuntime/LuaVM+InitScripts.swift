import Logging
import SystemSupport

extension LuaVM {
    /// The outcome of one init script.
    public struct InitScriptReport: Sendable {
        public var path: String
        public var failure: LuaFailure?
    }

    /// Runs every `*.lua` file of `directory` in name order (SPEC V2). A script that fails is
    /// logged with its error; the others still run. A missing directory runs nothing.
    ///
    /// - Parameter guarded: runs one script's evaluation (the closure) under whatever limits the
    ///   caller imposes, such as `LuaExecutor.InitRunner`'s time limit; returns false when it
    ///   did not run it, which ends the run (luaexecd is stopping).
    @discardableResult
    public func runInitScripts(
        in directory: String, logger: Logger, guarded: (_ path: String, _ run: () -> Void) -> Bool = { $1(); return true }
    ) -> [InitScriptReport] {
        let names: [String]
        do {
            names = try Files.entries(ofDirectory: directory).filter { $0.hasSuffix(".lua") }.sorted()
        } catch {
            logger.warning("init directory unreadable, no init scripts run", metadata: ["dir": "\(directory)"])
            return []
        }
        var reports: [InitScriptReport] = []
        for name in names {
            let path = directory.hasSuffix("/") ? directory + name : directory + "/" + name
            let data: [UInt8]
            do {
                data = try Files.contents(atPath: path)
            } catch {
                let failure = LuaFailure(kind: .runtime, message: "cannot read \(path): \(error)")
                logger.error("init script failed", metadata: ["script": "\(path)", "error": "\(failure.message)"])
                reports.append(InitScriptReport(path: path, failure: failure))
                continue
            }
            var ran: Evaluation?
            let previousCaller = caller
            caller = .initScript(path)
            let started = guarded(path) { ran = evaluate(data, chunkName: "@" + path, rendering: .text) }
            caller = previousCaller
            guard started, let evaluation = ran else {
                logger.notice("init scripts stopped: luaexecd is stopping", metadata: ["next": "\(path)"])
                break
            }
            if !evaluation.output.isEmpty {
                logger.info(
                    "init script output",
                    metadata: ["script": "\(path)", "output": "\(String(decoding: evaluation.output, as: UTF8.self))"])
            }
            switch evaluation.outcome {
            case .success:
                logger.info("init script ran", metadata: ["script": "\(path)"])
                reports.append(InitScriptReport(path: path, failure: nil))
            case .failure(let failure):
                logger.error(
                    "init script failed",
                    metadata: ["script": "\(path)", "kind": "\(failure.kind.rawValue)", "error": "\(failure.message)"])
                reports.append(InitScriptReport(path: path, failure: failure))
            }
        }
        return reports
    }
}
