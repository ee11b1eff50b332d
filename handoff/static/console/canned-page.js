/*
 * The canned replies page: the replies the agent may use, a form to add one (their own, or a
 * team's for supervisors), and Edit / Delete on the ones they manage.
 */

import { api } from "./api.js";
import { $, h } from "./dom.js";
import { flash, setError } from "./flash.js";
import { connectLive } from "./live.js";

export function initCannedPage() {
  const body = $("#canned-body");
  const form = $("#canned-form");
  const shortcut = $("#canned-shortcut");
  const scope = $("#canned-scope");
  const text = $("#canned-text");
  const save = $("#canned-save");
  const error = $("#canned-error");
  let editing = null; // the reply being edited, or null when adding

  function reset() {
    editing = null;
    form.reset();
    scope.disabled = false;
    save.textContent = "Add";
    setError(error, "");
  }

  function row(reply) {
    return h(
      "tr",
      { testid: "canned-row", dataset: { shortcut: reply.shortcut } },
      h("td", null, h("strong", null, "/" + reply.shortcut)),
      h("td", null, reply.personal ? "Only me" : "Team: " + reply.team),
      h("td", { class: "canned-text" }, reply.text),
      h(
        "td",
        { class: "actions" },
        reply.editable
          ? [
              h("button", {
                type: "button",
                class: "btn btn--small",
                testid: "canned-edit",
                onclick: function () {
                  editing = reply;
                  shortcut.value = reply.shortcut;
                  text.value = reply.text;
                  scope.value = reply.team || "";
                  scope.disabled = true;
                  save.textContent = "Save";
                  shortcut.focus();
                },
              }, "Edit"),
              h("button", {
                type: "button",
                class: "btn btn--small btn--danger",
                testid: "canned-delete",
                onclick: async function () {
                  if (!window.confirm("Delete /" + reply.shortcut + "?")) return;
                  try {
                    await api("DELETE", "/console/api/canned/" + reply.id);
                    flash("Deleted /" + reply.shortcut + ".", "info");
                    load();
                  } catch (err) {
                    flash(err.message, "error");
                  }
                },
              }, "Delete"),
            ]
          : h("span", { class: "muted small" }, "managed by supervisors")
      )
    );
  }

  async function load() {
    try {
      const answer = await api("GET", "/console/api/canned");
      const items = answer.items || [];
      $("#canned-count").textContent = String(items.length);
      body.replaceChildren(
        ...(items.length
          ? items.map(row)
          : [h("tr", { class: "empty" }, h("td", { colspan: "4" }, "No canned replies yet: add the first one above."))])
      );
    } catch (err) {
      flash(err.message, "error");
    }
  }

  form.addEventListener("submit", async function (event) {
    event.preventDefault();
    setError(error, "");
    const payload = { shortcut: shortcut.value, text: text.value };
    save.disabled = true;
    try {
      const saved = editing
        ? await api("PUT", "/console/api/canned/" + editing.id, payload)
        : await api("POST", "/console/api/canned", { ...payload, team: scope.value || null });
      flash((editing ? "Saved /" : "Added /") + saved.shortcut + ".", "info");
      reset();
      load();
    } catch (err) {
      setError(error, err.message); // the form keeps what was typed
    } finally {
      save.disabled = false;
    }
  });

  connectLive(function () {}); // the top bar's live status, like every page
  load();
}
