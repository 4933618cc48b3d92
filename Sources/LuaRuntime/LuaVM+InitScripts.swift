#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif
import Logging

extension LuaVM {
    /// The outcome of one init script.
    public struct InitScriptReport: Sendable {
        public var path: String
        public var failure: LuaFailure?
    }

    /// Runs every `*.lua` file of `directory` in name order (SPEC V2). A script that fails is
    /// logged with its error; the others still run. A missing directory runs nothing.
    @discardableResult
    public func runInitScripts(in directory: String, logger: Logger) -> [InitScriptReport] {
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory)
                .filter { $0.hasSuffix(".lua") }
                .sorted()
        } catch {
            logger.warning("init directory unreadable, no init scripts run", metadata: ["dir": "\(directory)"])
            return []
        }
        var reports: [InitScriptReport] = []
        for name in names {
            let path = directory.hasSuffix("/") ? directory + name : directory + "/" + name
            guard let data = FileManager.default.contents(atPath: path) else {
                let failure = LuaFailure(kind: .runtime, message: "cannot read \(path)")
                logger.error("init script failed", metadata: ["script": "\(path)", "error": "\(failure.message)"])
                reports.append(InitScriptReport(path: path, failure: failure))
                continue
            }
            let evaluation = evaluate(Array(data), chunkName: path, rendering: .text)
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
