import Foundation
import Testing

/// The web console (SPEC O7): the page in a real headless Chromium against the real stack
/// (Tests/Browser/webconsole_test.py, one Swift test per browser test), the security headers on
/// every file of the site, and what the page's files may not contain.
@Suite("Web console", .serialized)
struct WebConsoleTests {
    /// One stack for the browser tests, over HTTPS on a TCP port as a browser reaches it, with a
    /// time limit long enough that an interrupt, not the watchdog, ends the spinning chunks.
    static let stack = try! Stack(
        settings: ["auth.failure_limit=1000000", "limits.time=30", "exec.actions=true"], tcp: true)

    static let script = Stack.repository + "/Tests/Browser/webconsole_test.py"

    /// The browser tests, by method name; `everyBrowserTestIsRun` keeps this list whole.
    static let browserTests = [
        "test_wrong_token_is_refused_with_a_message",
        "test_run_chunk_typed_with_ctrl_enter",
        "test_errors_show_their_kind_message_and_traceback",
        "test_results_are_text_never_html",
        "test_history_reopens_a_run",
        "test_completion_and_globals_panel",
        "test_create_token_use_it_with_curl_then_revoke",
        "test_revoke_cancelled_keeps_the_token",
        "test_refusals_of_the_token_api_are_shown",
        "test_exec_only_token_sees_no_admin_actions",
        "test_metrics_token_sees_the_charts_only",
        "test_interrupt_a_spinning_chunk_from_the_status_page",
        "test_interrupt_from_the_console",
        "test_status_lists_requests_waiting_in_sleep_and_ends_one",
        "test_console_streams_output_live_and_interrupts",
        "test_status_charts_from_the_metrics",
        "test_endpoints_page_lists_the_registry",
        "test_audit_page_lists_filters_and_verifies",
        "test_exec_only_token_sees_no_audit",
        "test_sign_out_forgets_the_token",
        "test_revoked_mid_session_returns_to_sign_in",
        "test_an_endpoint_answer_runs_no_script_in_the_console_origin",
        "test_scripts_create_change_diff_and_roll_back",
        "test_line_diff_of_two_texts",
        "test_scripts_errors_shown_at_their_line_and_nothing_changes",
        "test_scripts_disable_enable_and_delete_after_confirming",
        "test_scripts_not_utf8_source_is_flagged",
        "test_exec_only_token_sees_no_scripts",
        "test_scripts_and_audit_phone_sized",
        "test_phone_sized_screen",
    ]

    /// Browser tests that need a stack of their own, each run by a Swift test of its own below.
    static let ownStackTests = ["test_status_lists_saved_entries_set_aside"]

    @Test("in headless Chromium", arguments: browserTests)
    func browser(_ name: String) throws {
        try Self.runInBrowser(name, on: Self.stack)
    }

