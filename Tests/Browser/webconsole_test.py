#!/usr/bin/python3
"""The web console (SPEC O7) in a real headless Chromium, against a real luaexec stack.

Run by Tests/IntegrationTests/WebConsoleTests.swift, which starts the stack (nginx serving the
page over HTTPS, luaexecd, an admin token) and runs one test of this file per Swift test:

    LUAEXEC_URL=https://127.0.0.1:PORT LUAEXEC_ADMIN_TOKEN=lxk_... \
        /usr/bin/python3 Tests/Browser/webconsole_test.py WebConsole.test_run_chunk

With LUAEXEC_SCREENSHOTS=DIR the tests also save the screenshots the README shows.

Every test ends by reading the browser's console: a script error or a Content-Security-Policy
violation fails it. Debian's python3-selenium drives Debian's chromium through chromium-driver.
"""

import hashlib
import os
import re
import subprocess
import time
import unittest

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import Select, WebDriverWait

URL = os.environ["LUAEXEC_URL"]
ADMIN = os.environ["LUAEXEC_ADMIN_TOKEN"]
ADMIN_NAME = os.environ.get("LUAEXEC_ADMIN_NAME", "admin")
SHOTS = os.environ.get("LUAEXEC_SCREENSHOTS")


def curl(*arguments, token=None, body=None):
    """(status, body) of one request to the stack; curl as a user would run it."""
    command = ["curl", "-sk", "-o", "-", "-w", "\n%{http_code}"]
    if token:
        command += ["-H", "Authorization: Bearer " + token]
    if body is not None:
        command += ["--data-binary", body]
    out = subprocess.run(command + list(arguments), capture_output=True, text=True, check=True).stdout
    text, _, status = out.rpartition("\n")
    return int(status), text


def make_token(name, *scopes):
    args = ["-X", "POST", "-H", "Content-Type: application/json", URL + "/api/v1/admin/tokens"]
    body = '{"name":"%s","scopes":[%s]}' % (name, ",".join('"%s"' % s for s in scopes))
    status, text = curl(*args, token=ADMIN, body=body)
    assert status == 201, (status, text)
    return re.search(r'"token":"(lxk_[A-Za-z0-9]+)"', text).group(1)


def put_script(name, source, token=ADMIN):
    """Installs a stored script over the API, as another administrator (or `luaexec script push`)
    would: (status, JSON text)."""
    return curl("-X", "PUT", "-H", "Accept: application/json", URL + "/api/v1/admin/scripts/" + name,
                token=token, body=source)


def call_endpoint(name):
    return curl(URL + "/api/v1/exec/" + name, token=ADMIN)


