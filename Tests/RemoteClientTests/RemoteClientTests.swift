import RemoteClient
import Testing

@Suite("Client: JSON, Lua printing, chunk completeness")
struct RemoteClientTests {
    @Test("JSON keeps number text and object order, decodes escapes and surrogate pairs")
    func json() throws {
        let value = try #require(JSONValue.parse(Array(#" {"b":[1,2.5,-3e2,null,true],"a":"x\n\u00e9\ud83d\ude00\"","c":{}} "#.utf8)))
        #expect(value == .object([
            ("b", .array([.number("1"), .number("2.5"), .number("-3e2"), .null, .bool(true)])),
            ("a", .string("x\né😀\"")),
            ("c", .object([])),
        ]))
        for bad in ["", "[1,", "{\"a\" 1}", "tru", "[1] 2", "\"open"] {
            #expect(JSONValue.parse(Array(bad.utf8)) == nil, "\(bad)")
        }
        let deep = String(repeating: "[", count: 500) + String(repeating: "]", count: 500)
        #expect(JSONValue.parse(Array(deep.utf8)) == nil)  // bounded depth, no stack overflow
    }

    @Test(
        "results print as lua5.4 prints scalars, tables as Lua constructors",
        arguments: [
            (#"["top", 1, 2.5, null, false]"#, "top\t1\t2.5\tnil\tfalse"),
            (#"[{"1":1,"2":"two","nested":{"flag":true}}]"#, #"{[1] = 1, [2] = "two", nested = {flag = true}}"#),
            (#"[["a\"b\\c\n", "\u0001"]]"#, #"{"a\"b\\c\n", "\1"}"#),
            (#"[{"end":1,"with space":2,"_ok9":3,"9lives":4}]"#, #"{["end"] = 1, ["with space"] = 2, _ok9 = 3, ["9lives"] = 4}"#),
            (#"[[], {}]"#, "{}\t{}"),
        ])
    func printing(json: String, expected: String) throws {
        guard case .array(let results)? = JSONValue.parse(Array(json.utf8)) else {
            Issue.record("not an array: \(json)")
            return
        }
        #expect(LuaPrinter(colour: false).results(results) == expected)
    }

    @Test("a long table is written one entry per line, indented")
    func longTables() throws {
        let json = #"[{"name":"a rather long value that takes room","list":[1,2,3],"more":"another long string here"}]"#
        guard case .array(let results)? = JSONValue.parse(Array(json.utf8)) else { return }
        #expect(LuaPrinter(colour: false).results(results) == """
            {
              name = "a rather long value that takes room",
              list = {1, 2, 3},
              more = "another long string here"
            }
            """)
        #expect(LuaPrinter(colour: true).results([.number("1")]) == "\u{1B}[36m1\u{1B}[0m")
    }

    @Test(
        "a chunk is incomplete exactly when Lua's error ends at <eof>",
        arguments: [
            ("x = 1", ChunkSyntax.Verdict.complete),
            ("function f(a,", .incomplete),
            ("for i = 1, 2 do", .incomplete),
            ("x = [[open", .incomplete),
            ("x = 'open", .incomplete),  // "unfinished string near <eof>": lua.c waits for more too
            ("return +", .invalid),
            ("x = = 1", .invalid),
            ("end", .invalid),
        ])
    func completeness(text: String, verdict: ChunkSyntax.Verdict) {
        #expect(ChunkSyntax().check(text) == verdict)
    }

    @Test("the remote without -r: the default, else the only one; errors say what to do")
    func choosing() throws {
        var file = RemotesFile()
        #expect(throws: RemoteFileError.self) { try file.chosen(nil) }
        file.store(Remote(name: "a", url: "https://a", fingerprint: "sha256//x", token: "t"))
        #expect(try file.chosen(nil).name == "a")
        file.store(Remote(name: "b", url: "https://b", fingerprint: "sha256//y", token: "t"))
        #expect(file.defaultRemote == "a")
        #expect(try file.chosen(nil).name == "a")
        #expect(try file.chosen("b").url == "https://b")
        do {
            _ = try file.chosen("c")
            Issue.record("an unknown remote was chosen")
        } catch {
            #expect(error.description == "no remote named 'c' (known: a, b)")
        }
    }

    @Test(
        "an address is stored in one spelling, and named by its host and its port unless 443",
        arguments: [
            ("box", "https://box", "box"),
            ("https://Box:443/", "https://box", "box"),
            ("https://127.0.0.1:8443", "https://127.0.0.1:8443", "127.0.0.1:8443"),
            ("127.0.0.1:9443/", "https://127.0.0.1:9443", "127.0.0.1:9443"),
            ("HTTPS://[FD00::7]:8443//", "https://[fd00::7]:8443", "[fd00::7]:8443"),
            ("https://proxy.example:8443/boxes/7/", "https://proxy.example:8443/boxes/7", "proxy.example:8443"),
        ])
    func addresses(typed: String, stored: String, name: String) throws {
        let url = try Remote.normalisedURL(typed)
        #expect(url == stored)
        #expect(Remote.defaultName(for: url) == name)
        #expect(Remote.isValidName(name))
    }

    @Test("an address that is not https, or has no host, is refused with why")
    func badAddresses() {
        for (typed, message) in [
            ("http://box", "only https:// addresses: http://box"), ("https://", "no host in https://"),
            ("https://:8443/", "no host in https://:8443/"),
        ] {
            #expect(throws: RemoteFileError(message)) { try Remote.normalisedURL(typed) }
        }
        for name in ["", "a b", "box/x", "ü", String(repeating: "a", count: 65)] { #expect(!Remote.isValidName(name), "\(name)") }
    }
}
