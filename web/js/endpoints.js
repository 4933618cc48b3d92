// Endpoints: the registry of SPEC V4 (GET /api/v1/admin/endpoints), what `luaexec endpoints`
// shows on the box.

import { api } from "./session.js";
import { $, el, holding, show, formatTime } from "./ui.js";

export class EndpointsPage {
  async enter() {
    const registry = await (await api("/api/v1/admin/endpoints")).json();
    $("#ep-switches").textContent =
      `interactive.lua: ${registry.interactive ? "on" : "off"} · Action URLs: ${registry.actions ? "on" : "off"}`;
    $("#endpoints tbody").replaceChildren(...registry.endpoints.map(row));
    show($("#endpoints"), registry.endpoints.length > 0);
    show($("#endpoints-empty"), registry.endpoints.length === 0);
  }
}

function row(entry) {
  const origin = entry.registered_by;
  // A stored script carries its version (docs/scripts.md); an init script is a path.
  const by = origin.version !== undefined
    ? `script ${origin.script} v${origin.version}:${origin.line}`
    : origin.script !== undefined
      ? `${origin.script}:${origin.line}`
      : `token ${origin.token ?? "(unknown)"}`;
  const name = holding("td", el("code", entry.kind === "action" ? `command?action=${entry.name}` : entry.name));
  if (entry.kind === "timer") {
    // SPEC V9: when it runs, and how its last run failed.
    const when = entry.interval_seconds === null ? "once" : `every ${entry.interval_seconds} s`;
    const next = `next in ${(entry.due_in_ms / 1000).toFixed(1)} s`;
    const failed = entry.last_error ? ` · last error: ${entry.last_error.kind}: ${entry.last_error.message}` : "";
    name.append(el("div", `${when} · ${next}${failed}`, { class: "muted small" }));
  }
  if (entry.kind === "action") {
    const signature = (entry.params ?? [])
      .map((p) => `${p.name}${p.optional ? "?" : ""}: ${p.type}`).join(", ");
    name.append(el("div", `${entry.name}(${signature})${entry.help ? " — " + entry.help : ""}`, { class: "muted small" }));
  }
  return holding("tr",
    el("td", entry.kind),
    name,
    Object.assign(holding("td", ...breakAfterSlashes(by)), { className: "wrap" }),
    el("td", formatTime(entry.since), { class: "nowrap", "data-label": "Since" }),
    el("td", entry.calls, { class: "num", "data-label": "Calls" }),
    el("td", entry.errors, { class: "num", "data-label": "Errors" }),
    el("td", entry.source_sha256 ? entry.source_sha256.slice(0, 12) : "–",
      { class: "mono", title: entry.source_sha256 ?? "", "data-label": "Source" }));
}

/** `text` as text nodes with a line-break opportunity after each `/`, so that a long path
 *  wraps between its directories rather than inside a file name. */
function breakAfterSlashes(text) {
  return text.split(/(?<=\/)/).flatMap((part, index) => (index ? [document.createElement("wbr"), part] : [part]));
}
