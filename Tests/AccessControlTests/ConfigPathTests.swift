import AccessControl
import Testing

/// Config paths (SPEC V5) are also part of the admin API's URL, where the web server resolves
/// `.` and `..` parts and merges slashes: a path with such parts would reach another route.
@Suite("Config paths")
struct ConfigPathTests {
    @Test(
        "paths a URL keeps as they are are valid",
        arguments: ["a", "sip.account.user", "a/b", "a/.b", "a/b..c", "a-b_c/d.e", String(repeating: "x", count: 256)])
    func valid(path: String) {
        #expect(ConfigValue.isValidPath(path))
    }

    @Test(
        "empty, '.' and '..' parts between slashes, a dot at either end, other bytes and 257 bytes are refused",
        arguments: [
            "", "a//b", "/a", "a/", "a/./b", "a/../b", "a/..", "../scripts/victim.lua", "b/../../tokens",
            ".a", "a.", "a b", "a%2Fb", "é", String(repeating: "x", count: 257),
        ])
    func invalid(path: String) {
        #expect(!ConfigValue.isValidPath(path))
    }

    @Test("the refusal says what the rule is")
    func problem() {
        #expect(
            ConfigValue.pathProblem("a/../b")
                == "bad path 'a/../b': use 1 to 256 letters, digits, '.', '_', '-' and '/', not starting or ending with '.', with no part between slashes empty, '.' or '..'")
    }
}
