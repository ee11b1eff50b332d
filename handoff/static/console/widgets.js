/* Small pieces both pages show: channel, priority and state badges, key/value pairs. */

import { h } from "./dom.js";

// Values outside these sets get the neutral style of the set (the server may add new ones).
const CHANNELS = new Set(["webchat", "telegram", "slack", "rest"]);
const PRIORITIES = new Set(["urgent", "high", "normal", "low"]);
const STATES = new Set(["bot", "queued", "assigned", "resolved", "pending_followup"]);
const STATE_LABELS = {
  bot: "With the bot",
  queued: "Waiting in queue",
  assigned: "Assigned",
  resolved: "Resolved",
  pending_followup: "Follow-up (team was offline)",
};

export function channelBadge(channel) {
  const known = CHANNELS.has(channel) ? channel : "rest";
  return h("span", { class: "badge badge--" + known, testid: "channel-badge" }, channel || "unknown");
}

/** A missing priority shows as "normal". */
export function priorityBadge(priority) {
  const value = priority === null || priority === undefined || priority === "" ? "normal" : String(priority);
  const known = PRIORITIES.has(value) ? value : "normal";
  return h("span", { class: "badge badge--prio-" + known, testid: "priority-badge" }, value);
}

export function stateBadge(state) {
  const known = STATES.has(state) ? state : "bot";
  return h("span", { class: "badge badge--state-" + known, testid: "state-badge" }, STATE_LABELS[known] || String(state));
}

/** One <dt>/<dd> pair of a <dl>; an empty value shows as "—". */
export function field(label, value, testid) {
  const shown = value === "" || value === null || value === undefined ? "—" : value;
  return h("div", { class: "kv-pair" }, h("dt", null, label), h("dd", { testid: testid }, shown));
}
