// Scripts: the stored scripts of SPEC V8 and M6 (/api/v1/admin/scripts, docs/scripts.md): the
// list, an editor to create or change one (saved and applied at once; a compile or run error
// shown at its line, nothing changed), the kept versions with a diff against the current one,
// Roll back, Enable/Disable, and Delete after a confirmation.

import { api, SignedOut } from "./session.js";
import { $, el, holding, show, report, confirmAction, formatTime } from "./ui.js";
import { lineDiff, withContext } from "./diff.js";

const BASE = "/api/v1/admin/scripts";

/** The server's rule for a name (ScriptStore.nameProblem), checked here first so that a typo
 *  costs no request; the server's 400 is shown too should the two ever differ. */
const NAME_RULE =
  "use 1 to 128 bytes of letters, digits, '.', '_' and '-', ending in '.lua', not starting with '.' or holding '..'";

export function nameProblem(name) {
  const ok = name !== "" && new TextEncoder().encode(name).length <= 128 && /^[A-Za-z0-9._-]+$/.test(name) &&
    name.endsWith(".lua") && !name.startsWith(".") && !name.includes("..");
  return ok ? null : `bad script name '${name}': ${NAME_RULE}`;
}

const path = (name, rest = "") => `${BASE}/${encodeURIComponent(name)}${rest}`;

export class ScriptsPage {
  constructor() {
    this.editor = null;
    this.record = null;      // the open script's record as the server last answered it; null: a new script
    this.base = "";          // the source the editor started from, to tell an edit from none
    this.versions = [];
    this.errorMark = null;   // the line marked with a compile or run error
    this.busy = false;
    this.reloadName = null;  // the script a 412 said changed meanwhile
    $("#script-new").addEventListener("click", () => this.openNew().catch(report));
    $("#script-close").addEventListener("click", () => this.close().catch(report));
    $("#script-save").addEventListener("click", () => this.save().catch(report));
    $("#script-reload").addEventListener("click", () => this.open(this.reloadName, { force: true }).catch(report));
    $("#script-toggle").addEventListener("click", () => this.toggle().catch(report));
    $("#script-rollback").addEventListener("click", () => this.rollback().catch(report));
    $("#script-delete").addEventListener("click", () => this.remove().catch(report));
    $("#script-name").addEventListener("change", () => this.checkName());
    $("#script-name").addEventListener("input", () => {
      // A shown problem goes as soon as the name is right; a new one waits for the field to be left.
      if (!$("#script-name-error").hidden) this.checkName();
    });
  }

  async enter() {
    await this.load();
    this.editor?.refresh();
  }

  signedOut() {
    this.record = null;
    this.base = "";
    this.editor?.setValue("");
    this.clearResult();
    show($("#script-work"), false);
    show($("#scripts-message"), false);
    $("#scripts tbody").replaceChildren();
  }

  // -- the list --------------------------------------------------------------------------------

  async load() {
    const { scripts } = await (await api(BASE)).json();
    $("#scripts tbody").replaceChildren(...scripts.map((script) => this.row(script)));
    show($("#scripts"), scripts.length > 0);
    show($("#scripts-empty"), scripts.length === 0);
    return scripts;
  }

  row(script) {
    const open = el("button", script.name, { type: "button", class: "link", "aria-label": `Open ${script.name}` });
    open.addEventListener("click", () => this.open(script.name).catch(report));
    const run = script.last_run;
    const lastRun = !run
      ? el("td", script.enabled ? "not run yet" : "–", { "data-label": "Last run", class: "muted" })
      : run.ok
        ? el("td", `ok, ${run.elapsed_ms} ms`, { "data-label": "Last run", title: `version ${run.version}, ${formatTime(run.at)}` })
        : el("td", `${run.error.kind}: ${run.error.message}`,
          { "data-label": "Last run", class: "error", title: `version ${run.version}, ${formatTime(run.at)}` });
    const row = holding("tr",
      holding("td", open),
      holding("td", el("span", script.enabled ? "enabled" : "disabled", { class: "badge " + (script.enabled ? "ok" : "off") })),
      el("td", script.version, { class: "num", "data-label": "Version" }),
      el("td", `${script.installed_by}, ${formatTime(script.installed_at)}`,
        { "data-label": "Installed", title: `last change by ${script.updated_by}, ${formatTime(script.updated_at)}` }),
      lastRun,
      holding("td", ...registrations(script.registered)));
    row.cells[5].dataset.label = "Registered";
    row.dataset.script = script.name;
    if (this.record?.name === script.name) row.classList.add("open");
    return row;
  }

