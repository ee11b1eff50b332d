/*
 * The queue page: conversations waiting for an agent, mine, and those with other agents. It
 * follows the live queue snapshots; between them a customer's new message updates its row.
 */

import { api, apiConversation, conversationUrl } from "./api.js";
import { sinceCell, slaCell, tick } from "./clock.js";
import { $, h } from "./dom.js";
import { flash } from "./flash.js";
import { humanize } from "./format.js";
import { connectLive } from "./live.js";
import { channelBadge, priorityBadge } from "./widgets.js";

function emptyRow(text, columns) {
  return h("tr", { class: "empty" }, h("td", { colspan: columns || 9 }, text));
}

const TEAM_KEY = "console.queue.team";

function customerCell(item, unread) {
  return h(
    "td",
    { class: "cell-customer" },
    h("a", { href: conversationUrl(item.conversation_id) }, item.customer_name || "Unknown customer"),
    unread
      ? h("span", {
          class: "unread",
          testid: "unread-count",
          title: unread + " new message" + (unread === 1 ? "" : "s") + " from the customer",
        }, unread > 99 ? "99+" : String(unread))
      : null
  );
}

function lastCell(item) {
  const text = item.last_message || "";
  return h("td", { class: "cell-last", title: text }, text || "—");
}

function openButton(item) {
  return h("a", { class: "btn btn--small", href: conversationUrl(item.conversation_id) }, "Open");
}

function reasonCell(item) {
  return h(
    "td",
    { class: "cell-reason" },
    item.reason_text || "—",
    item.state === "pending_followup"
      ? [" ", h("span", { class: "badge badge--state-pending_followup" }, "follow-up")]
      : null
  );
}

