// Console: an editor (Debian's CodeMirror 5, Lua mode), a run in JSON mode (SPEC E5), the
// output, the results as trees, the error's kind, message and traceback, and the runs of this
// tab as a history to reopen.

import { api, session, SignedOut } from "./session.js";
import { $, el, holding, show, report } from "./ui.js";
import { attachCompletion, GlobalsPanel } from "./completion.js";

const HISTORY_KEY = "luaexec.history";
const HISTORY_LIMIT = 50;

export class ConsolePage {
  constructor() {
    this.editor = null;
    this.running = null;
    this.history = JSON.parse(sessionStorage.getItem(HISTORY_KEY) ?? "[]");
    $("#run").addEventListener("click", () => this.run());
    $("#console-interrupt").addEventListener("click", () => this.interrupt());
  }

  async enter() {
    if (!this.editor) {
      this.editor = window.CodeMirror.fromTextArea($("#chunk"), {
        mode: "lua",
        lineNumbers: true,
        matchBrackets: true,
        indentUnit: 2,
        viewportMargin: Infinity,
        lineWrapping: true,
        extraKeys: {
          "Ctrl-Enter": () => this.run(),
          "Cmd-Enter": () => this.run(),
          // Esc leaves the editor, so that Tab moves on again (keyboard use).
          Esc: (cm) => cm.getInputField().blur(),
        },
      });
      this.editor.getInputField().setAttribute("aria-label", "Lua chunk (Ctrl+Enter runs it)");
      attachCompletion(this.editor);
      this.globals = new GlobalsPanel(this.editor);
    }
    this.globals.refresh();
    this.renderHistory();
    this.editor.refresh();
    this.editor.focus();
  }

  signedOut() {
    this.history = [];
    sessionStorage.removeItem(HISTORY_KEY);
    this.renderHistory();
    show($("#result-body"), false);
    show($("#result-empty"), true);
  }

  async run() {
    if (this.running || !this.editor) return;
    const chunk = this.editor.getValue();
    const started = performance.now();
    this.running = new AbortController();
    $("#run").disabled = true;
    show($("#console-interrupt"), session.can("admin"));
    $("#run-state").textContent = "running…";
    const ticker = setInterval(() => {
      $("#run-state").textContent = `running… ${((performance.now() - started) / 1000).toFixed(1)} s`;
    }, 250);
    let record;
    try {
      const answer = await api("/api/v1/exec/interactive.lua", {
        method: "POST", body: chunk, signal: this.running.signal, allowError: true,
      });
      record = await recordOf(answer);
    } catch (error) {
      if (error instanceof SignedOut) return;
      record = { ok: false, kind: "connection", message: error.message, output: "" };
    } finally {
      clearInterval(ticker);
      this.running = null;
      $("#run").disabled = false;
      show($("#console-interrupt"), false);
      $("#run-state").textContent = "";
    }
    record.roundTripMs = performance.now() - started;
    record.chunk = chunk;
    record.at = new Date().toISOString();
    this.remember(record);
    this.render(record);
    this.globals.refresh();
  }

  async interrupt() {
    try {
      const answer = await api("/api/v1/admin/interrupt", { method: "POST" });
      const { interrupted } = await answer.json();
      if (!interrupted) $("#run-state").textContent = "nothing was running (yet): try again";
    } catch (error) {
      report(error);
    }
  }

  render(record) {
    show($("#result-empty"), false);
    show($("#result-body"), true);
    const badge = $("#result-badge");
    badge.textContent = record.ok ? "ok" : record.kind;
    badge.className = "badge " + (record.ok ? "ok" : "failed");
    const parts = [];
    if (record.elapsedMs !== undefined) parts.push(`${record.elapsedMs} ms in Lua`);
    parts.push(`${Math.round(record.roundTripMs)} ms round trip`);
    if (record.status) parts.push(`HTTP ${record.status}`);
    $("#result-elapsed").textContent = parts.join(" · ");

    show($("#result-error"), !record.ok);
    $("#error-message").textContent = record.ok ? "" : record.message;
    $("#error-traceback").textContent = record.traceback ?? "";
    show($("#error-traceback-box"), Boolean(record.traceback));

    $("#result-output").textContent = record.output;
    show($("#result-output-box"), record.output !== "");

    const list = $("#result-values");
    list.replaceChildren(...(record.results ?? []).map((value) => holding("li", tree(value))));
    show($("#result-values-box"), record.ok && record.results.length > 0);
  }

