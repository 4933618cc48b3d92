import Foundation
import Testing

/// The seed's examples (shared/seed/interactive-lua-via-http.txt), through nginx, exactly.
@Suite("Seed examples through nginx → FastCGI → luaexecd")
struct SeedTests {
    let stack = Stack.shared

    @Test("system.toast with a Bearer header: 200, empty text body")
    func toastWithHeader() throws {
        let result = try stack.request(token: stack.adminToken, body: Array(#"system.toast("hello world")"#.utf8))
        #expect(result.status == 200)
        #expect(result.body == [])
        #expect(result.headers["content-type"] == "text/plain; charset=utf-8")
        #expect(result.headers["cache-control"] == "no-store")
        #expect(result.headers["server-timing"]?.hasPrefix("lua;dur=") == true)
        #expect(result.headers["x-lua-error"] == nil)
        #expect(result.headers["server"] == "nginx")
    }

    @Test("system.toast with ?AuthToken=: 200, and the toast reaches the log")
    func toastWithQuery() throws {
        let marker = "hello world \(UUID().uuidString)"
        let result = try stack.request(
            "/api/v1/exec/interactive.lua?AuthToken=\(stack.adminToken)", body: Array("system.toast(\"\(marker)\")".utf8))
        #expect(result.status == 200)
        #expect(result.body == [])
        try Stack.waitUntil(timeout: .seconds(5), "the toast in the log") { stack.luaexecdLog().contains(marker) }
    }

    @Test("return sip.calls.get_all()[1]:getState() answers active")
    func sipState() throws {
        let result = try stack.request(
            "/api/v1/exec/interactive.lua?AuthToken=\(stack.adminToken)",
            body: Array("return sip.calls.get_all()[1]:getState()".utf8))
        #expect(result.status == 200)
        #expect(result.text == "active")
    }

    @Test("locals are forgotten, globals remembered")
    func localsAndGlobals() throws {
        let query = "/api/v1/exec/interactive.lua?AuthToken=\(stack.adminToken)"
        let set = try stack.request(query, body: Array("\nlocal forgetful = 42\nuserdata = {}\nuserdata.rememberMe = 42\n".utf8))
        #expect(set.status == 200)
        #expect(set.body == [])
        let local = try stack.request(query, body: Array("return forgetful".utf8))
        #expect(local.status == 200)
        #expect(local.body == [])
        let global = try stack.request(query, body: Array("return userdata.rememberMe".utf8))
        #expect(global.status == 200)
        #expect(global.text == "42")
    }
}
