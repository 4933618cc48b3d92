// Access: the tokens (SPEC M4) as a table, a form to make one (the secret shown once, with a
// copy button and a ready curl line), revoke with a confirmation.

import { api, SignedOut } from "./session.js";
import { $, el, holding, show, report, confirmAction, copyFrom, formatTime } from "./ui.js";

export class AccessPage {
  constructor() {
    $("#create-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.create().catch(report);
    });
    $("#created-done").addEventListener("click", () => {
      $("#created-secret").value = "";
      $("#created-curl").value = "";
      show($("#created"), false);
    });
    for (const button of document.querySelectorAll("[data-copy]")) {
      button.addEventListener("click", () => copyFrom(button.dataset.copy, button));
    }
  }

  async enter() {
    await this.load();
  }

  signedOut() {
    $("#created-secret").value = "";
    $("#created-curl").value = "";
    show($("#created"), false);
    $("#tokens tbody").replaceChildren();
  }

  async load() {
    const { tokens } = await (await api("/api/v1/admin/tokens")).json();
    $("#tokens tbody").replaceChildren(...tokens.map((token) => this.row(token)));
  }

  row(token) {
    const revoke = el("button", "Revoke", { type: "button", class: "danger small", "aria-label": `Revoke ${token.name}` });
    revoke.addEventListener("click", () => this.revoke(token.name).catch(report));
    const row = holding("tr",
      el("td", token.name, { class: "name" }),
      holding("td", ...token.scopes.map((scope) => el("span", scope, { class: "scope" }))),
      el("td", formatTime(token.created), { "data-label": "Created" }),
      el("td", token.expires ? formatTime(token.expires) : "never", { "data-label": "Expires" }),
      el("td", formatTime(token.last_used), { "data-label": "Last used" }),
      holding("td", revoke));
    row.dataset.token = token.name;
    return row;
  }

  async create() {
    const form = $("#create-form");
    const scopes = [...form.querySelectorAll("input[name=scope]:checked")].map((box) => box.value);
    scopes.push(...$("#create-narrow").value.split(/[\s,]+/).filter(Boolean));
    const request = { name: $("#create-name").value.trim(), scopes };
    const expires = $("#create-expires").value;
    if (expires) request.expires = expires;
    show($("#create-error"), false);
    let answer;
    try {
      answer = await (await api("/api/v1/admin/tokens", { method: "POST", body: request })).json();
    } catch (error) {
      if (error instanceof SignedOut) return;
      $("#create-error").textContent = error.message;
      show($("#create-error"), true);
      return;
    }
    $("#created-name").textContent = answer.name;
    $("#created-secret").value = answer.token;
    $("#created-curl").value =
      `curl -k -H "Authorization: Bearer ${answer.token}" ${location.origin}/api/v1/exec/interactive.lua -d 'return 1+1'`;
    show($("#created"), true);
    form.reset();
    $("#created-secret").focus();
    $("#created-secret").select();
    await this.load();
  }

  async revoke(name) {
    const sure = await confirmAction(
      `Revoke the token "${name}"? Everything that uses it is refused from now on. This cannot be undone.`,
      "Revoke");
    if (!sure) return;
    await api(`/api/v1/admin/tokens/${encodeURIComponent(name)}`, { method: "DELETE" });
    await this.load();
  }
}
