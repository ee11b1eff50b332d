/* Private notes on the conversation page: agents only, never sent to the customer. */

import { api, apiConversation } from "./api.js";
import { $, h } from "./dom.js";
import { setError } from "./flash.js";
import { fmtFull, fmtTime } from "./format.js";

/** Keep a note by id; false when it has no id or is already there (nothing to re-render). */
export function addNote(page, n) {
  if (!n || n.id === undefined || n.id === null || page.notes.has(String(n.id))) return false;
  page.notes.set(String(n.id), n);
  return true;
}

/** Redraw the notes, oldest first, scrolled to the newest. */
export function renderNotes(page) {
  const list = $("#notes");
  const all = Array.from(page.notes.values()).sort(function (a, b) { return Number(a.id) - Number(b.id); });
  list.replaceChildren(
    ...(all.length
      ? all.map(function (n) {
          return h(
            "li",
            { testid: "note", dataset: { noteId: n.id } },
            h("div", { class: "note__meta" }, (n.agent_name || "Agent") + " · ", h("time", { datetime: n.created_at, title: fmtFull(n.created_at) }, fmtTime(n.created_at))),
            h("div", { class: "note__text" }, n.text || "")
          );
        })
      : [h("li", { class: "notes__empty" }, "No notes yet.")])
  );
  list.scrollTop = list.scrollHeight;
}

/** Save the note typed in #note-input (one at a time). */
export async function submitNote(page) {
  const { noteInput, noteAdd, noteError } = page.els;
  if (page.addingNote) return;
  const text = noteInput.value.trim();
  setError(noteError, "");
  if (!text) {
    setError(noteError, "Write the note first.");
    return;
  }
  page.addingNote = true;
  noteAdd.disabled = true;
  try {
    const result = await api("POST", apiConversation(page.convId, "notes"), { text: text });
    noteInput.value = "";
    if (result && result.note && addNote(page, result.note)) renderNotes(page);
  } catch (err) {
    setError(noteError, err.message);
  } finally {
    page.addingNote = false;
    noteAdd.disabled = false;
  }
}
