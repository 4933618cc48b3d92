// The web console's shell: sign-in, the pages and what the token's scopes show of them.
// Everything the server sends is put on the page as text (textContent), never as HTML.

import { session, whenSignedOut } from "./session.js";
import { ConsolePage } from "./console.js";
import { AccessPage } from "./access.js";
import { StatusPage } from "./status.js";
import { EndpointsPage } from "./endpoints.js";
import { AuditPage } from "./audit.js";
import { ScriptsPage } from "./scripts.js";
import { $, show, notify, report, clearNotice } from "./ui.js";

const pages = {
  console: new ConsolePage(),
  access: new AccessPage(),
  status: new StatusPage(),
  endpoints: new EndpointsPage(),
  scripts: new ScriptsPage(),
  audit: new AuditPage(),
};
let current = null;

/** Shows or hides every element marked `data-needs="SCOPE"` for the signed-in token: what the
 *  token may not do is not on the page at all. */
function applyScopes() {
  for (const element of document.querySelectorAll("[data-needs]")) {
    show(element, session.can(element.dataset.needs));
  }
}

/** The page the address names if the token may see it, else the first one it may. */
function pageFromHash() {
  const visible = [...document.querySelectorAll("#nav a")].filter((link) => !link.hidden);
  const name = location.hash.replace(/^#/, "");
  return (visible.find((link) => link.dataset.page === name) ?? visible[0])?.dataset.page ?? null;
}

function open(name) {
  if (name === null) {
    notify(`The token "${session.name}" may only call ${session.scopes.join(", ")}: nothing on these pages needs less.`);
    return;
  }
  if (current && current !== name) {
    pages[current].leave?.();
    // Another page starts at its top, not at the height the last one was scrolled to.
    window.scrollTo(0, 0);
  }
  for (const key of Object.keys(pages)) show($(`#page-${key}`), key === name);
  for (const link of document.querySelectorAll("#nav a")) {
    if (link.dataset.page === name) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  current = name;
  // The address names the page shown (an address for a page the token may not see shows
  // another): replaced, not pushed, so Back does not return to the refused one.
  if (location.hash !== "#" + name) history.replaceState(null, "", "#" + name);
  pages[name].enter?.().catch(report);
}

function showSignIn(message) {
  for (const key of Object.keys(pages)) {
    pages[key].leave?.();
    show($(`#page-${key}`), false);
  }
  current = null;
  show($("#nav"), false);
  show($("#who"), false);
  show($("#page-signin"), true);
  const error = $("#signin-error");
  error.textContent = message ?? "";
  show(error, Boolean(message));
  $("#signin-token").value = "";
  $("#signin-token").focus();
}

function signedIn() {
  show($("#page-signin"), false);
  $("#who-name").textContent = session.name;
  show($("#who"), true);
  show($("#nav"), true);
  applyScopes();
  for (const page of Object.values(pages)) page.signedIn?.();
  open(pageFromHash());
}

$("#signin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const token = $("#signin-token").value.trim();
  try {
    await session.signIn(token);
    clearNotice();
    signedIn();
  } catch (error) {
    showSignIn(error.status === 401 ? "That token is not accepted: unknown, revoked or expired." : error.message);
  }
});

$("#sign-out").addEventListener("click", () => {
  session.signOut();
  for (const page of Object.values(pages)) page.signedOut?.();
  clearNotice();
  showSignIn();
});

whenSignedOut((message) => {
  for (const page of Object.values(pages)) page.signedOut?.();
  showSignIn(message);
});

window.addEventListener("hashchange", () => {
  if (session.name) open(pageFromHash());
});
window.addEventListener("unhandledrejection", (event) => report(event.reason));

// A token kept from earlier in this tab: check that it still works.
if (session.token) {
  session.signIn(session.token).then(signedIn, (error) => {
    session.signOut();
    showSignIn(error.status === 401 ? "Your token is no longer accepted. Sign in again." : error.message);
  });
} else {
  showSignIn();
}
