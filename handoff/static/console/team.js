/*
 * The team page: every agent with their availability, teams, skills, languages and load. A
 * supervisor edits a row and saves it (POST /console/api/agents/<id>); others read it.
 */

import { api } from "./api.js";
import { $, h } from "./dom.js";
import { flash } from "./flash.js";
import { connectLive } from "./live.js";

const STATUS_TEXT = { online: "Online", away: "Away", offline: "Offline" };

function names(text) {
  return String(text || "")
    .split(",")
    .map(function (s) { return s.trim(); })
    .filter(function (s) { return s.length > 0; });
}

/** Start the team page for the signed-in agent `me` ({ id, name, role }). */
export function initTeam(me) {
  const body = $("#team-body");
  const editable = me.role === "supervisor";
  let teams = [];
  let agents = [];
  const editing = new Set(); // agent ids with unsaved changes: live refreshes leave them alone

  function teamBoxes(agent) {
    return h(
      "div",
      { class: "team-checks", testid: "agent-teams" },
      teams.map(function (t) {
        return h(
          "label",
          { class: "team-check" },
          h("input", {
            type: "checkbox",
            value: t.name,
            checked: agent.teams.includes(t.name),
            disabled: !editable,
            onchange: function () { editing.add(agent.id); },
          }),
          " " + t.title
        );
      })
    );
  }

  function textInput(agent, key, placeholder) {
    return h("input", {
      type: "text",
      class: "input input--small",
      value: (agent[key] || []).join(", "),
      placeholder: placeholder,
      disabled: !editable,
      "aria-label": key + " of " + agent.display_name,
      testid: "agent-" + key,
      oninput: function () { editing.add(agent.id); },
    });
  }

  async function save(agent, row, button) {
    const capacity = Number(row.querySelector("[data-testid=agent-capacity]").value);
    const payload = {
      teams: Array.from(row.querySelectorAll("[data-testid=agent-teams] input:checked")).map(
        function (box) { return box.value; }
      ),
      skills: names(row.querySelector("[data-testid=agent-skills]").value),
      languages: names(row.querySelector("[data-testid=agent-languages]").value),
      capacity: capacity,
    };
    button.disabled = true;
    try {
      await api("POST", "/console/api/agents/" + agent.id, payload);
      editing.delete(agent.id);
      flash("Saved " + agent.display_name + ".", "info");
      await load();
    } catch (err) {
      flash(err.message);
    } finally {
      button.disabled = false;
    }
  }

  function row(agent) {
    const tr = h("tr", { testid: "agent-row", dataset: { agentId: String(agent.id) } });
    const button = editable
      ? h("button", {
          type: "button",
          class: "btn btn--small btn--primary",
          testid: "agent-save",
          onclick: function () { save(agent, tr, button); },
        }, "Save")
      : null;
    tr.append(
      h("td", { class: "cell-customer" }, agent.display_name, " ",
        h("span", { class: "muted small" }, "@" + agent.username),
        agent.role === "supervisor" ? [" ", h("span", { class: "badge badge--role" }, "supervisor")] : null),
      h("td", null, h("span", {
        class: "availability-tag availability-tag--" + agent.availability,
        testid: "agent-availability",
      }, STATUS_TEXT[agent.availability] || agent.availability)),
      h("td", null, teamBoxes(agent)),
      h("td", null, textInput(agent, "skills", "e.g. refunds, german")),
      h("td", null, textInput(agent, "languages", "any")),
      h("td", { class: "num" }, String(agent.open) + " / ",
        h("input", {
          type: "number", min: "0", max: "100", class: "input input--tiny",
          value: String(agent.capacity), disabled: !editable, testid: "agent-capacity",
          "aria-label": "capacity of " + agent.display_name,
          oninput: function () { editing.add(agent.id); },
        })),
      h("td", { class: "cell-action" }, button)
    );
    return tr;
  }

  function render() {
    const current = new Map(
      Array.from(body.querySelectorAll("[data-testid=agent-row]")).map(function (tr) {
        return [tr.dataset.agentId, tr];
      })
    );
    body.replaceChildren(
      ...(agents.length
        ? agents.map(function (a) {
            // A row being edited stays as the supervisor left it.
            return editing.has(a.id) && current.has(String(a.id)) ? current.get(String(a.id)) : row(a);
          })
        : [h("tr", { class: "empty" }, h("td", { colspan: 7 }, "No agents yet."))])
    );
    $("#agent-count").textContent = String(agents.length);
  }

  async function load() {
    try {
      if (!teams.length) teams = await api("GET", "/console/api/teams");
      const list = await api("GET", "/console/api/agents");
      agents = Array.isArray(list) ? list : [];
      render();
    } catch (err) {
      flash(err.message);
    }
  }

  load();
  // Availability and load change with the queue: refresh on its snapshots (at most every 2 s).
  let last = 0;
  connectLive(function (event) {
    if (event.type !== "queue") return;
    const now = Date.now();
    if (now - last < 2000) return;
    last = now;
    load();
  });
  setInterval(load, 15000);
}
