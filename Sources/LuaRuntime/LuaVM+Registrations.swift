import CLuaSupport
import Crypto

#if canImport(FoundationEssentials)
import FoundationEssentials
#else
import Foundation
#endif

extension LuaVM {
    /// `http.listen`, `http.action` and their `stop_` twins, as CLuaSupport reports them: keeps
    /// `registry` in step with the functions in the state.
    func registrationChanged(_ change: lx_registration) {
        let kind: EndpointRegistry.Kind = change.kind == Int32(LX_KIND_ACTION.rawValue) ? .action : .endpoint
        let name = Self.string(change.name, change.name_len)
        touchedRegistrations?.insert(EndpointRegistry.Registration(kind, name))
        if change.removed != 0 {
            registry.remove(kind, name)
            return
        }
        let origin = origin(source: change.source.map { String(cString: $0) } ?? "", line: Int(change.line))
        var chunkLength = 0
        let chunk = lx_current_chunk(runtime, &chunkLength).map {
            UnsafeRawBufferPointer(start: $0, count: chunkLength)
        }
        let parameters = Self.string(change.params, change.params_len).split(separator: "\n").compactMap {
            line -> EndpointRegistry.Parameter? in
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
            guard fields.count == 3, let type = EndpointRegistry.ParameterType(rawValue: String(fields[1])) else {
                return nil
            }
            return .init(name: String(fields[0]), type: type, optional: fields[2] == "1")
        }
        registry.register(
            EndpointRegistry.Entry(
                kind: kind, name: name, origin: origin, since: Date(),
                sourceSHA256: chunk.map { Self.hex(SHA256.hash(data: $0)) },
                help: change.help.map { Self.string($0, change.help_len) }, parameters: parameters))
    }

    private static func string(_ pointer: UnsafePointer<CChar>?, _ length: Int) -> String {
        guard let pointer, length > 0 else { return "" }
        return String(decoding: UnsafeRawBufferPointer(start: pointer, count: length), as: UTF8.self)
    }

    private static func hex(_ digest: some Sequence<UInt8>) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        for byte in digest {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0xF)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
