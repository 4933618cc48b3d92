import Testing

@testable import SystemSupport

@Suite("Who called sudo, from the process tree")
struct SudoInvokerTests {
    static func status(_ name: String, parent: Int32, real: UInt32, effective: UInt32) -> String {
        "Name:\t\(name)\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t9\nPid:\t9\nPPid:\t\(parent)\n"
            + "Uid:\t\(real)\t\(effective)\t\(effective)\t\(effective)\nGid:\t0\t0\t0\t0\n"
    }

    @Test("sudo's real user, past its monitor and a shell between; a process only named sudo is not believed")
    func walk() {
        let tree: [Int32: String] = [
            40: Self.status("bash", parent: 30, real: 0, effective: 0),
            30: Self.status("sudo", parent: 20, real: 0, effective: 0),  // use_pty's monitor
            20: Self.status("sudo", parent: 10, real: 1000, effective: 0),
            10: Self.status("bash", parent: 1, real: 1000, effective: 1000),
        ]
        #expect(SudoInvoker.uid(startingAt: 40) { tree[$0] } == 1000)
        // A chunk's process, named sudo by prctl, cannot be root's.
        let forged: [Int32: String] = [
            50: Self.status("sudo", parent: 45, real: 999, effective: 999),
            45: Self.status("luaexecd", parent: 1, real: 999, effective: 999),
        ]
        #expect(SudoInvoker.uid(startingAt: 50) { forged[$0] } == nil)
        // No sudo above: nil; an unreadable status ends the walk.
        #expect(SudoInvoker.uid(startingAt: 10) { tree[$0] } == nil)
        #expect(SudoInvoker.uid(startingAt: 77) { tree[$0] } == nil)
    }
}