  // -- the editor ------------------------------------------------------------------------------

  /** Builds the editor the first time it is shown: CodeMirror measures itself, so it is made
   *  visible first. The Console's setup, with a gutter for the error marker. */
  ensureEditor() {
    show($("#script-work"), true);
    if (this.editor) return;
    this.editor = window.CodeMirror.fromTextArea($("#script-source"), {
      mode: "lua",
      lineNumbers: true,
      matchBrackets: true,
      indentUnit: 2,
      viewportMargin: Infinity,
      lineWrapping: true,
      gutters: ["CodeMirror-linenumbers", "script-error-gutter"],
      extraKeys: {
        // Esc leaves the editor, so that Tab moves on again (keyboard use).
        Esc: (cm) => cm.getInputField().blur(),
      },
    });
    this.editor.getInputField().setAttribute("aria-label", "Lua source of the script");
    this.editor.on("change", () => {
      // The marked error belongs to the text that was sent; once the text changes it may not.
      this.clearErrorMark();
      this.showDirty();
    });
  }

  openName() {
    return this.record?.name ?? null;
  }

  dirty() {
    return this.editor !== null && !$("#script-work").hidden && this.editor.getValue() !== this.base;
  }

  /** Asks before edits are thrown away; true when there are none or they may go. */
  async mayDiscard() {
    if (!this.dirty()) return true;
    const what = this.record ? `your changes to "${this.record.name}"` : "the new script";
    return confirmAction(`Discard ${what}? They were not saved.`, "Discard");
  }

  async openNew() {
    if (!(await this.mayDiscard())) return;
    this.ensureEditor();
    this.record = null;
    this.versions = [];
    this.base = "";
    $("#script-title").textContent = "New script";
    show($("#script-name-field"), true);
    $("#script-name").value = "";
    show($("#script-name-error"), false);
    $("#script-name").removeAttribute("aria-invalid");
    show($("#script-side"), false);
    $("#script-work").classList.add("alone");
    this.editor.setValue("");
    this.clearResult();
    this.markOpenRow();
    this.editor.refresh();
    $("#script-name").focus();
  }

  /** Opens the stored script `name`: its current source in the editor, its versions beside.
   *  Unsaved edits are asked about first, even for the script already open (opening it again
   *  loads what is stored); `force`: the person asked for exactly that (Reload). */
  async open(name, { force = false } = {}) {
    if (!force && !(await this.mayDiscard())) return;
    const record = await (await api(path(name))).json();
    this.ensureEditor();
    this.clearResult();
    this.showRecord(record);
    this.base = source(record.source);
    this.editor.setValue(this.base);
    this.editor.clearHistory();
    await this.loadVersions();
    this.editor.refresh();
    this.showDirty();
    if (typeof record.source !== "string") {
      this.result(`${name} is not UTF-8 text: the editor shows its other bytes as �, and saving from here would ` +
        "store those instead. Change it with `luaexec script push` or the API.", { failed: true });
    }
  }

  /** The open script's record, as the title, the buttons and the row that is open show it. */
  showRecord(record) {
    this.record = record;
    $("#script-title").textContent =
      `${record.name}, version ${record.version}${record.enabled ? "" : " (disabled)"}`;
    show($("#script-name-field"), false);
    show($("#script-side"), true);
    $("#script-work").classList.remove("alone");
    $("#script-toggle").textContent = record.enabled ? "Disable" : "Enable";
    this.markOpenRow();
  }

