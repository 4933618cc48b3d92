// Audit: the audit trail luaexecd keeps in its database (SPEC M7), newest first, with filters
// (GET /api/v1/admin/audit) and a check of its HMAC chain (GET /api/v1/admin/audit/verify):
// what `luaexec audit` and `luaexec audit verify` show on the box.

import { api } from "./session.js";
import { $, el, holding, show, report } from "./ui.js";

const PAGE = 100;

export class AuditPage {
  constructor() {
    this.oldest = null;
    $("#audit-filter").addEventListener("submit", (event) => {
      event.preventDefault();
      this.load().catch(report);
    });
    $("#audit-older").addEventListener("click", () => this.load(this.oldest).catch(report));
    $("#audit-verify").addEventListener("click", () => this.verify().catch(report));
  }

  signedOut() {
    $("#audit-records tbody").replaceChildren();
    show($("#audit-verification"), false);
  }

  async enter() {
    await this.load();
  }

  /** The records the filters ask for; `before` (a seq) appends the next older page. */
  async load(before = null) {
    const query = new URLSearchParams();
    for (const name of ["token", "kind", "outcome", "since"]) {
      const value = $(`#audit-${name}`).value.trim();
      if (value) query.set(name, value);
    }
    query.set("limit", String(PAGE));
    if (before !== null) query.set("before", String(before));
    let answer;
    try {
      answer = await (await api("/api/v1/admin/audit?" + query)).json();
    } catch (error) {
      // A refused filter (a bad date): the rows of the last filter no longer stand for it.
      if (before === null) {
        $("#audit-records tbody").replaceChildren();
        show($("#audit-records"), false);
        show($("#audit-older"), false);
      }
      throw error;
    }
    const rows = answer.records.map(row);
    if (before === null) $("#audit-records tbody").replaceChildren(...rows);
    else $("#audit-records tbody").append(...rows);
    if (answer.records.length) this.oldest = answer.records[answer.records.length - 1].seq;
    const empty = $("#audit-records tbody").children.length === 0;
    show($("#audit-records"), !empty);
    show($("#audit-empty"), empty);
    show($("#audit-older"), answer.more);
  }

  async verify() {
    const button = $("#audit-verify");
    button.disabled = true;
    try {
      const result = await (await api("/api/v1/admin/audit/verify")).json();
      const box = $("#audit-verification");
      box.className = "verification " + result.outcome;
      const range = result.records === 0 ? "no records" :
        `${result.records} records (${result.first} to ${result.last})` +
        (result.pruned ? `, ${result.pruned} pruned before them` : "");
      $("#audit-verify-summary").textContent = {
        intact: `Chain intact: ${range}.`,
        broken: `Chain BROKEN: ${range}. Where it breaks:`,
        uncheckable: "Chain not checked:",
      }[result.outcome] ?? result.outcome;
      const lines = [...result.problems];
      if (result.more_problems) lines.push(`… and ${result.more_problems} more`);
      for (const gap of result.gaps) lines.push(`Not stored (a known loss): ${gap}`);
      $("#audit-verify-problems").replaceChildren(...lines.map((line) => el("li", line)));
      show(box, true);
    } finally {
      button.disabled = false;
    }
  }
}

function row(record) {
  const request = [record.method, record.path].filter(Boolean).join(" ");
  const outcome = record.kind === "cli" || record.kind === "notice" ? "" :
    record.error ?? (record.status >= 400 ? `http_${record.status}` : "ok");
  const tr = holding("tr",
    el("td", record.seq, { class: "num seq" }),
    el("td", new Date(record.at).toLocaleString(), { title: record.at }),
    el("td", record.kind),
    el("td", record.token ?? "–", { "data-label": "token" }),
    el("td", record.client ?? "–", { "data-label": "from" }),
    el("td", request || "–", { class: "path", title: record.request_id ? `request id ${record.request_id}` : "" }),
    el("td", record.status ?? "–", { class: "num" }),
    el("td", outcome, { class: outcome && outcome !== "ok" ? "error" : "" }),
    el("td", record.ms ?? "–", { class: "num" + (record.ms === undefined || record.ms === null ? "" : " ms") }),
    el("td", record.detail ?? "", { class: "detail", title: record.body_sha256 ? `body SHA-256 ${record.body_sha256}` : "" }));
  tr.dataset.seq = record.seq;
  tr.dataset.kind = record.kind;
  return tr;
}
