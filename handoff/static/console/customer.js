/*
 * The customer page: one person across channels. Their channels (link another, unlink a wrong
 * one), the shop's records (orders, devices, repairs) when they are verified, every
 * conversation with its handoffs, resolutions and ratings, and the team's notes.
 */

import { api, conversationUrl } from "./api.js";
import { $, h } from "./dom.js";
import { setError } from "./flash.js";
import { fmtFull, humanize } from "./format.js";
import { connectLive } from "./live.js";

const CHANNELS = { webchat: "Web chat", telegram: "Telegram", slack: "Slack", rest: "REST" };

function apiCustomer(id, action) {
  return "/console/api/customers/" + encodeURIComponent(String(id)) + (action ? "/" + action : "");
}

function date(iso) {
  return iso ? fmtFull(iso) : "–";
}

function stars(rating) {
  return rating ? h("span", { class: "rating", testid: "profile-rating", title: "The customer's rating" }, rating + " ★") : null;
}

function handoffLine(handoff) {
  const ended = handoff.resolved_at ? "resolved by " + (handoff.agent || "an agent") : handoff.agent ? "with " + handoff.agent : "waiting";
  return h(
    "li",
    { testid: "profile-handoff" },
    humanize(handoff.reason) + " · " + humanize(handoff.team) + " · " + ended + " ",
    stars(handoff.rating)
  );
}

function backendSection(backend) {
  if (!backend || backend.status !== "ok") {
    return [h("p", { class: "muted", testid: "backend-status" }, (backend && backend.message) || "No shop records.")];
  }
  const orders = Array.isArray(backend.orders) ? backend.orders : [];
  const devices = Array.isArray(backend.devices) ? backend.devices : [];
  const repairs = Array.isArray(backend.repairs) ? backend.repairs : [];
  return [
    h("h3", null, "Orders"),
    orders.length
      ? h("ul", { class: "plain-list", testid: "backend-orders" }, orders.map(function (o) {
          return h("li", { testid: "backend-order" },
            h("strong", null, "#" + o.number), " · " + humanize(o.status) + " · " + (o.items || []).join(", ") +
            " · placed " + o.placed_on + (o.refund_status && o.refund_status !== "none" ? " · refund " + humanize(o.refund_status) : ""));
        }))
      : h("p", { class: "muted" }, "No orders."),
    h("h3", null, "Devices"),
    devices.length
      ? h("ul", { class: "plain-list", testid: "backend-devices" }, devices.map(function (d) {
          return h("li", { testid: "backend-device" },
            h("strong", null, d.product), " · " + d.serial + " · bought " + d.purchased_on + " · ",
            d.under_warranty
              ? h("span", { class: "badge badge--verified" }, "under warranty until " + d.warranty_until)
              : h("span", { class: "badge" }, "warranty ended " + d.warranty_until));
        }))
      : h("p", { class: "muted" }, "No registered devices."),
    h("h3", null, "Repairs"),
    repairs.length
      ? h("ul", { class: "plain-list", testid: "backend-repairs" }, repairs.map(function (r) {
          return h("li", null, h("strong", null, r.reference), " · " + r.serial + " · booked " + r.booked_on + " · pickup " + r.pickup_on);
        }))
      : h("p", { class: "muted" }, "No repairs."),
  ];
}

export function initCustomerPage() {
  const customerId = document.body.dataset.customerId || "";
  const error = $("#customer-error");
  let profile = null;

  function identityItem(identity, count) {
    const unlink = h("button", { type: "button", class: "btn btn--small", testid: "unlink" }, "Unlink");
    unlink.disabled = count < 2;
    unlink.title = count < 2 ? "A customer keeps at least one channel" : "This channel is someone else: give it its own profile";
    unlink.addEventListener("click", function () {
      if (!window.confirm("Unlink " + (CHANNELS[identity.channel] || identity.channel) + " " + identity.channel_user_id + "? Its conversations leave this profile.")) return;
      change("identities/unlink", identity, error);
    });
    return h(
      "li",
      { testid: "customer-identity", dataset: { channel: identity.channel } },
      h("span", { class: "badge badge--channel" }, CHANNELS[identity.channel] || identity.channel),
      " ",
      h("code", null, identity.channel_user_id),
      " ",
      unlink
    );
  }

  function render(data) {
    profile = data;
    const c = data.customer || {};
    $("#customer-title").textContent = c.display_name || "Customer without a name";
    const badges = [];
    if (c.vip) badges.push(h("span", { class: "badge badge--vip", testid: "vip-badge" }, "VIP"));
    badges.push(
      c.verified_id
        ? h("span", { class: "badge badge--verified", testid: "verified-badge" }, "Verified · shop customer " + c.verified_id)
        : h("span", { class: "badge badge--unverified", testid: "verified-badge" }, "Not verified")
    );
    $("#customer-badges").replaceChildren(...badges);
    const r = data.ratings || {};
    const conversations = data.conversations || [];
    $("#customer-summary").textContent =
      conversations.length + " conversation" + (conversations.length === 1 ? "" : "s") +
      (r.count ? " · rated " + r.average + " ★ on average (" + r.count + ")" : " · no ratings yet") +
      " · first contact " + date(c.created_at);
    const identities = data.identities || [];
    $("#customer-identities").replaceChildren(...identities.map(function (i) { return identityItem(i, identities.length); }));
    $("#customer-backend").replaceChildren(...backendSection(data.backend));
    const rows = conversations.map(function (conv) {
      const handoffs = conv.handoffs || [];
      return h(
        "tr",
        { testid: "profile-conversation", dataset: { conversationId: conv.id } },
        h("td", null, h("a", { href: conversationUrl(conv.id), testid: "profile-conversation-link" }, date(conv.created_at))),
        h("td", null, (CHANNELS[conv.channel] || conv.channel) + " "),
        h("td", null, humanize(conv.state)),
        h("td", null, handoffs.length
          ? h("ul", { class: "plain-list" }, handoffs.map(handoffLine))
          : h("span", { class: "muted" }, "The bot handled it"))
      );
    });
    $("#customer-conversations").replaceChildren(
      ...(rows.length ? rows : [h("tr", { class: "empty" }, h("td", { colspan: "4" }, "No conversations."))])
    );
    const notes = data.notes || [];
    $("#customer-notes").replaceChildren(
      ...(notes.length
        ? notes.map(function (n) {
            return h("li", { testid: "profile-note" }, h("strong", null, n.agent_name), " · " + date(n.created_at) + ": ", n.text);
          })
        : [h("li", { class: "muted" }, "No notes.")])
    );
  }

  async function load() {
    try {
      render(await api("GET", apiCustomer(customerId)));
      setError(error, "");
    } catch (err) {
      setError(error, err.status === 404 ? "There is no such customer." : err.message);
    }
  }

  async function change(action, identity, where) {
    setError(where, "");
    try {
      render(await api("POST", apiCustomer(customerId, action), {
        channel: identity.channel,
        channel_user_id: identity.channel_user_id,
      }));
      return true;
    } catch (err) {
      setError(where, err.message);
      return false;
    }
  }

  $("#link-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    const user = $("#link-user");
    const ok = await change("identities", { channel: $("#link-channel").value, channel_user_id: user.value.trim() }, $("#link-error"));
    if (ok) user.value = "";
  });

  connectLive(function () {});
  load();
  return function () { return profile; };
}