  markOpenRow() {
    for (const row of $("#scripts tbody").rows) row.classList.toggle("open", row.dataset.script === this.openName());
  }

  showDirty() {
    $("#script-state").textContent = this.record && this.dirty() ? `changed since version ${this.record.version}` : "";
  }

  async close() {
    if (!(await this.mayDiscard())) return;
    this.record = null;
    this.base = "";
    this.editor.setValue("");
    show($("#script-work"), false);
    this.markOpenRow();
  }

  checkName() {
    const problem = nameProblem($("#script-name").value);
    $("#script-name-error").textContent = problem ?? "";
    show($("#script-name-error"), problem !== null);
    if (problem) $("#script-name").setAttribute("aria-invalid", "true");
    else $("#script-name").removeAttribute("aria-invalid");
    return problem === null;
  }

  /** Save and apply: PUT the editor's text. The server compiles and runs it; a version that
   *  fails is not kept, and its error is shown at its line. `If-Match` with the SHA-256 the
   *  editor started from (or `If-None-Match: *` for a new name) makes a change made meanwhile
   *  by someone else a 412, never a silent overwrite. */
  async save() {
    if (this.busy) return;
    const creating = this.record === null;
    const name = creating ? $("#script-name").value : this.record.name;
    if (creating && !this.checkName()) {
      $("#script-name").focus();
      return;
    }
    const text = this.editor.getValue();
    this.clearResult();
    const headers = creating ? { "If-None-Match": "*" } : { "If-Match": `"${this.record.sha256}"` };
    const answer = await this.during("saving and running…",
      () => api(path(name), { method: "PUT", body: text, headers, allowError: true }));
    if (answer.ok) {
      const result = await answer.json();
      this.base = text;
      this.showRecord(result.script);
      if (!result.changed) {
        this.result(`Unchanged: ${name} version ${result.script.version} already has this source; nothing ran.`);
      } else {
        this.result(`Saved and applied: ${name} version ${result.script.version}${answer.status === 201 ? " (new)" : ""}` +
          `, ran in ${result.run.elapsed_ms} ms. ${holds(result)}`, { output: output(result.run.output) });
      }
      await Promise.all([this.load(), this.loadVersions()]);
      this.showDirty();
      return;
    }
    await this.refusal(answer, {
      verb: "saved",
      current: creating ? "Nothing was stored." : `Nothing changed; version ${this.record.version} stays current.`,
      name,
      markLines: true,
    });
  }

  /** A refused change, shown where it belongs: a syntax or run error in the result box and at
   *  its line in the editor (`markLines`: the editor holds the text that ran), a 412 with a way
   *  to reload, anything else (a bad name, 413) as the server said it. */
  async refusal(answer, { verb, current, name, markLines }) {
    // luaexecd answers JSON; nginx's own refusals (413, 429) are text.
    const json = (answer.headers.get("Content-Type") ?? "").startsWith("application/json");
    const body = json ? await answer.json() : null;
    const text = json ? "" : (await answer.text()).trim();
    const error = body?.error;
    if (answer.status === 412 && error?.kind === "precondition") {
      const now = body.current;
      const when = now ? `version ${now.version}, by ${now.updated_by}, ${formatTime(now.updated_at)}` : "";
      this.result(!now ? `Not ${verb}: ${name} was deleted meanwhile.`
        : this.record === null
          ? `Not ${verb}: a script named ${name} exists already (${when}). ` +
            "Reload to open it; your text stays in the editor until you do."
          : `Not ${verb}: ${name} changed meanwhile (now ${when}). ` +
            "Reload it to see the change; your text stays in the editor until you do.",
        { failed: true, message: error.message });
      this.reloadName = now ? now.name : null;
      show($("#script-reload"), Boolean(now));
      return;
    }
    if (error && (answer.status === 400 || answer.status === 422) && error.kind !== "http") {
      const what = error.kind === "syntax" ? `${name} does not compile` : `the run of ${name} failed (${error.kind})`;
      this.result(`Not ${verb}: ${what}. ${current}`,
        { failed: true, message: error.message, traceback: error.traceback, output: output(body.output ?? "") });
      if (markLines) this.markError(name, error);
      return;
    }
    const refused = error?.message?.trim() ?? (text || `HTTP ${answer.status}`);
    if (answer.status === 400 && this.record === null) {
      // The server's rule for a name, should it differ from the page's.
      $("#script-name-error").textContent = refused;
      show($("#script-name-error"), true);
    }
    this.result(`Not ${verb}: ${refused}`, { failed: true });
  }

