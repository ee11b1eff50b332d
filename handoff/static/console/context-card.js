/*
 * The handoff context card: who the customer is, why the bot handed off, what was already
 * tried, the facts the bot collected, the customer's other identities and past conversations.
 * Packets come from several sources, so most fields accept more than one shape.
 */

import { conversationUrl } from "./api.js";
import { $, h } from "./dom.js";
import { fmtTime, humanize } from "./format.js";
import { customerName } from "./people.js";
import { channelBadge, field, priorityBadge } from "./widgets.js";

/** { label, score } from sentiment_label/sentiment_score or a sentiment object, string or number. */
function sentimentOf(packet) {
  let label = packet.sentiment_label;
  let score = packet.sentiment_score;
  const s = packet.sentiment;
  if (s && typeof s === "object") {
    label = label || s.label;
    if (score === undefined) score = s.score;
  } else if (typeof s === "string") {
    label = label || s;
  } else if (typeof s === "number" && score === undefined) {
    score = s;
  }
  if (!label && typeof score === "number") {
    label = score < -0.2 ? "negative" : score > 0.2 ? "positive" : "neutral";
  }
  return { label: label || null, score: typeof score === "number" ? score : null };
}

/** [key, value] pairs from an object, or from a list of {name|key, value} or of plain names. */
function entriesOf(value) {
  if (Array.isArray(value)) {
    return value.map(function (f) {
      return f && typeof f === "object" ? [String(f.name || f.key || ""), f.value] : [String(f), ""];
    });
  }
  return value && typeof value === "object" ? Object.entries(value) : [];
}

/** The packet's key facts first, then the bot's other slots (no key twice). */
function factEntries(packet) {
  const entries = entriesOf(packet.facts);
  const keys = new Set(entries.map(function (e) { return e[0]; }));
  for (const entry of entriesOf(packet.slots)) {
    if (!keys.has(entry[0])) {
      keys.add(entry[0]);
      entries.push(entry);
    }
  }
  return entries;
}