class WebConsole(unittest.TestCase):
    def setUp(self):
        options = webdriver.ChromeOptions()
        options.binary_location = "/usr/bin/chromium"
        for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                         "--ignore-certificate-errors", "--window-size=1360,900", "--no-first-run"):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        self.browser = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
        self.wait = WebDriverWait(self.browser, 15)
        # What a test expects the browser to refuse, and so to log (a pattern); nothing else may be.
        self.refusals = None

    def tearDown(self):
        try:
            problems = [entry["message"] for entry in self.browser.get_log("browser")
                        if entry["level"] == "SEVERE" and not self.expected_console_error(entry["message"])
                        and not (self.refusals and re.search(self.refusals, entry["message"]))]
            self.assertEqual(problems, [], "script errors or CSP violations in the browser console")
        finally:
            self.browser.quit()

    # A refused request (401, 403, 500 of a failed chunk) is logged by Chromium as a failed
    # resource load; those are the answers under test, not faults of the page.
    @staticmethod
    def expected_console_error(message):
        return re.search(r"Failed to load resource: the server responded with a status of (4|5)\d\d", message)

    # -- helpers ------------------------------------------------------------------------------

    def find(self, selector):
        return self.browser.find_element(By.CSS_SELECTOR, selector)

    def visible(self, selector):
        return self.wait.until(EC.visibility_of_element_located((By.CSS_SELECTOR, selector)))

    def text_of(self, selector, pattern):
        """Waits until the element's text matches `pattern`, and answers the text."""
        self.wait.until(lambda _: re.search(pattern, self.find(selector).text))
        return self.find(selector).text

    def sign_in(self, token=ADMIN):
        self.browser.get(URL + "/")
        field = self.visible("#signin-token")
        field.send_keys(token + Keys.ENTER)

    def signed_in(self, token=ADMIN):
        self.sign_in(token)
        self.visible("#who-name")

    def set_chunk(self, text):
        self.visible(".CodeMirror")
        self.browser.execute_script("document.querySelector('.CodeMirror').CodeMirror.setValue(arguments[0])", text)

    def run_chunk(self, text, runs_before=None):
        """Runs `text` with the Run button and waits for its result (a new history entry)."""
        before = len(self.browser.find_elements(By.CSS_SELECTOR, "#history li")) if runs_before is None else runs_before
        self.set_chunk(text)
        self.find("#run").click()
        self.wait.until(lambda _: len(self.browser.find_elements(By.CSS_SELECTOR, "#history li")) == before + 1)

    def confirm(self, expected_text):
        dialog = self.visible("#confirm")
        self.assertIn(expected_text, self.find("#confirm-text").text)
        dialog.find_element(By.CSS_SELECTOR, "#confirm-ok").click()

    def ended_from_the_page(self, chunk, act):
        """Sends `chunk` with curl in the background, does `act` on the page, and expects the
        request to have been ended as interrupted."""
        request = subprocess.Popen(
            ["curl", "-sk", "-D", "-", "-H", "Authorization: Bearer " + ADMIN, "--data-binary", chunk,
             URL + "/api/v1/exec/interactive.lua"], stdout=subprocess.PIPE, text=True)
        try:
            act()
            answer, _ = request.communicate(timeout=15)
        finally:
            request.kill()
        self.assertIn("HTTP/1.1 500", answer)
        self.assertIn("X-Lua-Error: interrupted", answer)

    def run_chunk_by_curl(self, chunk):
        status, text = curl(URL + "/api/v1/exec/interactive.lua", token=ADMIN, body=chunk)
        self.assertEqual(status, 200, text)

    def shot(self, name):
        if SHOTS:
            os.makedirs(SHOTS, exist_ok=True)
            self.browser.save_screenshot(os.path.join(SHOTS, name + ".png"))

    # -- tests --------------------------------------------------------------------------------

    def test_wrong_token_is_refused_with_a_message(self):
        self.sign_in("lxk_" + "A" * 36)
        self.assertEqual(self.text_of("#signin-error", "not accepted"),
                         "That token is not accepted: unknown, revoked or expired.")
        self.assertFalse(self.find("#nav").is_displayed())
        self.shot("signin")

    def test_run_chunk_typed_with_ctrl_enter(self):
        self.signed_in()
        self.assertEqual(self.find("#who-name").text, ADMIN_NAME)
        editor = self.visible(".CodeMirror")
        editor.click()
        self.browser.execute_script("document.querySelector('.CodeMirror').CodeMirror.setValue('')")
        editor.find_element(By.CSS_SELECTOR, "textarea").send_keys(
            'print("hello")\nweb_x = 41\nreturn web_x + 1, "two", {a = 1, list = {true, 2.5}}')
        editor.find_element(By.CSS_SELECTOR, "textarea").send_keys(Keys.CONTROL, Keys.ENTER)
        self.assertEqual(self.text_of("#result-badge", "ok"), "ok")
        self.assertEqual(self.find("#result-output").text, "hello")
        values = [li.text for li in self.browser.find_elements(By.CSS_SELECTOR, "#result-values > li")]
        self.assertEqual(values[:2], ["42", '"two"'])
        self.assertIn("table: 2 entries", values[2])
        self.assertIn("a = 1", values[2])
        self.assertIn("[1] = true", values[2])
        self.assertIn("[2] = 2.5", values[2])
        self.assertRegex(self.find("#result-elapsed").text, r"^[0-9.]+ ms in Lua · \d+ ms round trip$")
        self.shot("console")
        # Globals live on: the next run sees web_x.
        self.run_chunk("return web_x")
        self.assertEqual(self.find("#result-values > li").text, "41")

    def test_errors_show_their_kind_message_and_traceback(self):
        self.signed_in()
        self.run_chunk("return +")
        self.assertEqual(self.text_of("#result-badge", "."), "syntax")
        self.assertEqual(self.find("#error-message").text, "interactive.lua:1: unexpected symbol near '+'")
        self.assertIn("HTTP 400", self.find("#result-elapsed").text)

        self.run_chunk('print("before")\nlocal function f() error("boom") end\nf()')
        self.assertEqual(self.text_of("#result-badge", "runtime"), "runtime")
        self.assertEqual(self.find("#error-message").text, "interactive.lua:2: boom")
        self.assertEqual(self.find("#result-output").text, "before")
        self.find("#error-traceback-box summary").click()
        traceback = self.visible("#error-traceback").text
        self.assertTrue(traceback.startswith("stack traceback:"), traceback)
        self.assertIn("interactive.lua:2: in", traceback)
        self.assertFalse(self.find("#result-values-box").is_displayed())
        self.shot("console-error")

    def test_results_are_text_never_html(self):
        self.signed_in()
        payload = "<img src=x onerror=alert(1)>"
        self.run_chunk("print(%r)\nreturn %r, {[%r] = '<script>alert(2)</script>'}" % (payload, payload, "<b>k</b>"))
        self.assertEqual(self.find("#result-output").text, payload)
        self.assertEqual(self.find("#result-values > li").text, '"%s"' % payload)
        self.assertIn("<b>k</b> = \"<script>alert(2)</script>\"", self.find("#result-values").text)
        injected = self.browser.execute_script(
            "return document.querySelectorAll('#result img, #result script, #result b, #history img').length")
        self.assertEqual(injected, 0)
        with self.assertRaises(NoAlertPresentException):
            self.browser.switch_to.alert.text
        # The history entry shows the chunk as text too.
        self.assertIn("print('<img src=x onerror=alert(1)>')", self.find("#history li").text)

    def test_history_reopens_a_run(self):
        self.signed_in()
        self.run_chunk("return 'first'")
        self.run_chunk("return 'second'")
        entries = self.browser.find_elements(By.CSS_SELECTOR, "#history li button")
        self.assertEqual(len(entries), 2)
        self.assertIn("return 'second'", entries[0].text)  # newest first
        entries[1].click()
        self.assertEqual(self.find("#result-values > li").text, '"first"')
        chunk = self.browser.execute_script("return document.querySelector('.CodeMirror').CodeMirror.getValue()")
        self.assertEqual(chunk, "return 'first'")

    def editor_value(self):
        return self.browser.execute_script("return document.querySelector('.CodeMirror').CodeMirror.getValue()")

    def type_in_editor(self, *keys):
        self.find(".CodeMirror textarea").send_keys(*keys)

    def hints(self):
        """The names the open completion list offers, and their types."""
        items = self.browser.find_elements(By.CSS_SELECTOR, ".CodeMirror-hints li")
        return [(item.find_element(By.CSS_SELECTOR, "span:first-child").text,
                 item.find_element(By.CSS_SELECTOR, ".hint-type").text) for item in items]

    def test_completion_and_globals_panel(self):
        """SPEC O10: the editor offers names from the live state (Tab, Ctrl+Space); the panel lists
        the state's own globals with their types, refreshed after each run."""
        self.signed_in()
        self.run_chunk("web_complete_one = 1\nweb_complete_two = {}\nfunction web_complete_fn(a, b) end")
        self.wait.until(lambda _: "web_complete_two" in self.find("#globals").text)
        rows = {button.find_element(By.CSS_SELECTOR, "code").text: button.find_element(By.CSS_SELECTOR, "span").text
                for button in self.browser.find_elements(By.CSS_SELECTOR, "#globals button")}
        self.assertEqual(rows["web_complete_one"], "number")
        self.assertEqual(rows["web_complete_two"], "table")
        self.assertEqual(rows["web_complete_fn"], "function")
        self.assertEqual(rows["system"], "table")  # an init script's
        for standard in ("print", "string", "_G", "http", "persisted"):
            self.assertNotIn(standard, rows)
        self.assertEqual(list(rows), sorted(rows))

        # Tab after a name: the candidates from the state, with their types.
        self.set_chunk("")
        self.visible(".CodeMirror").click()
        self.type_in_editor("return web_complete_", Keys.TAB)
        self.wait.until(lambda _: len(self.hints()) == 3)
        self.assertEqual(self.hints(), [("web_complete_fn", "function"), ("web_complete_one", "number"),
                                        ("web_complete_two", "table")])
        self.shot("console-completion")
        self.type_in_editor(Keys.DOWN, Keys.ENTER)
        self.assertEqual(self.editor_value(), "return web_complete_one")

        # One candidate is inserted at once; fields through `.`, methods through `:`.
        self.set_chunk("")
        self.type_in_editor("return sip.calls.ge", Keys.TAB)
        self.wait.until(lambda _: self.editor_value() == "return sip.calls.get_all")
        self.set_chunk("")
        self.type_in_editor("return sip.calls:ge", Keys.CONTROL, " ")
        self.wait.until(lambda _: self.editor_value() == "return sip.calls:get_all")
        self.set_chunk("")
        self.type_in_editor("local s = 'x' return string.up", Keys.TAB)
        self.wait.until(lambda _: self.editor_value() == "local s = 'x' return string.upper")
        # Tab where no name is being typed indents with spaces, as the editor's own indentation.
        self.set_chunk("")
        self.type_in_editor("if x then", Keys.ENTER, Keys.TAB, "y = 1")
        self.assertEqual(self.editor_value(), "if x then\n    y = 1")

        # A click on a global puts its name in the editor; the next run refreshes the panel.
        self.set_chunk("return ")
        self.browser.execute_script("document.querySelector('.CodeMirror').CodeMirror.setCursor({line: 0, ch: 7})")
        next(button for button in self.browser.find_elements(By.CSS_SELECTOR, "#globals button")
             if button.find_element(By.CSS_SELECTOR, "code").text == "web_complete_two").click()
        self.assertEqual(self.editor_value(), "return web_complete_two")
        self.run_chunk("web_complete_two = nil\nweb_complete_three = true")
        self.wait.until(lambda _: "web_complete_three" in self.find("#globals").text)
        self.assertNotIn("web_complete_two", self.find("#globals").text)
        self.assertIn("boolean", self.find("#globals").text)

        # A long name is cut in the panel (its title holds it whole); the page stays as wide as
        # the window, and the type beside it shows.
        long_name = "web_complete_" + "very_long_" * 8 + "name"
        self.run_chunk(long_name + " = function() end")
        self.wait.until(lambda _: self.browser.find_elements(By.CSS_SELECTOR, '#globals button[title^="%s"]' % long_name))
        button = self.find('#globals button[title^="%s"]' % long_name)
        self.assertEqual(button.get_attribute("title"), long_name + ": function")
        self.assertEqual(button.find_element(By.CSS_SELECTOR, "span").text, "function")
        self.assertLessEqual(self.browser.execute_script("return document.documentElement.scrollWidth"),
                             self.browser.execute_script("return window.innerWidth"))
        type_box = button.find_element(By.CSS_SELECTOR, "span").rect
        self.assertLessEqual(type_box["x"] + type_box["width"], self.browser.execute_script("return window.innerWidth"))
        self.shot("console-long-global")
        self.run_chunk(long_name + " = nil")

    def test_create_token_use_it_with_curl_then_revoke(self):
        self.signed_in()
        self.find('#nav a[data-page="access"]').click()
        self.visible("#create-name").send_keys("web-ops")
        self.find("#create-expires option[value='1d']").click()
        self.find("#create-form button[type=submit]").click()
        secret = self.visible("#created-secret").get_attribute("value")
        self.assertRegex(secret, r"^lxk_[A-Za-z0-9]{36}$")
        line = self.find("#created-curl").get_attribute("value")
        self.assertEqual(line, "curl -k -H \"Authorization: Bearer %s\" %s/api/v1/exec/interactive.lua -d 'return 1+1'"
                         % (secret, URL))
        row = self.visible('#tokens tr[data-token="web-ops"]')
        self.assertIn("exec", row.text)
        self.assertNotIn("never", row.find_elements(By.CSS_SELECTOR, "td")[3].text)  # expires in 1 day
        self.shot("access-created")
        if SHOTS:
            self.browser.execute_script("window.scrollTo(0, 0)")
            self.shot("access")

        # The ready line works at once, as printed.
        used = subprocess.run(["bash", "-c", line], capture_output=True, text=True)
        self.assertEqual((used.returncode, used.stdout), (0, "2"))
        # The list never carries a secret.
        self.assertNotIn(secret, self.find("#tokens").text)

        row.find_element(By.CSS_SELECTOR, "button").click()
        self.confirm('Revoke the token "web-ops"?')
        self.wait.until(lambda _: not self.browser.find_elements(By.CSS_SELECTOR, '#tokens tr[data-token="web-ops"]'))
        status, _ = curl(URL + "/api/v1/exec/interactive.lua", token=secret, body="return 1")
        self.assertEqual(status, 401)

    def test_revoke_cancelled_keeps_the_token(self):
        secret = make_token("kept", "exec")
        self.signed_in()
        self.find('#nav a[data-page="access"]').click()
        row = self.visible('#tokens tr[data-token="kept"]')
        row.find_element(By.CSS_SELECTOR, "button").click()
        self.visible("#confirm").find_element(By.CSS_SELECTOR, "button[value=cancel]").click()
        self.assertEqual(curl(URL + "/api/v1/exec/interactive.lua", token=secret, body="return 'still'"), (200, "still"))
        self.assertTrue(self.find('#tokens tr[data-token="kept"]').is_displayed())

    def test_refusals_of_the_token_api_are_shown(self):
        self.signed_in()
        self.find('#nav a[data-page="access"]').click()
        self.visible("#create-name").send_keys("admin")
        self.find("#create-form button[type=submit]").click()
        self.assertEqual(self.text_of("#create-error", "exists"),
                         "a token named 'admin' already exists; revoke it first or pick another name")
        self.assertFalse(self.find("#created").is_displayed())

    def test_exec_only_token_sees_no_admin_actions(self):
        secret = make_token("exec-only", "exec")
        self.signed_in(secret)
        links = [a.text for a in self.browser.find_elements(By.CSS_SELECTOR, "#nav a") if a.is_displayed()]
        self.assertEqual(links, ["Console"])
        self.browser.get(URL + "/#access")  # asking for it by address shows the console instead
        self.visible("#page-console")
        self.assertFalse(self.find("#page-access").is_displayed())
        self.wait.until(lambda _: self.browser.current_url.endswith("#console"))
        self.assertFalse(self.find("#console-interrupt").is_displayed())  # nothing runs
        self.set_chunk("while true do end")
        self.find("#run").click()
        self.text_of("#run-state", "running")
        # Its own run, which it may end (POST /api/v1/console/interrupt with the run's key);
        # the admin API stays refused to it.
        self.assertEqual(curl(URL + "/api/v1/admin/interrupt", "-X", "POST", token=secret)[0], 403)
        self.visible("#console-interrupt").click()
        self.assertEqual(self.text_of("#result-badge", "interrupted"), "interrupted")
        self.assertFalse(self.find("#console-interrupt").is_displayed())

    def test_metrics_token_sees_the_charts_only(self):
        secret = make_token("scraper", "metrics")
        self.signed_in(secret)
        links = [a.text for a in self.browser.find_elements(By.CSS_SELECTOR, "#nav a") if a.is_displayed()]
        self.assertEqual(links, ["Status"])
        self.visible("#chart-requests")
        self.assertFalse(self.find("#status-interrupt").is_displayed())
        self.assertFalse(self.find("#status-reset").is_displayed())

    def test_interrupt_a_spinning_chunk_from_the_status_page(self):
        self.signed_in()
        self.find('#nav a[data-page="status"]').click()
        def interrupt():
            self.text_of("#st-running", r"^%s for \d" % re.escape(ADMIN_NAME))
            self.find("#status-interrupt").click()
            self.confirm("Interrupt the running evaluation?")
        self.ended_from_the_page("while true do end", interrupt)
        self.assertEqual(self.text_of("#notice", "interrupted"), "The running evaluation was interrupted.")
        self.text_of("#st-running", "^nothing$")
        self.assertIn("interrupted", self.find("#outcomes").text)

    def test_interrupt_from_the_console(self):
        self.signed_in()
        self.assertFalse(self.find("#console-interrupt").is_displayed())  # shown only while a run runs
        self.set_chunk("while true do end")
        self.find("#run").click()
        self.visible("#console-interrupt").click()
        self.assertEqual(self.text_of("#result-badge", "interrupted"), "interrupted")
        self.assertIn("interrupted", self.find("#error-message").text)
        self.assertFalse(self.find("#console-interrupt").is_displayed())
        # A chunk waiting in sleep is not the running one: the run's key ends it all the same.
        self.set_chunk('print("asleep")\nsleep(25)\nweb_sleeper_woke = true')
        self.find("#run").click()
        self.assertEqual(self.text_of("#result-output", "asleep"), "asleep")
        self.visible("#console-interrupt").click()
        self.assertEqual(self.text_of("#result-badge", "interrupted"), "interrupted")
        self.assertIn("interrupted", self.find("#error-message").text)
        self.assertEqual(curl(URL + "/api/v1/exec/interactive.lua", token=ADMIN, body="return web_sleeper_woke")[1], "")

    def test_status_lists_requests_waiting_in_sleep_and_ends_one(self):
        self.signed_in()
        self.find('#nav a[data-page="status"]').click()
        def end():
            row = self.text_of("#waiting-entries tbody", ADMIN_NAME)
            self.assertRegex(row, r"^\d+ %s \d+\.\d s \d+\.\d s End$" % re.escape(ADMIN_NAME))
            self.assertEqual(self.find("#st-running").text, "nothing")
            self.shot("status-waiting")
            self.find("#waiting-entries tbody button").click()
            self.confirm("waiting in sleep?")
        self.ended_from_the_page("print('zz') sleep(25) return 'woke'", end)
        self.assertRegex(self.text_of("#notice", "ended"), r"^Request \d+ was ended\.$")
        self.wait.until(lambda _: not self.find("#waiting").is_displayed())

    def test_console_streams_output_live_and_interrupts(self):
        """SPEC E13 and O11: the output shows while the chunk runs; Interrupt ends it, and the
        traceback says where it was stopped."""
        self.signed_in()
        flag = "web_stream_go_%d" % int(time.time() * 1000)
        self.set_chunk('print("step one")\nwhile not %s do sleep(0.05) end\nprint("step two")\n'
                       'local function spin() while true do end end\nspin()' % flag)
        self.find("#run").click()
        # Shown while the chunk waits for the flag: it can only have come as a stream.
        self.assertEqual(self.text_of("#result-output", "step one"), "step one")
        self.assertEqual(self.find("#result-badge").text, "running")
        self.shot("console-stream")
        self.browser.execute_script(
            "fetch('/api/v1/exec/interactive.lua', {method: 'POST', headers: {Authorization: 'Bearer ' + arguments[0]},"
            " body: arguments[1] + ' = true'})", ADMIN, flag)
        self.assertEqual(self.text_of("#result-output", "step two"), "step one\nstep two")
        self.visible("#console-interrupt").click()
        self.assertEqual(self.text_of("#result-badge", "interrupted"), "interrupted")
        self.find("#error-traceback-box summary").click()
        traceback = self.visible("#error-traceback").text
        self.assertIn("interactive.lua:4: in local 'spin'", traceback)
        self.assertIn("interactive.lua:5: in main chunk", traceback)

    def test_status_lists_saved_entries_set_aside(self):
        """Against a stack of its own (WebConsoleTests.setAsideOnStatusPage) whose database held,
        before luaexecd first opened it, a config row of no known type and a persisted value
        nested 100 tables deep: luaexecd started without them, and the Status page lists them
        with what to do (issue 24, item 1)."""
        self.signed_in()
        self.find('#nav a[data-page="status"]').click()
        self.visible("#set-aside")
        rows = WebDriverWait(self.browser, 15).until(lambda _: [
            [cell.text for cell in row.find_elements(By.TAG_NAME, "td")]
            for row in self.browser.find_elements(By.CSS_SELECTOR, "#set-aside-entries tbody tr")] or None)
        status = curl(URL + "/api/v1/admin/status", token=ADMIN)[1]
        deep_bytes = re.search(r'"key":"deep","bytes":(\d+)', status)
        self.assertIsNotNone(deep_bytes, status)
        self.assertEqual([row[1:5] for row in rows], [
            ["config", "odd.path", "1", "not a config value (type 'widget')"],
            ["persisted", "deep", deep_bytes.group(1), "stored data is damaged"],
        ])
        for row in rows:
            self.assertRegex(row[0], r"^\d+$")
            self.assertRegex(row[5], r"\d")
        self.assertIn("luaexec aside drop ID", self.find("#set-aside").text)
        self.shot("status-set-aside")
        # A token that may see the Status page but has no admin scope is shown none of it.
        viewer = make_token("aside-viewer", "metrics")
        self.find("#sign-out").click()
        self.visible("#signin-token").send_keys(viewer + Keys.ENTER)
        self.visible("#who-name")
        self.visible("#chart-requests")  # a metrics token lands on the Status page
        self.assertFalse(self.find("#set-aside").is_displayed())

    def test_status_charts_from_the_metrics(self):
        self.signed_in()
        self.find('#nav a[data-page="status"]').click()
        self.assertEqual(self.text_of("#st-version", r"\d"), curl(URL + "/api/v1/admin/status", token=ADMIN)[1]
                         .split('"version":"')[1].split('"')[0])
        for _ in range(20):
            curl(URL + "/api/v1/exec/interactive.lua", token=ADMIN, body="return 1")
        # Two samples make the first point (one every 5 s).
        WebDriverWait(self.browser, 20).until(
            lambda _: re.search(r"now \d", self.find("#chart-requests-now").text))
        painted = self.browser.execute_script("""
            const c = document.querySelector('#chart-requests');
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++; return n;""")
        self.assertGreater(painted, 100)
        if SHOTS:  # for the README: half a minute of traffic, so the charts have a few points
            for round in range(6):
                for _ in range(10 * (round + 1)):
                    curl(URL + "/api/v1/exec/interactive.lua", token=ADMIN, body="local s = 0 for i = 1, 1e5 do s = s + i end return s")
                time_now = self.find("#chart-requests-now").text
                WebDriverWait(self.browser, 10).until(lambda _: self.find("#chart-requests-now").text != time_now)
            self.shot("status")

    def test_endpoints_page_lists_the_registry(self):
        # A stored script's endpoint names the script and its version (docs/scripts.md, "The
        # registry"); an init script's names its file and line.
        self.assertEqual(put_script(
            "clock.lua",
            'local started = os.time()\nhttp.listen("clock", function() return os.date() end)\n'
            'timer.every(3600, function() end)\n')[0], 201)
        self.signed_in()
        self.find('#nav a[data-page="endpoints"]').click()
        table = self.text_of("#endpoints", "status.lua")
        self.assertIn("command?action=toast", table)
        self.assertIn("toast(text: string, times?: integer)", table)
        self.assertIn("30-example.lua:", table)
        clock = self.browser.execute_script(
            "return Array.from(document.querySelectorAll('#endpoints tbody tr'), (row) => row.innerText)"
            ".filter((text) => text.startsWith('endpoint') && text.includes('clock'))")
        self.assertEqual(len(clock), 1)
        self.assertIn("script clock.lua v1:2", clock[0])
        # The script's timer (SPEC V9): its kind, its origin, when it runs.
        timers = self.browser.execute_script(
            "return Array.from(document.querySelectorAll('#endpoints tbody tr'), (row) => row.innerText)"
            ".filter((text) => text.startsWith('timer'))")
        self.assertEqual(len(timers), 1)
        self.assertRegex(timers[0], r"every 3600 s · next in \d+\.\d s")
        self.assertIn("script clock.lua v1:3", timers[0])
        self.assertEqual(self.find("#ep-switches").text, "interactive.lua: on · Action URLs: on")
        self.shot("endpoints")

    def audit_rows(self):
        # Read in one script: the page replaces the rows when it refreshes, and rows found by one
        # call could be gone by the next (StaleElementReferenceException).
        return self.browser.execute_script(
            "return Array.from(document.querySelectorAll('#audit-records tbody tr'),"
            " (row) => Array.from(row.cells, (cell) => cell.innerText.trim()).filter((t) => t).join(' '))")

    def test_audit_page_lists_filters_and_verifies(self):
        secret = make_token("audited", "exec")
        self.assertEqual(curl(URL + "/api/v1/exec/interactive.lua", token=secret, body="return 'fine'")[0], 200)
        self.assertEqual(curl(URL + "/api/v1/exec/interactive.lua", token=secret, body="error('bad')")[0], 500)
        self.signed_in()
        self.find('#nav a[data-page="audit"]').click()
        self.visible("#audit-token").send_keys("audited")
        # The writer commits every 100 ms: Show again until both requests are there.
        def both_listed(_):
            self.find("#audit-filter button[type=submit]").click()
            return len(self.audit_rows()) == 2
        self.wait.until(both_listed)
        newest, oldest = self.audit_rows()
        self.assertRegex(newest, r"exec audited 127\.0\.0\.1 POST /api/v1/exec/interactive\.lua 500 runtime")
        self.assertRegex(oldest, r"exec audited 127\.0\.0\.1 POST /api/v1/exec/interactive\.lua 200 ok")
        # Records are text: the token's name, the path and the detail go in with textContent.
        self.assertEqual(self.browser.execute_script(
            "return document.querySelector('#audit-records tbody').getElementsByTagName('script').length"), 0)
        Select(self.find("#audit-outcome")).select_by_value("error")
        self.find("#audit-filter button[type=submit]").click()
        self.wait.until(lambda _: len(self.audit_rows()) == 1)
        self.assertIn("runtime", self.audit_rows()[0])
        # The token's creation is on record, naming what was made and by whom.
        self.find("#audit-token").clear()
        Select(self.find("#audit-outcome")).select_by_value("")
        Select(self.find("#audit-kind")).select_by_value("admin")
        self.find("#audit-filter button[type=submit]").click()
        self.wait.until(lambda _: any("token create audited scopes=exec" in row for row in self.audit_rows()))
        self.find("#audit-verify").click()
        self.assertRegex(self.text_of("#audit-verify-summary", "Chain"), r"^Chain intact: \d+ records \(\d+ to \d+\)\.$")
        self.assertEqual(self.find("#audit-verify-problems").text, "")
        self.shot("audit")
        # A filter the server refuses: its message, and none of the last filter's rows, which
        # would look as if they matched.
        self.find("#audit-since").send_keys("bogus")
        self.find("#audit-filter button[type=submit]").click()
        self.assertIn("got 'bogus'", self.text_of("#notice", "bogus"))
        self.wait.until(lambda _: not self.find("#audit-records").is_displayed())
        self.assertEqual(self.audit_rows(), [])
        self.find("#audit-since").clear()

    def test_exec_only_token_sees_no_audit(self):
        secret = make_token("no-audit", "exec")
        self.browser.get(URL + "/#audit")
        self.visible("#signin-token").send_keys(secret + Keys.ENTER)
        self.visible("#who-name")
        self.assertFalse(self.find('#nav a[data-page="audit"]').is_displayed())
        self.visible("#page-console")  # the page asked for is not one it may see
        self.assertFalse(self.find("#page-audit").is_displayed())
        status, text = curl(URL + "/api/v1/admin/audit", token=secret)
        self.assertEqual(status, 403)
        self.assertNotIn("records", text)

    def test_sign_out_forgets_the_token(self):
        self.signed_in()
        self.assertEqual(self.browser.execute_script("return sessionStorage.getItem('luaexec.token')"), ADMIN)
        self.assertEqual(self.browser.execute_script("return document.cookie"), "")
        self.browser.refresh()  # the tab keeps it across a reload
        self.visible("#who-name")
        self.find("#sign-out").click()
        self.visible("#signin-token")
        self.assertIsNone(self.browser.execute_script("return sessionStorage.getItem('luaexec.token')"))
        self.browser.refresh()
        self.visible("#signin-token")
        self.assertFalse(self.find("#nav").is_displayed())

    def test_revoked_mid_session_returns_to_sign_in(self):
        secret = make_token("short-lived", "exec")
        self.signed_in(secret)
        status, _ = curl(URL + "/api/v1/admin/tokens/short-lived", "-X", "DELETE", token=ADMIN)
        self.assertEqual(status, 200)
        self.set_chunk("return 1")
        self.find("#run").click()
        self.assertEqual(self.text_of("#signin-error", "no longer"),
                         "Your token is no longer accepted (revoked or expired). Sign in again.")

    def test_an_endpoint_answer_runs_no_script_in_the_console_origin(self):
        # Issue 24, item 6. A token with `exec` registers endpoints on the console's origin: a page
        # and an SVG that carry an inline script and a script of the site (steal.js, another
        # endpoint, which `script-src 'self'` alone would let run), and a collector. Opened in the
        # console's own tab, where the admin's token is in sessionStorage, none of it may run.
        author = make_token("page-author", "exec")
        steal = ("document.getElementById('s').textContent = 'ran';"
                 "let t; try { t = sessionStorage.getItem('luaexec.token') } catch (e) { t = 'refused: ' + e }"
                 "document.title = String(t);"
                 "fetch('/api/v1/exec/loot?AuthToken=%s', {method: 'POST', body: String(t)});" % author)
        script_src = "/api/v1/exec/steal.js?AuthToken=" + author
        page = ('<title>inert</title><p id="s">inert</p><script>%s</script><script src="%s"></script>'
                % (steal, script_src))
        svg = ('<svg xmlns="http://www.w3.org/2000/svg"><text id="s" y="20">inert</text>'
               '<script href="%s"/><script>%s</script></svg>' % (script_src, steal))
        chunk = """
            loot = nil
            http.listen('loot', function(url, body) loot = body return 'kept' end)
            http.listen('steal.js', function() return 200, [==[%s]==], {['Content-Type'] = 'text/javascript'} end)
            http.listen('page.html', function() return 200, [==[%s]==], {['Content-Type'] = 'text/html'} end)
            http.listen('image.svg', function() return 200, [==[%s]==], {['Content-Type'] = 'image/svg+xml'} end)
            """ % (steal, page, svg)
        self.assertEqual(curl(URL + "/api/v1/exec/interactive.lua", token=author, body=chunk), (200, ""))
        self.refusals = (r"Blocked script execution in '%s/api/v1/exec/(page\.html|image\.svg)\?AuthToken="
                         % re.escape(URL))

        self.signed_in()
        self.assertEqual(self.browser.execute_script("return sessionStorage.getItem('luaexec.token')"), ADMIN)
        for name in ("page.html", "image.svg"):
            # As an admin would open an endpoint's link: in the console's tab, the token in the query.
            self.browser.get(URL + "/api/v1/exec/%s?AuthToken=%s" % (name, author))
            # Shown, and inert: a script that ran would have changed the text before the load
            # event, which get() waits for.
            self.assertEqual(self.find("#s").text, "inert", name)
            self.assertNotIn(ADMIN, self.browser.title)
            self.assertNotIn(ADMIN, self.browser.page_source)
        self.assertEqual(curl(URL + "/api/v1/exec/interactive.lua", token=ADMIN, body="return loot"), (200, ""))

        # Back on the console the tab is still signed in with its token, untouched.
        self.browser.get(URL + "/")
        self.visible("#who-name")
        self.assertEqual(self.browser.execute_script("return sessionStorage.getItem('luaexec.token')"), ADMIN)
        self.assertEqual(curl(URL + "/api/v1/exec/interactive.lua", token=ADMIN, body="return loot"), (200, ""))

    # -- Scripts (SPEC V8, M6; docs/scripts.md) ---------------------------------------------------

    def open_scripts(self):
        self.find('#nav a[data-page="scripts"]').click()
        self.visible("#script-new")

    def set_script(self, text):
        self.visible("#script-work .CodeMirror")
        self.browser.execute_script(
            "document.querySelector('#script-work .CodeMirror').CodeMirror.setValue(arguments[0])", text)

    def script_source(self):
        return self.browser.execute_script("return document.querySelector('#script-work .CodeMirror').CodeMirror.getValue()")

    def script_row(self, name):
        """The list's row for `name` as its cells' texts, None when it is not listed."""
        return self.browser.execute_script(
            "const row = document.querySelector(`#scripts tr[data-script='${arguments[0]}']`);"
            "return row && Array.from(row.cells, (cell) => cell.innerText.trim())", name)

    def save_script(self, expected):
        """Save and apply; waits for the outcome and answers its summary, which must match."""
        self.find("#script-save").click()
        return self.text_of("#script-result-summary", expected)

    def marked_lines(self):
        """The editor's lines (1-based) marked as the error's, and the messages shown under them."""
        return self.browser.execute_script("""
            const cm = document.querySelector('#script-work .CodeMirror').CodeMirror, marked = [];
            cm.eachLine((handle) => {
              const info = cm.lineInfo(handle);
              if ((info.bgClass || '').includes('script-error-line'))
                marked.push([info.line + 1, (info.widgets || []).map((w) => w.node.textContent),
                             Boolean(info.gutterMarkers && info.gutterMarkers['script-error-gutter'])]);
            });
            return marked;""")

    def top_shot(self, name):
        """A screenshot of the page from its top: the page scrolls an outcome into view, and the
        README's picture should show the tabs above it. The window is made tall enough for the
        list, the editor and the outcome together."""
        if SHOTS:
            self.browser.execute_script("window.scrollTo(0, 0)")
            self.shot(name)

    def test_scripts_create_change_diff_and_roll_back(self):
        v1 = 'local greeting = "hello from v1"\nhttp.listen("greeting", function() return greeting end)\n'
        v2 = v1.replace("v1", "v2")
        self.browser.set_window_size(1360, 1100)
        self.signed_in()
        self.open_scripts()
        self.assertIsNone(self.script_row("greeting.lua"))
        self.find("#script-new").click()
        self.visible("#script-name").send_keys("greeting.lua")
        self.set_script(v1)
        self.assertRegex(self.save_script("Saved"),
                         r"^Saved and applied: greeting\.lua version 1 \(new\), ran in [0-9.]+ ms\. Registered: endpoint greeting\.$")
        self.assertEqual(self.text_of("#script-title", "version"), "greeting.lua, version 1")
        self.wait.until(lambda _: self.script_row("greeting.lua"))
        name, state, version, installed, last_run, registered = self.script_row("greeting.lua")
        self.assertEqual((name, state, version, registered), ("greeting.lua", "enabled", "1", "/api/v1/exec/greeting"))
        self.assertRegex(installed, r"^%s, \S" % re.escape(ADMIN_NAME))
        self.assertRegex(last_run, r"^ok, [0-9.]+ ms$")
        self.assertEqual(call_endpoint("greeting"), (200, "hello from v1"))

        # A new version: stored as version 2, and the endpoint answers it at once.
        self.set_script(v2)
        self.assertEqual(self.text_of("#script-state", "changed"), "changed since version 1")
        self.assertRegex(self.save_script("version 2"),
                         r"^Saved and applied: greeting\.lua version 2, ran in [0-9.]+ ms\. Registered: endpoint greeting\.$")
        self.assertEqual(self.find("#script-state").text, "")
        self.assertEqual(call_endpoint("greeting"), (200, "hello from v2"))
        self.wait.until(lambda _: self.script_row("greeting.lua")[2] == "2")
        versions = self.browser.execute_script(
            "return Array.from(document.querySelectorAll('#script-versions tbody tr'), (row) => row.cells[0].innerText.trim())")
        # Newest first, each with the start of its SHA-256 (as sha256sum prints it).
        sha = lambda text: hashlib.sha256(text.encode()).hexdigest()[:12]
        self.assertEqual(versions, ["version 2 current\n" + sha(v2), "version 1\n" + sha(v1)])
        self.top_shot("scripts")

        # The diff of version 1 against the current one: the changed line, removed and added.
        self.find('#script-versions tr[data-version="1"] button').click()
        self.assertEqual(self.text_of("#script-diff-title", "Version"), "Version 1 → version 2 (current)")
        self.assertEqual(self.find("#script-diff-summary").text, "1 line removed, 1 added")
        lines = self.browser.execute_script(
            "return Array.from(document.querySelectorAll('#script-diff li'),"
            " (li) => [li.dataset.kind, li.querySelector('code').textContent])")
        self.assertEqual(lines, [["del", 'local greeting = "hello from v1"'], ["add", 'local greeting = "hello from v2"'],
                                 ["same", 'http.listen("greeting", function() return greeting end)']])
        self.top_shot("scripts-diff")

        # Roll back: version 1 is current again (no version 3), and the endpoint answers its text.
        self.assertEqual(self.find("#script-rollback").text, "Roll back to version 1")
        self.find("#script-rollback").click()
        self.assertRegex(self.text_of("#script-result-summary", "Rolled back"),
                         r"^Rolled back: greeting\.lua version 1 is current again \(was 2\), ran in [0-9.]+ ms\. "
                         r"Registered: endpoint greeting\.$")
        self.assertEqual(call_endpoint("greeting"), (200, "hello from v1"))
        self.assertEqual(self.text_of("#script-title", "version 1"), "greeting.lua, version 1")
        self.assertEqual(self.script_source(), v1)
        self.wait.until(lambda _: self.script_row("greeting.lua")[2] == "1")
        status, text = curl(URL + "/api/v1/admin/scripts/greeting.lua/versions", token=ADMIN)
        self.assertEqual(status, 200)
        self.assertIn('"current":1,', text)
        self.assertEqual(re.findall(r'"version":(\d+)', text), ["2", "1"])
        self.assertTrue(self.find("#script-rollback").get_attribute("disabled"))  # nothing older is kept

        # And forward again: version 2 is kept, and Make current runs it (rollback?version=2).
        self.find('#script-versions tr[data-version="2"] button[aria-label="Make version 2 current"]').click()
        self.assertRegex(self.text_of("#script-result-summary", "Made current"),
                         r"^Made current: greeting\.lua version 2 is current again \(was 1\), ran in [0-9.]+ ms\. "
                         r"Registered: endpoint greeting\.$")
        self.assertEqual(call_endpoint("greeting"), (200, "hello from v2"))
        self.assertEqual(self.script_source(), v2)
        self.wait.until(lambda _: self.script_row("greeting.lua")[2] == "2")

        # The Endpoints page names the stored script and the version that registered it.
        self.find('#nav a[data-page="endpoints"]').click()
        self.text_of("#endpoints", "greeting")
        self.assertIn("script greeting.lua v2:2", self.find("#endpoints").text)

    def test_line_diff_of_two_texts(self):
        # web/js/diff.js, the Scripts page's diff, run in the browser as the page runs it.
        self.browser.get(URL + "/")
        self.visible("#signin-token")
        cases = [
            ["a\nb\nc\n", "a\nB\nc\n"],   # a changed line: removed, then added
            ["", "x\ny"],                   # all new
            ["x\ny\n", ""],                 # all gone
            ["a\nb\nc\nd", "b\nx\nd\ne"],  # a line dropped at the start, one changed, one added at the end
            ["same\n", "same"],             # only the final newline differs: no line changed
            ["1\n2\n3\n4\n5\n6\n7\n8\n9\n10\n11\n12\n", "1\n2\n3\n4\n5\n6\nsix\n7\n8\n9\n10\n11\n12\n"],
        ]
        shown = self.browser.execute_async_script("""
            const [cases, done] = arguments;
            import('/js/diff.js').then(({ lineDiff, withContext }) => done(cases.map(([a, b]) =>
              withContext(lineDiff(a, b), 3).map((op) => op.kind === 'skip' ? `… ${op.count}` :
                `${{same: ' ', del: '-', add: '+'}[op.kind]}${op.old ?? '_'},${op.new ?? '_'} ${op.text}`))));""", cases)
        self.assertEqual(shown, [
            [" 1,1 a", "-2,_ b", "+_,2 B", " 3,3 c"],
            ["+_,1 x", "+_,2 y"],
            ["-1,_ x", "-2,_ y"],
            ["-1,_ a", " 2,1 b", "-3,_ c", "+_,2 x", " 4,3 d", "+_,4 e"],
            ["… 1"],  # nothing changed: all folded
            ["… 3", " 4,4 4", " 5,5 5", " 6,6 6", "+_,7 six", " 7,8 7", " 8,9 8", " 9,10 9", "… 3"],
        ])

    def test_scripts_errors_shown_at_their_line_and_nothing_changes(self):
        other = make_token("other-admin", "exec", "admin")
        self.browser.set_window_size(1360, 1100)
        self.signed_in()
        self.open_scripts()
        self.find("#script-new").click()

        # A name against the rule: the server's own words, and no request made.
        self.visible("#script-name").send_keys("bad name")
        self.set_script("return 1\n")
        self.find("#script-save").click()
        refused = curl("-X", "PUT", "-H", "Accept: application/json", URL + "/api/v1/admin/scripts/bad%20name",
                       token=ADMIN, body="return 1\n")
        self.assertEqual(refused[0], 400)
        self.assertEqual(self.text_of("#script-name-error", "bad"), re.search(r'"message":"([^"]*)"', refused[1]).group(1))
        self.assertEqual(self.find("#script-name-error").text,
                         "bad script name 'bad name': use 1 to 128 bytes of letters, digits, '.', '_' and '-', "
                         "ending in '.lua', not starting with '.' or holding '..'")
        self.assertEqual(self.find("#script-name").get_attribute("aria-invalid"), "true")
        self.assertFalse(self.find("#script-result").is_displayed())
        name = self.find("#script-name")
        name.clear()
        name.send_keys("broken.lua")
        self.wait.until(lambda _: not self.find("#script-name-error").is_displayed())

        # A syntax error: Lua's message at its line, and nothing stored.
        self.set_script('local x = 1\nhttp.listen("broken", function()\n  return "never" +\nend)\n')
        self.assertEqual(self.save_script("compile"), "Not saved: broken.lua does not compile. Nothing was stored.")
        message = "scripts/broken.lua:4: unexpected symbol near 'end'"
        self.assertEqual(self.find("#script-result-message").text, message)
        self.assertEqual(self.marked_lines(), [[4, [message], True]])
        self.assertEqual(curl(URL + "/api/v1/admin/scripts/broken.lua", token=ADMIN),
                         (404, '{"ok":false,"error":{"kind":"http","message":"no script named \'broken.lua\'"}}'))
        self.assertIsNone(self.script_row("broken.lua"))
        self.assertEqual(call_endpoint("broken")[0], 404)
        self.top_shot("scripts-error")

        # A run that fails (422): the error at the line that raised it; what the run registered
        # is undone and nothing is stored.
        self.set_script('local x = 1\nhttp.listen("broken", function() return "never" end)\nlocal t = nil\nreturn t.field\n')
        self.assertEqual(self.marked_lines(), [])  # an edit clears the old mark
        self.assertEqual(self.save_script("failed"), "Not saved: the run of broken.lua failed (runtime). Nothing was stored.")
        message = "scripts/broken.lua:4: attempt to index a nil value (local 't')"
        self.assertEqual(self.find("#script-result-message").text, message)
        self.assertEqual(self.marked_lines(), [[4, [message], True]])
        self.assertEqual(curl(URL + "/api/v1/admin/scripts/broken.lua", token=ADMIN)[0], 404)
        self.assertEqual(call_endpoint("broken")[0], 404)
        self.assertIsNone(self.script_row("broken.lua"))

        # An error raised in a function the script calls: the line from the traceback's frame
        # in the script, since the message names none.
        self.set_script('local function check(v)\n  error({code = v})\nend\ncheck(7)\n')
        self.save_script("failed")
        self.assertEqual(self.find("#script-result-message").text, "(error object is a table value)")
        self.assertEqual(self.marked_lines(), [[2, ["(error object is a table value)"], True]])

        # A stored script that another administrator installed: a version that fails changes
        # nothing, and the endpoint goes on answering version 1.
        self.assertEqual(put_script("steady.lua", 'http.listen("steady", function() return "one" end)\n', token=other)[0], 201)
        self.find("#script-close").click()
        self.confirm("Discard the new script?")
        self.browser.refresh()
        self.visible('#scripts tr[data-script="steady.lua"] button').click()
        self.assertEqual(self.text_of("#script-title", "steady"), "steady.lua, version 1")
        self.set_script('http.listen("steady", function() return "two" end)\nerror("not today")\n')
        self.assertEqual(self.save_script("failed"),
                         "Not saved: the run of steady.lua failed (runtime). Nothing changed; version 1 stays current.")
        self.assertEqual(self.marked_lines(), [[2, ["scripts/steady.lua:2: not today"], True]])
        self.assertEqual(call_endpoint("steady"), (200, "one"))
        self.assertEqual(self.script_row("steady.lua")[2], "1")
        # The refused text is still in the editor, unsaved: opening the script again asks first.
        self.find('#scripts tr[data-script="steady.lua"] button').click()
        self.visible("#confirm")
        self.assertEqual(self.find("#confirm-text").text, 'Discard your changes to "steady.lua"? They were not saved.')
        self.find("#confirm button[value=cancel]").click()
        self.assertEqual(self.script_source(), 'http.listen("steady", function() return "two" end)\nerror("not today")\n')

        # Changed meanwhile: the other administrator installs version 2; saving over it is
        # refused (If-Match), and Reload shows what is current.
        self.assertEqual(put_script("steady.lua", 'http.listen("steady", function() return "two" end)\n', token=other)[0], 200)
        self.set_script('http.listen("steady", function() return "mine" end)\n')
        self.assertRegex(self.save_script("meanwhile"),
                         r"^Not saved: steady\.lua changed meanwhile \(now version 2, by other-admin, .+\)\. "
                         r"Reload it to see the change; your text stays in the editor until you do\.$")
        self.assertEqual(call_endpoint("steady"), (200, "two"))
        self.assertEqual(self.script_source(), 'http.listen("steady", function() return "mine" end)\n')
        self.find("#script-reload").click()
        self.assertEqual(self.text_of("#script-title", "version 2"), "steady.lua, version 2")
        self.assertEqual(self.script_source(), 'http.listen("steady", function() return "two" end)\n')
        self.assertFalse(self.find("#script-result").is_displayed())

        # A new script under a name that exists: refused (If-None-Match: *), never a new version.
        self.find("#script-new").click()
        self.visible("#script-name").send_keys("steady.lua")
        self.set_script('http.listen("steady", function() return "clobbered" end)\n')
        self.assertRegex(self.save_script("exists"),
                         r"^Not saved: a script named steady\.lua exists already \(version 2, by other-admin, .+\)\. "
                         r"Reload to open it; your text stays in the editor until you do\.$")
        self.assertEqual(call_endpoint("steady"), (200, "two"))
        self.assertIn('"current":2,', curl(URL + "/api/v1/admin/scripts/steady.lua/versions", token=ADMIN)[1])

    def test_scripts_disable_enable_and_delete_after_confirming(self):
        self.assertEqual(put_script("doorbell.lua", 'http.listen("doorbell", function() return "ding" end)\n')[0], 201)
        self.signed_in()
        self.open_scripts()
        self.visible('#scripts tr[data-script="doorbell.lua"] button').click()
        self.assertEqual(self.text_of("#script-title", "doorbell"), "doorbell.lua, version 1")

        self.assertEqual(self.visible("#script-toggle").text, "Disable")
        self.find("#script-toggle").click()
        self.assertEqual(self.text_of("#script-result-summary", "Disabled"),
                         "Disabled: doorbell.lua runs no more until enabled. Withdrawn: endpoint doorbell.")
        self.assertEqual(self.find("#script-title").text, "doorbell.lua, version 1 (disabled)")
        self.assertEqual(call_endpoint("doorbell")[0], 404)
        self.wait.until(lambda _: self.script_row("doorbell.lua")[1] == "disabled")
        self.assertEqual(self.script_row("doorbell.lua")[5], "nothing")

        self.assertEqual(self.find("#script-toggle").text, "Enable")
        self.find("#script-toggle").click()
        self.assertRegex(self.text_of("#script-result-summary", "Enabled"),
                         r"^Enabled: doorbell\.lua version 1 ran in [0-9.]+ ms\. Registered: endpoint doorbell\.$")
        self.assertEqual(call_endpoint("doorbell"), (200, "ding"))
        self.wait.until(lambda _: self.script_row("doorbell.lua")[1] == "enabled")

        # Delete asks first; Cancel keeps everything.
        self.find("#script-delete").click()
        self.visible("#confirm")
        self.assertEqual(self.find("#confirm-text").text,
                         'Delete the script "doorbell.lua" and its 1 kept version? What it registered '
                         "(endpoint doorbell) is withdrawn at once. This cannot be undone.")
        self.assertEqual(self.find("#confirm-ok").text, "Delete")
        self.find("#confirm button[value=cancel]").click()
        self.assertEqual(call_endpoint("doorbell"), (200, "ding"))
        self.assertEqual(curl(URL + "/api/v1/admin/scripts/doorbell.lua", token=ADMIN)[0], 200)

        self.find("#script-delete").click()
        self.confirm('Delete the script "doorbell.lua"')
        self.assertEqual(self.text_of("#scripts-message", "Deleted"), "Deleted doorbell.lua.")
        self.wait.until(lambda _: self.script_row("doorbell.lua") is None)
        self.assertFalse(self.find("#script-work").is_displayed())
        self.assertEqual(curl(URL + "/api/v1/admin/scripts/doorbell.lua", token=ADMIN),
                         (404, '{"ok":false,"error":{"kind":"http","message":"no script named \'doorbell.lua\'"}}'))
        self.assertEqual(call_endpoint("doorbell")[0], 404)

    def test_scripts_not_utf8_source_is_flagged(self):
        # A Latin-1 comment: Lua takes any bytes; the editor cannot show them as they are.
        # ("\udce9" is the byte 0xE9 once subprocess encodes the argument, surrogateescape.)
        self.assertEqual(put_script("latin1.lua", '-- caf\udce9\nhttp.listen("latin1", function() return "ok" end)\n')[0], 201)
        self.signed_in()
        self.open_scripts()
        self.visible('#scripts tr[data-script="latin1.lua"] button').click()
        self.assertEqual(self.text_of("#script-result-summary", "UTF-8"),
                         "latin1.lua is not UTF-8 text: the editor shows its other bytes as \ufffd, and saving from here "
                         "would store those instead. Change it with `luaexec script push` or the API.")
        self.assertEqual(self.script_source(), '-- caf\ufffd\nhttp.listen("latin1", function() return "ok" end)\n')

    def test_exec_only_token_sees_no_scripts(self):
        secret = make_token("no-scripts", "exec")
        self.browser.get(URL + "/#scripts")
        self.visible("#signin-token").send_keys(secret + Keys.ENTER)
        self.visible("#who-name")
        self.assertFalse(self.find('#nav a[data-page="scripts"]').is_displayed())
        self.visible("#page-console")  # the page asked for is not one it may see
        self.assertFalse(self.find("#page-scripts").is_displayed())
        self.assertEqual(curl(URL + "/api/v1/admin/scripts", token=secret)[0], 403)

    def test_scripts_and_audit_phone_sized(self):
        self.assertEqual(put_script("phone.lua", 'http.listen("phone", function() return "v1" end)\n')[0], 201)
        self.assertEqual(put_script("phone.lua", 'http.listen("phone", function() return "v2" end)\n')[0], 200)
        self.browser.set_window_size(390, 844)
        self.signed_in()
        self.open_scripts()
        self.visible('#scripts tr[data-script="phone.lua"] button').click()
        self.text_of("#script-title", "phone.lua")
        self.find('#script-versions tr[data-version="1"] button').click()
        self.text_of("#script-diff-summary", "removed")
        self.assertLessEqual(self.browser.execute_script("return document.documentElement.scrollWidth"), 390,
                             "the Scripts page scrolls sideways on a phone")
        self.browser.execute_script("document.querySelector('#script-side').scrollIntoView()")
        self.shot("scripts-phone")
        self.find('#nav a[data-page="audit"]').click()
        self.wait.until(lambda _: self.audit_rows())
        # Scrolled down to the script's versions, the next page still opens at its top.
        self.assertEqual(self.browser.execute_script("return window.scrollY"), 0)
        self.assertLessEqual(self.browser.execute_script("return document.documentElement.scrollWidth"), 390,
                             "the Audit page scrolls sideways on a phone")
        # Nor does its table, inside its box: a record is a block that wraps.
        self.assertEqual(self.browser.execute_script(
            "const box = document.querySelector('#audit-records').parentElement; return box.scrollWidth <= box.clientWidth"),
            True)
        self.shot("audit-phone")

    def test_phone_sized_screen(self):
        self.browser.set_window_size(390, 844)
        self.signed_in()
        self.run_chunk("return {name = 'phone', sizes = {390, 844}}")
        width = self.browser.execute_script("return document.documentElement.scrollWidth")
        self.assertLessEqual(width, 390, "the console scrolls sideways on a phone")
        self.shot("console-phone")
        self.find('#nav a[data-page="access"]').click()
        self.visible('#tokens tr[data-token="%s"]' % ADMIN_NAME)
        self.assertLessEqual(self.browser.execute_script("return document.documentElement.scrollWidth"), 390)
        self.shot("access-phone")
        # Endpoints as cards: each figure keeps its name.
        self.run_chunk_by_curl("http.listen('phone_card', function() return 1 end)")
        self.find('#nav a[data-page="endpoints"]').click()
        self.wait.until(lambda _: "phone_card" in self.find("#endpoints").text)
        card = next(row for row in self.browser.find_elements(By.CSS_SELECTOR, "#endpoints tbody tr") if "phone_card" in row.text)
        labels = self.browser.execute_script(
            "return Array.from(arguments[0].querySelectorAll('td'), (td) => getComputedStyle(td, '::before').content)", card)
        for label in ('"Since: "', '"Calls: "', '"Errors: "', '"Source: "'):
            self.assertIn(label, labels)
        self.assertLessEqual(self.browser.execute_script("return document.documentElement.scrollWidth"), 390)
        self.shot("endpoints-phone")


if __name__ == "__main__":
    unittest.main()