/** Start the queue page for the signed-in agent `me` ({ id, name, role }). */
export function initQueue(me) {
  const queueBody = $("#queue-body");
  const mineBody = $("#mine-body");
  const othersBody = $("#others-body");
  const claiming = new Set();
  let seen = null; // conversation ids shown so far (to highlight newcomers)
  let items = [];
  let received = Date.now();
  let gotLive = false;
  let teams = []; // [{ name, title, assignment }]
  let shownTeam = localStorage.getItem(TEAM_KEY) || "";
  let unread = {}; // conversation id -> customer messages I have not seen (my conversations)
  let unreadTimer = null;

  // Counted by the server (how far I read each conversation, on any device); fetched again
  // after each queue snapshot, and counted up here as customer messages arrive in between.
  function loadUnread() {
    clearTimeout(unreadTimer);
    unreadTimer = setTimeout(function () {
      api("GET", "/console/api/unread")
        .then(function (data) { unread = (data && data.counts) || {}; render(); })
        .catch(function () { /* the counts stay as they were */ });
    }, 300);
  }

  function teamTitle(name) {
    const team = teams.find(function (t) { return t.name === name; });
    return team ? team.title : humanize(name) || "—";
  }

  /** "All teams" and one button per team, each with how many wait in it. */
  function renderTabs(waiting) {
    const box = $("#team-tabs");
    if (!box) return;
    if (shownTeam && !teams.some(function (t) { return t.name === shownTeam; })) shownTeam = "";
    const tab = function (name, label, count) {
      return h(
        "button",
        {
          type: "button",
          class: "team-tab" + (shownTeam === name ? " is-active" : ""),
          testid: "team-tab",
          dataset: { team: name },
          "aria-pressed": shownTeam === name ? "true" : "false",
          onclick: function () {
            shownTeam = name;
            localStorage.setItem(TEAM_KEY, name);
            render();
          },
        },
        label + " ",
        h("span", { class: "count" }, String(count))
      );
    };
    box.replaceChildren(
      tab("", "All teams", waiting.length),
      ...teams.map(function (t) {
        const count = waiting.filter(function (i) { return i.team === t.name; }).length;
        return tab(t.name, t.title + (t.assignment === "push" ? " · auto-assigned" : ""), count);
      })
    );
  }

  function claimButton(item) {
    const id = String(item.conversation_id);
    const busy = claiming.has(id);
    return h(
      "button",
      {
        type: "button",
        class: "btn btn--primary btn--small",
        testid: "claim-button",
        dataset: { conversationId: id },
        disabled: busy,
        onclick: function (event) { claim(id, event.currentTarget); },
      },
      busy ? "Claiming…" : "Claim"
    );
  }

  function queueRow(item) {
    const id = String(item.conversation_id);
    return h(
      "tr",
      {
        testid: "queue-row",
        class: seen && !seen.has(id) ? "row--new" : null,
        dataset: { conversationId: id, state: item.state },
      },
      customerCell(item),
      h("td", null, channelBadge(item.channel)),
      reasonCell(item),
      h("td", null, priorityBadge(item.priority)),
      h("td", null, teamTitle(item.team)),
      sinceCell(item, received, true),
      slaCell(item, received),
      lastCell(item),
      h("td", { class: "cell-action" }, claimButton(item))
    );
  }

  function mineRow(item) {
    return h(
      "tr",
      { testid: "my-conversation-row", dataset: { conversationId: String(item.conversation_id) } },
      customerCell(item, unread[String(item.conversation_id)] || 0),
      h("td", null, channelBadge(item.channel)),
      reasonCell(item),
      h("td", null, priorityBadge(item.priority)),
      h("td", null, teamTitle(item.team)),
      sinceCell(item, received, false),
      slaCell(item, received),
      lastCell(item),
      h("td", { class: "cell-action" }, openButton(item))
    );
  }

  function otherRow(item) {
    return h(
      "tr",
      { testid: "assigned-row", dataset: { conversationId: String(item.conversation_id) } },
      customerCell(item),
      h("td", null, channelBadge(item.channel)),
      h("td", null, item.assigned_agent_name || "—"),
      h("td", null, priorityBadge(item.priority)),
      h("td", null, humanize(item.team) || "—"),
      sinceCell(item, received, false),
      lastCell(item),
      h("td", { class: "cell-action" }, openButton(item))
    );
  }

  function render() {
    const allWaiting = items.filter(function (i) { return i.state === "queued" || i.state === "pending_followup"; });
    renderTabs(allWaiting);
    const waiting = allWaiting.filter(function (i) { return !shownTeam || i.team === shownTeam; });
    const assigned = items.filter(function (i) { return i.state === "assigned"; });
    const mine = assigned.filter(function (i) { return Number(i.assigned_agent_id) === me.id; });
    const others = assigned.filter(function (i) { return Number(i.assigned_agent_id) !== me.id; });

    queueBody.replaceChildren(
      ...(waiting.length ? waiting.map(queueRow) : [emptyRow(shownTeam ? "Nobody is waiting for " + teamTitle(shownTeam) + "." : "Nobody is waiting. New handoffs appear here instantly.")])
    );
    mineBody.replaceChildren(
      ...(mine.length ? mine.map(mineRow) : [emptyRow("You have no open conversations. Claim one from the queue.")])
    );
    othersBody.replaceChildren(
      ...(others.length ? others.map(otherRow) : [emptyRow("No other agent has an open conversation.", 8)])
    );
    $("#queue-count").textContent = String(allWaiting.length);
    $("#mine-count").textContent = String(mine.length);
    const totalUnread = mine.reduce(function (n, i) { return n + (unread[String(i.conversation_id)] || 0); }, 0);
    $("#mine-count").title = totalUnread ? totalUnread + " unread customer messages" : "";
    $("#others-count").textContent = String(others.length);
    document.title = (allWaiting.length ? "(" + allWaiting.length + ") " : "") + "Queue · Support console";
    seen = new Set(items.map(function (i) { return String(i.conversation_id); }));
    tick();
  }

  function setItems(list) {
    items = Array.isArray(list) ? list : [];
    received = Date.now();
    render();
  }

  async function claim(id, button) {
    claiming.add(id);
    button.disabled = true;
    button.textContent = "Claiming…";
    try {
      await api("POST", apiConversation(id, "claim"));
      location.assign(conversationUrl(id));
    } catch (err) {
      claiming.delete(id);
      flash(err.message);
      render();
    }
  }

  api("GET", "/console/api/teams")
    .then(function (list) { teams = Array.isArray(list) ? list : []; render(); })
    .catch(function () { /* team names stay as they are */ });

  connectLive(function (event) {
    if (event.type === "sla" && event.text) {
      flash(event.text, event.level === "warning" ? "info" : undefined);
    } else if (event.type === "queue") {
      gotLive = true;
      setItems(event.items);
      loadUnread();
    } else if (event.type === "message" && event.message && event.message.sender === "customer") {
      // Keep "last message" current between queue snapshots.
      const item = items.find(function (i) { return String(i.conversation_id) === String(event.conversation_id); });
      if (item) {
        item.last_message = String(event.message.text || (event.message.attachment ? "[" + (event.message.attachment.name || "file") + "]" : "")).slice(0, 200);
        if (item.state === "assigned" && Number(item.assigned_agent_id) === me.id) {
          const key = String(item.conversation_id);
          unread[key] = (unread[key] || 0) + 1;
        }
        const elapsed = (Date.now() - received) / 1000;
        items.forEach(function (i) { i.waiting_seconds = (Number(i.waiting_seconds) || 0) + elapsed; });
        received = Date.now();
        render();
      }
    }
  });
  // The socket sends a snapshot when it opens; this covers a socket that cannot connect.
  api("GET", "/console/api/queue")
    .then(function (data) { if (!gotLive) setItems(data.items); loadUnread(); })
    .catch(function (err) { if (!gotLive) flash(err.message); });
}