function factValue(value) {
  if (value === null || value === undefined) return "—";
  if (Array.isArray(value)) return value.map(factValue).join(", ");
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

function stepText(step) {
  if (step && typeof step === "object") return step.label || step.text || step.name || JSON.stringify(step);
  return String(step);
}

function section(title, testid, ...rest) {
  return h("div", { class: "context-section", testid: testid }, h("h3", null, title), rest);
}

function sentimentBadge(sentiment) {
  if (!sentiment.label) return null;
  const known = ["negative", "neutral", "positive"].includes(sentiment.label) ? sentiment.label : "neutral";
  return h(
    "span",
    {
      class: "badge badge--sentiment-" + known,
      title: sentiment.score !== null ? "score " + sentiment.score.toFixed(2) : null,
    },
    sentiment.label
  );
}

function factsSection(facts) {
  return section(
    "Facts and slots",
    "ctx-facts",
    facts.length
      ? h(
          "table",
          { class: "facts", testid: "facts" },
          h("tbody", null, facts.map(function (pair) {
            return h("tr", null, h("th", { scope: "row" }, humanize(pair[0])), h("td", null, factValue(pair[1])));
          }))
        )
      : h("p", { class: "muted" }, "No facts collected.")
  );
}

function identitiesSection(identities) {
  return section(
    "Linked identities",
    "linked-identities",
    identities.length
      ? h("ul", { class: "plain-list" }, identities.map(function (i) {
          return h("li", null, channelBadge(i.channel), " ", h("code", null, String(i.channel_user_id || "")));
        }))
      : h("p", { class: "muted" }, "Only this channel.")
  );
}

function pastSection(past) {
  return section(
    "Past conversations",
    "past-conversations",
    past.length
      ? h("ul", { class: "plain-list" }, past.map(function (p) {
          const when = fmtTime(p.started_at) || String(p.conversation_id);
          const ended = p.resolved_at
            ? "resolved" + (p.agent ? " by " + p.agent : "")
            : p.reason ? humanize(p.state) : "with the bot";
          return h(
            "li",
            { testid: "past-entry" },
            p.this_conversation
              ? h("span", { title: "Earlier in this conversation" }, when + " (this chat)")
              : h("a", { href: conversationUrl(p.conversation_id) }, when),
            p.reason ? " · " + humanize(p.reason) : "",
            " · " + ended,
            p.rating ? h("span", { class: "rating", testid: "past-rating", title: "The customer's rating" },
              " · " + "\u2605".repeat(p.rating) + "\u2606".repeat(5 - p.rating)) : null
          );
        }))
      : h("p", { class: "muted" }, "First conversation.")
  );
}

const VERIFIED_BY = { shop: "signed in to the shop", second_factor: "order or device check" };

/** Whether the customer proved who they are; until then, account facts are not theirs. */
function verifiedBadge(customer) {
  if (customer.verified_id) {
    const how = VERIFIED_BY[customer.verified_by] || "verified";
    return h("span", {
      class: "badge badge--verified",
      testid: "verified-badge",
      title: "Shop customer " + customer.verified_id + ", " + how,
    }, "Verified · " + how);
  }
  return h("span", {
    class: "badge badge--unverified",
    testid: "verified-badge",
    title: "Ask for the order number and the e-mail or postcode on it before sharing account details",
  }, "Not verified");
}

/** Fill #context-card from a conversation view (the API's answer for one conversation). */
export function renderContext(view) {
  const card = $("#context-card");
  const packet = view.packet || {};
  const conv = view.conversation || {};
  const customer = Object.assign({}, packet.customer || {}, view.customer || {});
  const vip = Boolean(customer.vip);
  const sentiment = sentimentOf(packet);
  const handoff = view.handoff || {};
  const steps = Array.isArray(packet.steps_tried) ? packet.steps_tried : [];
  const facts = factEntries(packet);
  const identities = Array.isArray(customer.linked_identities) ? customer.linked_identities : [];
  const past = Array.isArray(customer.past_conversations) ? customer.past_conversations : [];
  const reason = packet.reason_text || humanize(packet.reason) || "";

  const children = [
    h(
      "div",
      { class: "context-card__top" },
      h("span", { class: "context-card__name", testid: "customer-name" }, customerName(view)),
      vip ? h("span", { class: "badge badge--vip", testid: "vip-badge" }, "VIP") : null,
      verifiedBadge(customer),
      channelBadge(conv.channel),
      h("span", { class: "context-card__ids", testid: "channel-user-id", title: "Id on " + (conv.channel || "the channel") },
        conv.channel_user_id || customer.channel_user_id || ""),
      customer.id
        ? h("a", {
            class: "context-card__profile",
            href: "/console/customers/" + encodeURIComponent(String(customer.id)),
            testid: "customer-profile-link",
            title: "Every conversation, channel, rating and note of this customer, and their orders",
          }, "Customer profile →")
        : null
    ),
  ];
  if (view.packet) {
    children.push(h("p", { class: "context-card__reason", testid: "handoff-reason" }, reason || "Handed off"));
  } else {
    children.push(h("p", { class: "muted" }, "No handoff packet: this conversation was never handed to a person."));
  }
  children.push(
    h(
      "dl",
      { class: "context-grid" },
      field("Priority", priorityBadge(packet.priority || conv.priority), "ctx-priority"),
      // The team it is with now (a transfer or an escalation may have moved it since).
      field("Team", conv.team_title || humanize(conv.team || packet.team), "ctx-team"),
      field("Sentiment", sentimentBadge(sentiment), "ctx-sentiment"),
      field("Handed off by", humanize(packet.source), "ctx-source"),
      field("Requested", handoff.requested_at ? fmtTime(handoff.requested_at) : fmtTime(packet.requested_at), "ctx-requested")
    )
  );
  if (packet.summary) {
    children.push(section("Summary", "ctx-summary", h("p", { class: "summary" }, String(packet.summary))));
  }
  const stepsList = h(
    "ol",
    { class: "steps", testid: "steps-tried" },
    steps.map(function (s) { return h("li", null, stepText(s)); })
  );
  children.push(
    section("Already tried", "ctx-steps", stepsList, steps.length ? null : h("p", { class: "muted" }, "Nothing recorded."))
  );
  const columns = [factsSection(facts), identitiesSection(identities), pastSection(past)];
  children.push(h("div", { class: "context-columns" }, columns));
  card.replaceChildren(...children);
}
