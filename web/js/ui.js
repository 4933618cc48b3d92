// Small helpers the pages share. Text goes in as textContent, never as markup.

import { SignedOut } from "./session.js";

export const $ = (selector) => document.querySelector(selector);

export function show(element, visible) {
  element.hidden = !visible;
}

/** An element with text content and optional attributes (class, title, ...). */
export function el(tag, text, attributes = {}) {
  const element = document.createElement(tag);
  if (text !== undefined && text !== null) element.textContent = String(text);
  for (const [name, value] of Object.entries(attributes)) {
    if (name === "class") element.className = value;
    else element.setAttribute(name, value);
  }
  return element;
}

/** A `tag` element holding `children`. */
export function holding(tag, ...children) {
  const element = document.createElement(tag);
  element.append(...children);
  return element;
}

export function notify(message) {
  const notice = $("#notice");
  notice.textContent = message;
  show(notice, true);
}

/** An error the page cannot handle better, in the notice bar, never as a raw status. A token
 *  that stopped working has already sent the page back to sign-in: nothing more to say. */
export function report(error) {
  if (error instanceof SignedOut) return;
  notify(error.message || String(error));
}

export function clearNotice() {
  show($("#notice"), false);
}

/** Asks before something that cannot be undone; resolves to true when confirmed. */
export function confirmAction(text, confirmLabel) {
  const dialog = $("#confirm");
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = confirmLabel;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.returnValue = "cancel";
    dialog.showModal();
  });
}

/** Copies the value of the input with id `id`; says so on the button. */
export async function copyFrom(id, button) {
  const input = document.getElementById(id);
  try {
    await navigator.clipboard.writeText(input.value);
  } catch {
    // No clipboard permission: leave the text selected for Ctrl+C.
    input.select();
  }
  const label = button.textContent;
  button.textContent = "Copied";
  setTimeout(() => (button.textContent = label), 1500);
}

export function formatTime(iso) {
  if (!iso) return "never";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : date.toLocaleString();
}

export function formatBytes(bytes) {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KiB`;
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`;
}

export function formatDuration(seconds) {
  const d = Math.floor(seconds / 86400), h = Math.floor((seconds % 86400) / 3600);
  const m = Math.floor((seconds % 3600) / 60), s = Math.floor(seconds % 60);
  if (d) return `${d} d ${h} h`;
  if (h) return `${h} h ${m} min`;
  if (m) return `${m} min ${s} s`;
  return `${s} s`;
}

/** Runs `task` every `ms` while started, never two at once. */
export class Poller {
  constructor(ms, task) {
    this.ms = ms;
    this.task = task;
    this.timer = null;
  }
  start() {
    if (this.timer !== null) return;
    const tick = async () => {
      try {
        await this.task();
      } catch {
        // the task reports its own errors; a failed tick only waits for the next
      }
      if (this.timer !== null) this.timer = setTimeout(tick, this.ms);
    };
    this.timer = setTimeout(tick, 0);
  }
  stop() {
    clearTimeout(this.timer);
    this.timer = null;
  }
}
