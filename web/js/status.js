// Status: the daemon's status (SPEC M1, every 2 s while shown), interrupt and reset (M2, M3)
// with a confirmation, and two small charts of requests and evaluation time over the last
// minutes, from the Prometheus metrics (M5) sampled every 5 s since sign-in.

import { api, session, SignedOut } from "./session.js";
import { $, el, holding, notify, report, confirmAction, formatBytes, formatDuration, formatTime, show, Poller } from "./ui.js";

const SAMPLE_MS = 5000;
const KEEP = 120; // samples: 10 minutes

export class StatusPage {
  constructor() {
    this.samples = [];
    this.statusPoller = new Poller(2000, () => this.refresh());
    this.sampler = new Poller(SAMPLE_MS, () => this.sample());
    $("#status-interrupt").addEventListener("click", () => this.interrupt().catch(report));
    $("#status-reset").addEventListener("click", () => this.reset().catch(report));
  }

  signedIn() {
    this.samples = [];
    if (session.can("metrics")) this.sampler.start();
  }

  signedOut() {
    this.sampler.stop();
    this.statusPoller.stop();
    this.samples = [];
  }

  async enter() {
    if (session.can("admin")) this.statusPoller.start();
    this.draw();
  }

  leave() {
    this.statusPoller.stop();
  }

  async refresh() {
    let status;
    try {
      status = await (await api("/api/v1/admin/status")).json();
    } catch (error) {
      report(error);
      throw error;
    }
    $("#st-version").textContent = status.version;
    $("#st-uptime").textContent = formatDuration(status.uptime_s);
    $("#st-queue").textContent = String(status.queue_length);
    $("#st-memory").textContent = formatBytes(status.memory_bytes);
    $("#st-running").textContent = status.running
      ? `${status.running.token ?? "(init script)"} for ${(status.running.elapsed_ms / 1000).toFixed(1)} s`
      : "nothing";
    $("#status-interrupt").disabled = !status.running;
    const waiting = status.waiting ?? [];
    show($("#waiting"), waiting.length > 0);
    $("#waiting-entries tbody").replaceChildren(
      ...waiting.map((entry) => {
        const end = el("button", "End", { type: "button", class: "danger small" });
        end.addEventListener("click", () => this.endWaiting(entry).catch(report));
        return holding("tr", el("td", entry.id, { class: "num" }), el("td", entry.token ?? "(the box's own)"),
          el("td", `${(entry.since_ms / 1000).toFixed(1)} s`, { class: "num" }),
          el("td", `${(entry.resumes_in_ms / 1000).toFixed(1)} s`, { class: "num" }), holding("td", end));
      }));
    const aside = status.set_aside ?? [];
    show($("#set-aside"), aside.length > 0);
    $("#set-aside-entries tbody").replaceChildren(
      ...aside.map((entry) => holding("tr", el("td", entry.id, { class: "num" }), el("td", entry.section),
        el("td", entry.key), el("td", entry.bytes, { class: "num" }), el("td", entry.reason),
        el("td", formatTime(entry.since)))));
    const outcomes = Object.entries(status.requests).sort((a, b) => b[1] - a[1]);
    $("#outcomes tbody").replaceChildren(
      ...outcomes.map(([outcome, count]) => holding("tr", el("td", outcome), el("td", count, { class: "num" }))));
  }

  async sample() {
    let text;
    try {
      text = await (await api("/api/v1/metrics", { headers: { Accept: "text/plain" } })).text();
    } catch (error) {
      if (!(error instanceof SignedOut)) this.sampler.stop();
      throw error;
    }
    const metrics = parsePrometheus(text);
    this.samples.push({ at: performance.now(), ...metrics });
    while (this.samples.length > KEEP + 1) this.samples.shift();
    if (!$("#page-status").hidden) this.draw();
  }

  /** Per-interval figures from consecutive samples of the counters. */
  series() {
    const requests = [], latency = [];
    for (let i = 1; i < this.samples.length; i++) {
      const a = this.samples[i - 1], b = this.samples[i];
      const seconds = (b.at - a.at) / 1000;
      requests.push(Math.max(0, (b.requests - a.requests) / seconds));
      const count = b.evaluations - a.evaluations;
      latency.push(count > 0 ? ((b.evaluationSeconds - a.evaluationSeconds) / count) * 1000 : 0);
    }
    return { requests, latency };
  }

