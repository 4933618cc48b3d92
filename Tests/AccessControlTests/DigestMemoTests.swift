import Crypto
import Testing

@testable import AccessControl

@Suite("Digest memo")
struct DigestMemoTests {
    /// The digest the memo gives, and how many times it asked whether to remember (once for
    /// each time it hashed).
    private func digest(_ memo: DigestMemo, _ text: String, owner: String = "", remember: Bool = true) -> (String, Int) {
        var asked = 0
        let digest = Array(text.utf8).withUnsafeBytes { bytes in
            memo.digest(of: bytes, owner: owner) { _ in
                asked += 1
                return remember
            }
        }
        return (hex(digest), asked)
    }

    private func hex(_ digest: SHA256Digest) -> String {
        digest.map { String($0, radix: 16).count == 1 ? "0" + String($0, radix: 16) : String($0, radix: 16) }.joined()
    }

    private func sha256(_ text: String) -> String { hex(SHA256.hash(data: Array(text.utf8))) }

    @Test("a remembered string is not hashed again, and its digest is the SHA-256 of its bytes")
    func remembers() {
        let memo = DigestMemo(slots: 8)
        let first = digest(memo, "return 1+1")
        #expect(first == (sha256("return 1+1"), 1))
        #expect(digest(memo, "return 1+1") == (sha256("return 1+1"), 0))
        // sha256 of "abc" as FIPS 180-2 gives it: the memo's digests are SHA-256's.
        #expect(digest(memo, "abc").0 == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
    }

    @Test("a string not to be remembered is hashed every time")
    func declined() {
        let memo = DigestMemo(slots: 8)
        #expect(digest(memo, "lxk_guess", remember: false) == (sha256("lxk_guess"), 1))
        #expect(digest(memo, "lxk_guess", remember: false) == (sha256("lxk_guess"), 1))
    }

    @Test("strings that share a slot never answer for each other, whatever their lengths")
    func collisions() {
        // One slot: every string lands in it, and each replaces the one before.
        let memo = DigestMemo(slots: 1)
        for text in ["lxk_aaaa", "lxk_aaab", "lxk_aaa", "", "lxk_aaaab", "lxk_aaaa"] {
            #expect(digest(memo, text) == (sha256(text), 1))
            #expect(digest(memo, text) == (sha256(text), 0))
        }
    }

    @Test("a string longer than maxLength is hashed and never kept: it does not displace the one in its slot")
    func tooLong() {
        // One slot: a long string kept would take it.
        let memo = DigestMemo(slots: 1, maxLength: 4)
        #expect(digest(memo, "abcd") == (sha256("abcd"), 1))
        let long = "return 1"
        #expect(digest(memo, long).0 == sha256(long))
        #expect(digest(memo, long).0 == sha256(long))
        #expect(digest(memo, "abcd") == (sha256("abcd"), 0))
    }

    @Test("a string remembered for one owner is not found for another (a token cannot time another's bodies)")
    func owners() {
        let memo = DigestMemo(slots: 8)
        #expect(digest(memo, "return 1+1", owner: "ops") == (sha256("return 1+1"), 1))
        #expect(digest(memo, "return 1+1", owner: "ops") == (sha256("return 1+1"), 0))
        #expect(digest(memo, "return 1+1", owner: "door") == (sha256("return 1+1"), 1))
        #expect(digest(memo, "return 1+1", owner: "door") == (sha256("return 1+1"), 0))
    }
}