    @Test("the Status page lists the saved entries luaexecd could not load and set aside (issue 24, item 1), in headless Chromium")
    func setAsideOnStatusPage() throws {
        let directory = NSTemporaryDirectory() + "luaexec-aside-\(UUID().uuidString)"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: directory) }
        // A database as luaexec makes it, then edited by hand before luaexecd first opens it.
        let database = directory + "/luaexec.db"
        let made = try Stack.run(Stack.binDirectory + "/luaexec", ["token", "create", "seed", "--database", database])
        try #require(made.status == 0, "\(made.stderr)")
        let edit = try Stack.run("/usr/bin/sqlite3", [database, Stack.unloadableRows().sql])
        try #require(edit.status == 0, "\(edit.stderr)")
        let stack = try Stack(settings: ["auth.failure_limit=1000000"], tcp: true, database: database)
        try Self.runInBrowser("test_status_lists_saved_entries_set_aside", on: stack)
    }

    /// Runs one test of the browser script against `stack`, then checks that no token reached
    /// its logs.
    static func runInBrowser(_ name: String, on stack: Stack) throws {
        var environment = ProcessInfo.processInfo.environment
        environment["LUAEXEC_URL"] = "https://127.0.0.1:\(stack.httpsPort!)"
        environment["LUAEXEC_ADMIN_TOKEN"] = stack.adminToken
        environment["LUAEXEC_ADMIN_NAME"] = "admin"
        // Debian's python3-selenium is installed for Debian's python3, whatever else is on PATH.
        let result = try Stack.run("/usr/bin/python3", [Self.script, "WebConsole." + name], environment: environment)
        #expect(result.status == 0, "\(name) failed in the browser:\n\(result.stderr)")

        // Whatever the page did, no secret reached a log: tokens travel in headers only.
        for log in ["/logs/access.log", "/logs/error.log", "/logs/luaexecd.log"] {
            let text = (try? String(contentsOfFile: stack.directory + log, encoding: .utf8)) ?? ""
            #expect(!text.contains("lxk_"), "a token in \(log)")
        }
    }

    @Test("every test of the browser script is run by the suite")
    func everyBrowserTestIsRun() throws {
        let source = try String(contentsOfFile: Self.script, encoding: .utf8)
        let defined = source.split(separator: "\n").compactMap { line -> String? in
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard trimmed.hasPrefix("def test_") else { return nil }
            return String(trimmed.dropFirst(4).prefix { $0 != "(" })
        }
        #expect(defined.sorted() == (Self.browserTests + Self.ownStackTests).sorted())
    }

    static let policy =
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        + "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

    /// The API's answers are never a page: a sandbox that loads nothing (issue 24, item 6;
    /// AnswerHeadersTests).
    static let apiPolicy = "sandbox; default-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

    @Test(
        "every answer of the site carries the security headers",
        arguments: [
            ("/", 200, "text/html"), ("/index.html", 200, "text/html"), ("/app.css", 200, "text/css"),
            ("/js/app.js", 200, "application/javascript"), ("/js/console.js", 200, "application/javascript"),
            ("/js/audit.js", 200, "application/javascript"), ("/js/scripts.js", 200, "application/javascript"),
            ("/js/diff.js", 200, "application/javascript"), ("/js/completion.js", 200, "application/javascript"),
            ("/vendor/codemirror/addon/hint/show-hint.js", 200, "application/javascript"),
            ("/vendor/codemirror/addon/hint/show-hint.css", 200, "text/css"),
            ("/favicon.svg", 200, "image/svg+xml"),
            ("/vendor/codemirror/lib/codemirror.js", 200, "application/javascript"),
            ("/vendor/codemirror/mode/lua/lua.js", 200, "application/javascript"),
            ("/vendor/codemirror/lib/codemirror.css", 200, "text/css"), ("/no-such-page", 404, "text/html"),
            ("/api/v1/whoami", 401, "text/plain; charset=utf-8"),
        ])
    func securityHeaders(_ path: String, status: Int, type: String) throws {
        let answer = try Stack.shared.request(path)
        #expect(answer.status == status)
        #expect(answer.headers["content-type"] == type)
        #expect(answer.headers["content-security-policy"] == (path.hasPrefix("/api/") ? Self.apiPolicy : Self.policy))
        #expect(answer.headers["x-frame-options"] == "DENY")
        #expect(answer.headers["referrer-policy"] == "no-referrer")
        #expect(answer.headers["x-content-type-options"] == "nosniff")
        #expect(answer.headers["set-cookie"] == nil)
    }

    /// (The 429 answer is checked in OperationsTests' rate-limit test.)
    @Test("nginx's own 413 answer carries them too")
    func securityHeadersOnNginxAnswers() throws {
        let tooLarge = try Stack.shared.request(token: Stack.shared.adminToken, body: Array(repeating: 0x20, count: 1_048_577))
        #expect(tooLarge.status == 413)
        #expect(tooLarge.headers["content-security-policy"] == Self.policy)
        #expect(tooLarge.headers["cache-control"] == "no-store")
    }

    /// What the CSP forbids, checked in the files themselves as well: an inline script or style,
    /// an event-handler attribute, or anything loaded from another site.
    @Test("the page's files hold no inline script or style and name no other site")
    func filesAreSelfContained() throws {
        let web = Stack.repository + "/web"
        let files = try #require(FileManager.default.subpaths(atPath: web)).filter {
            $0.hasSuffix(".html") || $0.hasSuffix(".js") || $0.hasSuffix(".css")
        }
        #expect(files.count >= 8)
        for file in files {
            let text = try String(contentsOfFile: web + "/" + file, encoding: .utf8)
            #expect(!text.contains("http://") && !text.contains("https://"), "\(file) names another site")
            #expect(!text.contains("innerHTML") && !text.contains("insertAdjacentHTML"), "\(file) inserts HTML")
            guard file.hasSuffix(".html") else { continue }
            #expect(text.range(of: #"<script(?![^>]*\bsrc=)"#, options: .regularExpression) == nil, "inline script in \(file)")
            #expect(text.range(of: #"<style|\sstyle="#, options: .regularExpression) == nil, "inline style in \(file)")
            #expect(text.range(of: #"\son[a-z]+="#, options: .regularExpression) == nil, "event handler in \(file)")
        }
    }

    @Test("whoami answers the token's name and scopes, never its secret")
    func whoami() throws {
        let stack = Stack.shared
        let token = try stack.makeToken("narrow-who", scopes: ["endpoint:status.lua", "metrics"])
        let answer = try stack.request("/api/v1/whoami", token: token)
        #expect(answer.status == 200)
        #expect(answer.headers["content-type"] == "application/json")
        #expect(answer.text == #"{"name":"narrow-who","scopes":["endpoint:status.lua","metrics"]}"#)
        #expect(try stack.request("/api/v1/whoami", token: "lxk_" + String(repeating: "A", count: 36)).status == 401)
        let post = try stack.request("/api/v1/whoami", method: "POST", token: token, body: [])
        #expect(post.status == 405)
        #expect(post.headers["allow"] == "GET")
    }
}
