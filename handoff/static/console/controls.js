/*
 * The conversation page's side panel and composer state: the status list, and which of claim,
 * transfer, resolve and reply the signed-in agent may use right now.
 */

import { $, h } from "./dom.js";
import { agentName } from "./people.js";
import { channelBadge, field, stateBadge } from "./widgets.js";

/** Fill #conv-status: state, assignee, channel, id. */
export function renderStatus(page) {
  const conv = page.view.conversation || {};
  const dl = $("#conv-status");
  const assigned = conv.assigned_agent_id !== null && conv.assigned_agent_id !== undefined;
  dl.replaceChildren(
    field("State", stateBadge(conv.state), "ctx-state"),
    field("Assigned to", assigned ? agentName(page, conv.assigned_agent_id) : "Nobody", "ctx-assignee"),
    field("Channel", channelBadge(conv.channel)),
    field("Conversation", h("code", null, String(conv.id || page.convId)))
  );
}

/**
 * What one can transfer to: agents (online ones first; away and offline ones shown but not
 * offered), then the teams' queues and the conversation's own queue. Keeps the choice if it is
 * still offered. Values: "<agent id>", "team:<name>" or "queue".
 */
export function renderTransferOptions(page) {
  const me = page.me;
  const select = page.els.transferSelect;
  const conv = (page.view && page.view.conversation) || {};
  const previous = select.value;
  // A supervisor may take a colleague's conversation over by transferring it to themself.
  const candidates = page.agents
    .filter(function (a) {
      if (Number(a.id) === Number(conv.assigned_agent_id)) return false;
      return Number(a.id) !== me.id || me.role === "supervisor";
    })
    .sort(function (a, b) {
      return (b.online ? 1 : 0) - (a.online ? 1 : 0) || String(a.display_name).localeCompare(String(b.display_name));
    });
  const options = [h("option", { value: "" }, "Choose an agent or a team…")];
  const people = [];
  for (const a of candidates) {
    const label = Number(a.id) === me.id ? "Me (" + a.display_name + ")" : a.display_name;
    // Away and offline agents are shown but cannot be chosen: nobody would answer the customer.
    const self = Number(a.id) === me.id;
    const status = self ? "online" : a.availability || (a.online ? "online" : "offline");
    people.push(h("option", { value: String(a.id), disabled: status !== "online" ? "" : null },
      label + " (" + status + ")"));
  }
  if (people.length) options.push(h("optgroup", { label: "Agents" }, ...people));
  const teams = (page.teams || []).filter(function (t) { return t.name !== conv.team; });
  const queues = teams.map(function (t) {
    return h("option", { value: "team:" + t.name }, t.title + " (team queue)");
  });
  const own = (page.teams || []).find(function (t) { return t.name === conv.team; });
  queues.push(h("option", { value: "queue" }, "Back to the " + (own ? own.title : "team") + " queue"));
  options.push(h("optgroup", { label: "Teams" }, ...queues));
  select.replaceChildren(...options);
  const offered = Array.from(select.options).some(function (o) { return o.value === previous && !o.disabled; });
  if (offered) select.value = previous;
}

/**
 * Show, hide and enable the action buttons and the reply box for the conversation's state. The
 * assigned agent may act, and so may a supervisor on anyone's conversation.
 */
export function renderActions(page) {
  const me = page.me;
  const { claimBtn, transferBox, transferBtn, resolveBtn, replyInput, replySend, replyHint } = page.els;
  const conv = page.view.conversation || {};
  const state = conv.state;
  const mine = state === "assigned" && Number(conv.assigned_agent_id) === me.id;
  const canAct = state === "assigned" && (mine || me.role === "supervisor");
  claimBtn.hidden = !(state === "queued" || state === "pending_followup");
  claimBtn.disabled = page.busy;
  transferBox.hidden = !canAct;
  transferBtn.disabled = page.busy;
  const wrapupOpen = !document.getElementById("wrapup")?.hidden;
  resolveBtn.hidden = !canAct || wrapupOpen;
  if (!canAct && document.getElementById("wrapup")) document.getElementById("wrapup").hidden = true;
  resolveBtn.disabled = page.busy;
  renderTransferOptions(page);

  replyInput.disabled = !canAct;
  replySend.disabled = !canAct || page.sending;
  if (page.els.replyAttach) page.els.replyAttach.disabled = !canAct || page.sending;
  replyInput.closest(".composer").classList.toggle("is-disabled", !canAct);
  let hint = "";
  if (state === "queued" || state === "pending_followup") hint = "Claim this conversation to reply to the customer.";
  else if (state === "assigned" && !mine) {
    hint = "Assigned to " + agentName(page, conv.assigned_agent_id) + "." + (canAct ? " You can still reply as a supervisor." : " Only they can reply.");
  } else if (state === "bot" || state === "resolved") hint = "This conversation is back with the bot. You cannot reply here.";
  replyHint.textContent = hint;
}