  draw() {
    const { requests, latency } = this.series();
    chart($("#chart-requests"), requests);
    chart($("#chart-latency"), latency);
    const last = (values, digits) => (values.length ? `now ${values[values.length - 1].toFixed(digits)}` : "collecting…");
    $("#chart-requests-now").textContent = last(requests, 1);
    $("#chart-latency-now").textContent = last(latency, 2);
  }

  async endWaiting(entry) {
    const sure = await confirmAction(
      `End request ${entry.id} of ${entry.token ?? "the box's own work"}, waiting in sleep? It ends with an 'interrupted' error.`,
      "End");
    if (!sure) return;
    const answer = await api(`/api/v1/admin/interrupt?id=${encodeURIComponent(entry.id)}`, { method: "POST" });
    const { interrupted } = await answer.json();
    notify(interrupted ? `Request ${entry.id} was ended.` : `Request ${entry.id} was no longer waiting.`);
    await this.refresh();
  }

  async interrupt() {
    const sure = await confirmAction("Interrupt the running evaluation? Its request ends with an 'interrupted' error.", "Interrupt");
    if (!sure) return;
    const { interrupted } = await (await api("/api/v1/admin/interrupt", { method: "POST" })).json();
    notify(interrupted ? "The running evaluation was interrupted." : "Nothing was running any more.");
    await this.refresh();
  }

  async reset() {
    const sure = await confirmAction(
      "Reset the Lua state? Every global and registered endpoint is dropped and the init scripts run again. Persisted data stays.",
      "Reset");
    if (!sure) return;
    await api("/api/v1/admin/reset", { method: "POST" });
    notify("The Lua state was reset.");
    await this.refresh();
  }
}


/** The three sums the charts need from Prometheus's text format. */
export function parsePrometheus(text) {
  const sums = { requests: 0, evaluations: 0, evaluationSeconds: 0 };
  for (const line of text.split("\n")) {
    if (line.startsWith("#") || !line) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const value = Number(match[3]);
    if (match[1] === "luaexec_requests_total") sums.requests += value;
    else if (match[1] === "luaexec_evaluation_seconds_count") sums.evaluations += value;
    else if (match[1] === "luaexec_evaluation_seconds_sum") sums.evaluationSeconds += value;
  }
  return sums;
}

/** A line chart of `values` (oldest first), scaled to its maximum, drawn for the screen's pixel
 *  density. */
function chart(canvas, values) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || 480, height = canvas.clientHeight || 120;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const g = canvas.getContext("2d");
  g.scale(ratio, ratio);
  g.clearRect(0, 0, width, height);
  const style = getComputedStyle(canvas);
  // The plot between the "max" label's row and the time labels' row; its last gridline is zero.
  const plotTop = 16, plotBottom = height - 16;
  g.strokeStyle = style.getPropertyValue("--grid").trim() || "#ddd";
  g.lineWidth = 1;
  for (let i = 0; i <= 4; i++) {
    const y = Math.round(plotTop + ((plotBottom - plotTop) * i) / 4) + 0.5;
    g.beginPath();
    g.moveTo(0, y);
    g.lineTo(width, y);
    g.stroke();
  }
  if (values.length < 1) return;
  const top = Math.max(...values) * 1.1 || 1;
  const step = width / (KEEP - 1);
  const x0 = width - (values.length - 1) * step;
  g.strokeStyle = style.getPropertyValue("--line").trim() || "#2563eb";
  g.lineWidth = 2;
  g.beginPath();
  values.forEach((value, i) => {
    const x = x0 + i * step, y = plotBottom - (value / top) * (plotBottom - plotTop);
    if (i === 0) g.moveTo(x, y);
    else g.lineTo(x, y);
  });
  g.stroke();
  g.fillStyle = style.getPropertyValue("--muted").trim() || "#666";
  g.font = "11px system-ui, sans-serif";
  g.fillText(`max ${(top / 1.1).toFixed(top < 10 ? 2 : 0)}`, 4, 12);
  g.fillText("10 min ago", 4, height - 3);
  g.textAlign = "right";
  g.fillText("now", width - 4, height - 3);
}