  async loadVersions() {
    if (!this.record) return;
    const answer = await (await api(path(this.record.name, "/versions"))).json();
    this.versions = answer.versions;
    $("#script-versions tbody").replaceChildren(...this.versions.map((version) => this.versionRow(version)));
    const previous = this.versions.find((version) => version.version < this.record.version);
    $("#script-rollback").textContent = previous ? `Roll back to version ${previous.version}` : "Roll back";
    $("#script-rollback").disabled = !previous;
    $("#script-rollback").title = previous ? "" : "no older version is kept";
    show($("#script-diff-box"), false);
  }

  versionRow(version) {
    const label = holding("td", el("span", `version ${version.version}`, { class: "nowrap" }));
    if (version.current) label.append(" ", el("span", "current", { class: "badge ok" }));
    label.append(el("div", version.sha256.slice(0, 12), { class: "mono small muted", title: `SHA-256 ${version.sha256}` }));
    const action = holding("td");
    action.className = "version-actions";
    if (!version.current) {
      const diff = el("button", "Diff", {
        type: "button", class: "small", "aria-label": `Diff version ${version.version} against the current one`,
      });
      diff.addEventListener("click", () => this.diff(version.version).catch(report));
      // Any kept version, older or newer (after a roll back, the way forward again), as
      // `POST …/rollback?version=N` takes it.
      const use = el("button", "Make current", {
        type: "button", class: "small", "aria-label": `Make version ${version.version} current`,
      });
      use.addEventListener("click", () => this.rollback(version.version).catch(report));
      action.append(diff, use);
    }
    const row = holding("tr",
      label,
      holding("td", el("div", version.installed_by), el("div", formatTime(version.installed_at), { class: "small muted nowrap" })),
      action);
    row.dataset.version = version.version;
    return row;
  }

  /** Version `number` against the current one, line by line: what the current version removed
   *  and added. */
  async diff(number) {
    const name = this.record.name;
    const [old, now] = await Promise.all([
      api(path(name, `?version=${number}`)).then((answer) => answer.json()),
      api(path(name)).then((answer) => answer.json()),
    ]);
    const ops = lineDiff(source(old.source), source(now.source));
    const added = ops.filter((op) => op.kind === "add").length, removed = ops.filter((op) => op.kind === "del").length;
    $("#script-diff-title").textContent = `Version ${number} → version ${now.version} (current)`;
    $("#script-diff-summary").textContent = added || removed
      ? `${removed} ${removed === 1 ? "line" : "lines"} removed, ${added} added`
      : source(old.source) === source(now.source)
        ? "The same source as the current version."
        : "The same lines; only the newline at the end differs.";
    $("#script-diff").replaceChildren(...withContext(ops).map(diffLine));
    show($("#script-diff-box"), true);
    $("#script-diff-box").scrollIntoView({ block: "nearest" });
  }

  // -- changes to a stored script ----------------------------------------------------------------

