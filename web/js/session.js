// The signed-in token and the calls made with it.
//
// The token lives in this tab's sessionStorage (gone when the tab closes or at sign-out) and
// leaves the page only as an `Authorization: Bearer` header: never in a URL, a cookie or a log.

const KEY = "luaexec.token";

export class SignedOut extends Error {}

/** A refusal or failure of the API, with the message luaexecd (or nginx) gave. */
export class APIError extends Error {
  constructor(status, message, kind) {
    super(message);
    this.status = status;
    this.kind = kind;
  }
}

export const session = {
  token: sessionStorage.getItem(KEY),
  name: null,
  scopes: [],

  /** Whether the token may act where `needed` is required (admin covers metrics; exec covers
   *  every endpoint and action), as luaexecd's Scope.covers decides. */
  can(needed) {
    return this.scopes.some((held) =>
      held === needed ||
      (held === "admin" && needed === "metrics") ||
      (held === "exec" && (needed.startsWith("endpoint:") || needed.startsWith("action:"))));
  },

  /** Checks `token` against the server (GET /api/v1/whoami) and keeps it if it works. */
  async signIn(token) {
    const answer = await fetch("/api/v1/whoami", {
      headers: { Authorization: "Bearer " + token, Accept: "application/json" },
      cache: "no-store",
    });
    if (!answer.ok) throw await errorOf(answer);
    const who = await answer.json();
    this.token = token;
    this.name = who.name;
    this.scopes = who.scopes;
    sessionStorage.setItem(KEY, token);
    return who;
  },

  signOut() {
    this.token = null;
    this.name = null;
    this.scopes = [];
    sessionStorage.removeItem(KEY);
  },
};

let onSignedOut = () => {};
/** What the page does when the token stops working (revoked or expired mid-session). */
export function whenSignedOut(handler) {
  onSignedOut = handler;
}

/**
 * One API call with the token. `body` is sent as is (a string) or as JSON (an object).
 * Answers the Response for a 2xx; throws APIError with the server's message otherwise, and
 * signs out on a 401 (the token was revoked or expired).
 * `allowError` answers the Response for statuses the caller renders itself (an evaluation's
 * error is a result, not a failure of the page).
 */
export async function api(path, { method = "GET", body, headers = {}, signal, allowError = false } = {}) {
  if (!session.token) throw new SignedOut();
  const init = {
    method,
    headers: { Authorization: "Bearer " + session.token, Accept: "application/json", ...headers },
    cache: "no-store",
    signal,
  };
  if (body !== undefined) {
    init.body = typeof body === "string" ? body : JSON.stringify(body);
    if (typeof body !== "string") init.headers["Content-Type"] = "application/json";
  }
  const answer = await fetch(path, init);
  if (answer.status === 401) {
    session.signOut();
    onSignedOut("Your token is no longer accepted (revoked or expired). Sign in again.");
    throw new SignedOut();
  }
  if (answer.ok || allowError) return answer;
  throw await errorOf(answer);
}

/** The error of a refused request: luaexecd's JSON `{"error":{"kind","message"}}`, or the text
 *  nginx answers (413, 429). */
export async function errorOf(answer) {
  const text = await answer.text();
  try {
    const parsed = JSON.parse(text);
    if (parsed && parsed.error) return new APIError(answer.status, parsed.error.message.trim(), parsed.error.kind);
  } catch {
    // not JSON: nginx's own answers
  }
  return new APIError(answer.status, text.trim() || `HTTP ${answer.status}`);
}
