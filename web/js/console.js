// Console: an editor (Debian's CodeMirror 5, Lua mode), a run streamed (SPEC E13: the output
// shows as the chunk prints it, then the JSON answer of E5/E6), the results as trees, the
// error's kind, message and traceback, and the runs of this tab as a history to reopen.

import { api, SignedOut } from "./session.js";
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
    // The run's own name, so that Interrupt ends this run whether it computes or waits in
    // `sleep` (a status id is not known to the page), and only this token's.
    this.runKey = crypto.randomUUID();
    $("#run").disabled = true;
    show($("#console-interrupt"), true);
    $("#run-state").textContent = "running…";
    const ticker = setInterval(() => {
      $("#run-state").textContent = `running… ${((performance.now() - started) / 1000).toFixed(1)} s`;
    }, 250);
    let record;
    try {
      // Streamed (SPEC E13): the output shows as the chunk prints it; the final event is the
      // JSON answer. Anything else (a refusal, nginx's own 413) is read as before.
      const answer = await api("/api/v1/exec/interactive.lua", {
        method: "POST", body: chunk, signal: this.running.signal, allowError: true,
        headers: { Accept: "text/event-stream, application/json", "Lua-Interrupt-Key": this.runKey },
      });
      const streamed = (answer.headers.get("Content-Type") ?? "").startsWith("text/event-stream");
      record = streamed ? await this.streamedRecord(answer) : await recordOf(answer);
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

  /** Reads a streamed answer: each `output` event is shown at once (the run's output so far),
   *  then the final `result` or `error` event becomes the record, with all the output. */
  async streamedRecord(answer) {
    let output = "";
    let final = null;
    const live = $("#result-output");
    live.textContent = "";
    show($("#result-empty"), false);
    show($("#result-body"), true);
    show($("#result-output-box"), true);
    show($("#result-error"), false);
    show($("#result-values-box"), false);
    $("#result-badge").textContent = "running";
    $("#result-badge").className = "badge";
    $("#result-elapsed").textContent = "";
    for await (const event of serverSentEvents(answer.body)) {
      if (event.name === "output") {
        output += text(JSON.parse(event.data));
        live.textContent = output;
      } else if (event.name === "result" || event.name === "error") {
        final = JSON.parse(event.data);
      }
    }
    if (!final) return { ok: false, kind: "connection", message: "the answer ended before its result", output };
    const timing = /lua;dur=([0-9.]+)/.exec(answer.headers.get("Server-Timing") ?? "");
    // A stream's head that went with its first output says 200 whatever the outcome: the final
    // event says how the run ended, and no HTTP status is shown beside it. A head sent with the
    // end (nothing was printed before) carries the outcome's own status.
    const status = answer.status === 200 ? undefined : answer.status;
    const record = recordOfJSON(final, status, timing ? Number(timing[1]) : undefined);
    record.output = output + record.output;
    return record;
  }

  async interrupt() {
    if (!this.running) return;
    try {
      const answer = await api(`/api/v1/console/interrupt?key=${encodeURIComponent(this.runKey)}`, { method: "POST" });
      const { interrupted } = await answer.json();
      // Found running, asleep or queued; not found, it has just ended (its answer is on its way).
      if (!interrupted && this.running) report(new Error("nothing to interrupt: the run has just ended"));
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
  return recordOfJSON(await answer.json(), answer.status, elapsedMs);
}

/** The record of luaexecd's JSON answer (SPEC E5, E6), whole or as a stream's final event. */
function recordOfJSON(body, status, elapsedMs) {
  if (body.ok) {
    return { ok: true, results: body.results, output: text(body.output), elapsedMs: body.elapsed_ms ?? elapsedMs };
  }
  return {
    ok: false,
    status,
    kind: body.error.kind,
    message: body.error.message,
    traceback: body.error.traceback,
    output: text(body.output ?? ""),
    elapsedMs,
  };
}

/** The events of a Server-Sent Events body as they arrive: `{name, data}` for each block of
 *  `event:` and `data:` lines that a blank line ends (luaexecd writes one data line, JSON). */
async function* serverSentEvents(stream) {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let pending = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    pending += value;
    let end;
    while ((end = pending.indexOf("\n\n")) >= 0) {
      const block = pending.slice(0, end);
      pending = pending.slice(end + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event: ")) name = line.slice(7);
        else if (line.startsWith("data: ")) data.push(line.slice(6));
      }
      if (data.length > 0) yield { name, data: data.join("\n") };
    }
  }
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