  /** Runs a kept version and makes it current: `version`, or without it the one before the
   *  current version (the API's default, so that pressing again goes one further back). */
  async rollback(version) {
    const name = this.record.name, from = this.record.version;
    const query = version === undefined ? "" : `?version=${version}`;
    const answer = await this.during("rolling back…",
      () => api(path(name, "/rollback" + query), { method: "POST", allowError: true }));
    await this.changed(answer, "rolled back", (result) =>
      `${result.script.version < from ? "Rolled back" : "Made current"}: ${name} version ${result.script.version} ` +
      `is current again (was ${from}), ran in ${result.run.elapsed_ms} ms. ${holds(result)}`);
  }

  async toggle() {
    const name = this.record.name, enabling = !this.record.enabled;
    const answer = await this.during(enabling ? "enabling…" : "disabling…",
      () => api(path(name, enabling ? "/enable" : "/disable"), { method: "POST", allowError: true }));
    await this.changed(answer, enabling ? "enabled" : "disabled", (result) => enabling
      ? `Enabled: ${name} version ${result.script.version} ran in ${result.run.elapsed_ms} ms. ${holds(result)}`
      : `Disabled: ${name} runs no more until enabled. ` +
        `Withdrawn: ${result.withdrawn.map((r) => `${r.kind} ${r.name}`).join(", ") || "nothing"}.`);
  }

  /** After a rollback, enable or disable: the record, the list and the versions as the server
   *  now has them. The editor follows the current version unless it holds edits. */
  async changed(answer, verb, summary) {
    if (!answer.ok) {
      await this.refusal(answer, {
        verb, name: this.record.name, current: `Nothing changed; version ${this.record.version} stays current.`,
        markLines: false,
      });
      return;
    }
    const result = await answer.json();
    const keepEdits = this.dirty();
    this.clearResult();
    this.showRecord(result.script);
    this.result(result.changed ? summary(result) : `Unchanged: ${result.script.name} was already ${verb}.`,
      { output: output(result.run?.output ?? "") });
    if (!keepEdits) {
      const current = await (await api(path(result.script.name))).json();
      this.base = source(current.source);
      this.editor.setValue(this.base);
    }
    await Promise.all([this.load(), this.loadVersions()]);
    this.showDirty();
  }

  async remove() {
    const record = this.record;
    const kept = this.versions.length;
    const withdrawn = record.registered.length
      ? ` What it registered (${record.registered.map((r) => `${r.kind} ${r.name}`).join(", ")}) is withdrawn at once.`
      : "";
    const sure = await confirmAction(
      `Delete the script "${record.name}" and its ${kept} kept ${kept === 1 ? "version" : "versions"}?${withdrawn} ` +
      "This cannot be undone.", "Delete");
    if (!sure) return;
    await api(path(record.name), { method: "DELETE" });
    this.base = "";
    this.record = null;
    this.editor.setValue("");
    show($("#script-work"), false);
    $("#scripts-message").textContent = `Deleted ${record.name}.`;
    show($("#scripts-message"), true);
    await this.load();
  }

  /** Runs `call` with the buttons off and `doing` said beside them. */
  async during(doing, call) {
    this.busy = true;
    const buttons = ["#script-save", "#script-toggle", "#script-rollback", "#script-delete"].map((id) => $(id));
    const were = buttons.map((button) => button.disabled);
    for (const button of buttons) button.disabled = true;
    $("#script-state").textContent = doing;
    show($("#scripts-message"), false);
    try {
      return await call();
    } catch (error) {
      if (!(error instanceof SignedOut)) this.result(`Not done: ${error.message}`, { failed: true });
      throw error;
    } finally {
      this.busy = false;
      buttons.forEach((button, index) => (button.disabled = were[index]));
      $("#script-state").textContent = "";
    }
  }

  // -- the result box and the error's line ----------------------------------------------------

