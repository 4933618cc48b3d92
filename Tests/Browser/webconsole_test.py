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

import os
import re
import subprocess
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
        self.set_chunk("while true do end")
        self.find("#run").click()
        self.text_of("#run-state", "running")
        self.assertFalse(self.find("#console-interrupt").is_displayed())  # interrupt is admin's
        curl(URL + "/api/v1/admin/interrupt", "-X", "POST", token=ADMIN)
        self.assertEqual(self.text_of("#result-badge", "interrupted"), "interrupted")

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
        spinner = subprocess.Popen(
            ["curl", "-sk", "-D", "-", "-H", "Authorization: Bearer " + ADMIN, "--data-binary", "while true do end",
             URL + "/api/v1/exec/interactive.lua"], stdout=subprocess.PIPE, text=True)
        try:
            self.text_of("#st-running", r"^%s for \d" % re.escape(ADMIN_NAME))
            self.find("#status-interrupt").click()
            self.confirm("Interrupt the running evaluation?")
            answer, _ = spinner.communicate(timeout=15)
        finally:
            spinner.kill()
        self.assertIn("HTTP/1.1 500", answer)
        self.assertIn("X-Lua-Error: interrupted", answer)
        self.assertEqual(self.text_of("#notice", "interrupted"), "The running evaluation was interrupted.")
        self.text_of("#st-running", "^nothing$")
        self.assertIn("interrupted", self.find("#outcomes").text)

    def test_interrupt_from_the_console(self):
        self.signed_in()
        self.set_chunk("while true do end")
        self.find("#run").click()
        self.visible("#console-interrupt").click()
        self.assertEqual(self.text_of("#result-badge", "interrupted"), "interrupted")
        self.assertIn("interrupted", self.find("#error-message").text)

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
        self.signed_in()
        self.find('#nav a[data-page="endpoints"]').click()
        table = self.text_of("#endpoints", "status.lua")
        self.assertIn("command?action=toast", table)
        self.assertIn("toast(text: string, times?: integer)", table)
        self.assertIn("30-example.lua:", table)
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


if __name__ == "__main__":
    unittest.main()
