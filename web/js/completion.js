// The Console's completion and globals panel (SPEC O10, docs/console.md): names offered from the
// live state by /api/v1/console/complete (Debian's CodeMirror show-hint addon draws the list),
// and the state's own globals (those a fresh state has not) from /api/v1/console/globals,
// refreshed after each run. Reading the state for either runs nothing there.

import { api, SignedOut } from "./session.js";
import { $, el, holding, show, report } from "./ui.js";

/** Ctrl-Space, or Tab after a name, `.` or `:`, offers the names that complete the one before
 *  the cursor; a single one is inserted at once. */
export function attachCompletion(editor) {
  const CodeMirror = window.CodeMirror;
  const hint = (cm, callback) => {
    offer(cm).then(callback, (error) => {
      report(error);
      callback(null);
    });
  };
  hint.async = true;
  const complete = (cm) => cm.showHint({ hint });
  editor.addKeyMap({
    "Ctrl-Space": complete,
    Tab: (cm) => {
      if (cm.somethingSelected()) return CodeMirror.Pass;  // indents the selected lines
      // Not after a name: indent as the editor does, with spaces (a tab beside the spaces of
      // auto-indentation would mix the two).
      if (!/[A-Za-z0-9_.:]$/.test(lineBefore(cm))) {
        cm.execCommand("insertSoftTab");
        return undefined;
      }
      complete(cm);
      return undefined;
    },
  });
}

function lineBefore(cm) {
  const cursor = cm.getCursor();
  return cm.getLine(cursor.line).slice(0, cursor.ch);
}

/** The hint list for the cursor's name, or null (nothing to offer; show-hint closes). A name never
 *  spans lines, so the line before the cursor is all the server needs. */
async function offer(cm) {
  const cursor = cm.getCursor();
  const answer = await api("/api/v1/console/complete", { method: "POST", body: lineBefore(cm), allowError: true });
  if (!answer.ok) return null;
  const { word, candidates } = await answer.json();
  if (candidates.length === 0) return null;
  const Pos = window.CodeMirror.Pos;
  return {
    from: Pos(cursor.line, cursor.ch - word.length),
    to: Pos(cursor.line, cursor.ch),
    list: candidates.map(({ name, type }) => ({ text: name, type, render })),
  };
}

/** One hint: the name, then its type, muted; as text, never markup. */
function render(element, self, candidate) {
  element.append(el("span", candidate.text), el("span", candidate.type, { class: "hint-type" }));
}

/** The panel of the state's own globals with their types; a click puts the name in the editor. */
export class GlobalsPanel {
  constructor(editor) {
    this.editor = editor;
  }

  async refresh() {
    let body;
    try {
      // A refusal (the state busy past the queue's limit, the console switched off) leaves the
      // panel as it was: the next run refreshes it again.
      const answer = await api("/api/v1/console/globals", { allowError: true });
      if (!answer.ok) return;
      body = await answer.json();
    } catch (error) {
      if (!(error instanceof SignedOut)) report(error);
      return;
    }
    const items = body.globals.map(({ name, type }) => {
      const shown = typeof name === "string" ? name : "(bytes) " + name.base64;
      const button = el("button", null, { type: "button", class: "global", title: `${shown}: ${type}` });
      button.append(el("code", shown), el("span", type, { class: "muted" }));
      button.addEventListener("click", () => {
        this.editor.replaceSelection(shown);
        this.editor.focus();
      });
      return holding("li", button);
    });
    $("#globals").replaceChildren(...items);
    show($("#globals-empty"), items.length === 0);
    show($("#globals-truncated"), body.truncated);
  }
}