  remember(record) {
    this.history.push(record);
    while (this.history.length > HISTORY_LIMIT) this.history.shift();
    try {
      sessionStorage.setItem(HISTORY_KEY, JSON.stringify(this.history));
    } catch {
      // storage full (large results): the history stays in memory only
    }
    this.renderHistory();
  }

  renderHistory() {
    const list = $("#history");
    list.replaceChildren();
    for (const record of this.history) {
      const button = el("button", null, { type: "button", class: "history-entry" });
      button.append(
        el("span", record.ok ? "ok" : record.kind, { class: "badge " + (record.ok ? "ok" : "failed") }),
        el("code", firstLine(record.chunk)),
        el("time", new Date(record.at).toLocaleTimeString(), { datetime: record.at }));
      button.addEventListener("click", () => {
        this.editor.setValue(record.chunk);
        this.render(record);
        this.editor.focus();
      });
      button.title = record.chunk;
      list.prepend(holding("li", button));
    }
    show($("#history-empty"), this.history.length === 0);
  }
}

/** What a run answered, whatever answered it: luaexecd's JSON (SPEC E5, E6) or nginx's text
 *  (413, 429). */
async function recordOf(answer) {
  const type = answer.headers.get("Content-Type") ?? "";
  const timing = /lua;dur=([0-9.]+)/.exec(answer.headers.get("Server-Timing") ?? "");
  const elapsedMs = timing ? Number(timing[1]) : undefined;
  if (!type.startsWith("application/json")) {
    return { ok: false, kind: "http", status: answer.status, message: (await answer.text()).trim(), output: "" };
  }
  const body = await answer.json();
  if (body.ok) {
    return { ok: true, results: body.results, output: text(body.output), elapsedMs: body.elapsed_ms ?? elapsedMs };
  }
  return {
    ok: false,
    status: answer.status,
    kind: body.error.kind,
    message: body.error.message,
    traceback: body.error.traceback,
    output: text(body.output ?? ""),
    elapsedMs,
  };
}

/** A Lua string as JSON carries it: a string, or `{"base64": ...}` for bytes that are not UTF-8
 *  (shown decoded, with U+FFFD for what is not text). */
function text(value) {
  if (typeof value === "string") return value;
  const bytes = Uint8Array.from(atob(value.base64), (c) => c.charCodeAt(0));
  return new TextDecoder().decode(bytes);
}

function firstLine(chunk) {
  const line = chunk.trim().split("\n")[0];
  return line.length > 60 ? line.slice(0, 59) + "…" : line || "(empty)";
}

/** One result as a tree: scalars as Lua would write them, tables (arrays and objects in E5's
 *  JSON) as collapsible lists. */
function tree(value) {
  if (value === null) return el("span", "nil", { class: "v-nil" });
  if (typeof value === "boolean") return el("span", String(value), { class: "v-bool" });
  if (typeof value === "number") return el("span", String(value), { class: "v-num" });
  if (typeof value === "string") return el("span", JSON.stringify(value), { class: "v-str" });
  const entries = Array.isArray(value) ? value.map((item, i) => [i + 1, item]) : Object.entries(value);
  if (entries.length === 0) return el("span", "{}", { class: "v-table" });
  const box = el("details", null, { open: "" });
  box.append(el("summary", `table: ${entries.length} ${entries.length === 1 ? "entry" : "entries"}`, { class: "v-table" }));
  const list = el("ul");
  for (const [key, item] of entries) {
    const row = el("li");
    row.append(el("span", typeof key === "number" ? `[${key}]` : key, { class: "v-key" }), el("span", " = "), tree(item));
    list.append(row);
  }
  box.append(list);
  return box;
}
