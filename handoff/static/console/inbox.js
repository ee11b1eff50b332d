/*
 * The inbox: every conversation, newest activity first, searched (words in messages and
 * notes) and filtered through GET /console/api/conversations, 25 at a time.
 */

import { api, conversationUrl } from "./api.js";
import { $, h } from "./dom.js";
import { flash } from "./flash.js";
import { humanize, parseDate } from "./format.js";
import { connectLive } from "./live.js";
import { channelBadge, stateBadge } from "./widgets.js";

export function initInbox() {
  const form = $("#inbox-filters");
  const body = $("#inbox-body");
  const fields = {
    q: $("#inbox-q"),
    state: $("#inbox-state"),
    team: $("#inbox-team"),
    channel: $("#inbox-channel"),
    rating: $("#inbox-rating"),
  };
  let page = 1;

  function params() {
    const p = new URLSearchParams();
    for (const [key, el] of Object.entries(fields)) if (el.value.trim()) p.set(key, el.value.trim());
    if ($("#inbox-mine").checked) p.set("agent", "me");
    p.set("page", String(page));
    return p;
  }

  function row(item) {
    const when = parseDate(item.updated_at);
    return h(
      "tr",
      { testid: "inbox-row", dataset: { conversationId: item.conversation_id } },
      h("td", { class: "cell-customer" }, h("a", { href: conversationUrl(item.conversation_id) }, item.customer_name)),
      h("td", null, channelBadge(item.channel)),
      h("td", null, stateBadge(item.state)),
      h("td", null, item.team_title || "—"),
      h("td", null, item.agent_name || "—"),
      h("td", null, item.reason ? humanize(item.reason) : "—"),
      h("td", { testid: "inbox-rating-cell" }, item.rating ? "\u2605".repeat(item.rating) : "—"),
      h("td", { class: "cell-last", title: item.last_text }, item.last_text || "—"),
      h("td", { class: "num" }, when ? when.toLocaleString([], { dateStyle: "short", timeStyle: "short" }) : "—")
    );
  }

  async function load() {
    try {
      const data = await api("GET", "/console/api/conversations?" + params().toString());
      body.replaceChildren(
        ...(data.items.length
          ? data.items.map(row)
          : [h("tr", { class: "empty" }, h("td", { colspan: 9 }, "No conversation matches."))])
      );
      $("#inbox-page").textContent = "Page " + data.page;
      $("#inbox-prev").disabled = data.page <= 1;
      $("#inbox-next").disabled = !data.has_more;
    } catch (err) {
      flash(err.message);
    }
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    page = 1;
    load();
  });
  for (const el of [fields.state, fields.team, fields.channel, fields.rating, $("#inbox-mine")]) {
    el.addEventListener("change", function () { page = 1; load(); });
  }
  $("#inbox-prev").addEventListener("click", function () { page = Math.max(1, page - 1); load(); });
  $("#inbox-next").addEventListener("click", function () { page += 1; load(); });
  api("GET", "/console/api/teams")
    .then(function (teams) {
      for (const t of teams) fields.team.append(h("option", { value: t.name }, t.title));
    })
    .catch(function () { /* the team filter keeps "Any" */ });
  load();
  // The live connection keeps the agent present (online) while they read; the list itself
  // changes only when they search, so it does not move under their eyes.
  connectLive(function () {});
}