  result(summary, { failed = false, message, traceback, output = "" } = {}) {
    const box = $("#script-result");
    box.className = "script-result " + (failed ? "failed" : "ok");
    $("#script-result-summary").textContent = summary;
    $("#script-result-message").textContent = message ?? "";
    show($("#script-result-message"), Boolean(message));
    $("#script-result-traceback").textContent = traceback ?? "";
    show($("#script-result-traceback-box"), Boolean(traceback));
    $("#script-result-output").textContent = output;
    show($("#script-result-output-box"), output !== "");
    show(box, true);
    // The outcome of what was just pressed, on screen even when the editor is long.
    box.scrollIntoView({ block: "nearest" });
  }

  clearResult() {
    show($("#script-result"), false);
    show($("#script-reload"), false);
    this.clearErrorMark();
  }

  /** Marks the line Lua's message names (`scripts/NAME:LINE:`), or failing that the first line
   *  of this script in the traceback, and shows the message under it. */
  markError(name, error) {
    this.clearErrorMark();
    const line = errorLine(name, error.message, error.traceback);
    if (line === null) return;
    const cm = this.editor;
    const index = Math.min(line, cm.lineCount()) - 1;
    const handle = cm.getLineHandle(index);
    cm.addLineClass(handle, "background", "script-error-line");
    cm.setGutterMarker(handle, "script-error-gutter", el("span", "●", { class: "script-error-marker", "aria-hidden": "true" }));
    const message = el("div", error.message, { class: "script-error-widget" });
    const widget = cm.addLineWidget(handle, message, { coverGutter: false, noHScroll: true });
    this.errorMark = { handle, widget };
    cm.scrollIntoView({ line: index, ch: 0 }, 60);
  }

  clearErrorMark() {
    if (!this.errorMark) return;
    const { handle, widget } = this.errorMark;
    this.errorMark = null;
    this.editor.removeLineClass(handle, "background", "script-error-line");
    this.editor.setGutterMarker(handle, "script-error-gutter", null);
    widget.clear();
  }
}

/** The line (1-based) a Lua error names in the script `name`: from the message
 *  (`scripts/doorbell.lua:3: boom`), else from the first frame of the traceback in the script
 *  (an error value that is no string, `error(msg, 0)`, an error raised in a library). */
export function errorLine(name, message, traceback) {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  const at = new RegExp(`scripts/${escaped}:(\\d+):`);
  const found = at.exec(message ?? "") ?? at.exec(traceback ?? "");
  return found ? Number(found[1]) : null;
}

function registrations(list) {
  if (!list.length) return [el("span", "nothing", { class: "muted" })];
  return list.map((r) => el("code", r.kind === "action" ? `action ${r.name}` : `/api/v1/exec/${r.name}`, { class: "registered" }));
}

/** What a change's answer says the script now holds and what it let go. */
function holds(result) {
  const list = (items) => items.map((r) => `${r.kind} ${r.name}`).join(", ");
  let text = `Registered: ${list(result.script.registered) || "nothing"}.`;
  if (result.withdrawn.length) text += ` Withdrawn: ${list(result.withdrawn)}.`;
  return text;
}

function diffLine(op) {
  if (op.kind === "skip") {
    return el("li", `… ${op.count} unchanged ${op.count === 1 ? "line" : "lines"}`, { class: "diff-skip", "data-kind": "skip" });
  }
  const mark = { same: " ", del: "-", add: "+" }[op.kind];
  const line = holding("li",
    el("span", op.old ?? "", { class: "ln", "aria-hidden": "true" }),
    el("span", op.new ?? "", { class: "ln", "aria-hidden": "true" }),
    el("span", mark, { class: "mark", "aria-label": { same: "unchanged", del: "removed", add: "added" }[op.kind] }),
    el("code", op.text));
  line.className = "diff-" + op.kind;
  line.dataset.kind = op.kind;
  return line;
}

/** A Lua string as the API carries it in JSON: a string, or `{"base64": ...}` for bytes that
 *  are not UTF-8 (shown decoded, with U+FFFD for what is not text). */
function source(value) {
  if (typeof value === "string") return value;
  const bytes = Uint8Array.from(atob(value.base64), (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

function output(value) {
  return source(value ?? "");
}
