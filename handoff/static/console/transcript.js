/*
 * The transcript of the conversation page. Messages are kept by id in page.messages, because
 * the same message can arrive twice: in a full refresh and as a live event.
 */

import { $, h } from "./dom.js";
import { fmtFull, fmtTime } from "./format.js";
import { customerName } from "./people.js";

const SENDERS = new Set(["customer", "bot", "agent", "system"]);

function messageNode(m, view) {
  const sender = SENDERS.has(m.sender) ? m.sender : "system";
  const who =
    sender === "customer" ? m.sender_name || customerName(view)
      : sender === "bot" ? "Bot"
      : sender === "agent" ? m.sender_name || "Agent"
      : "System";
  const buttons = Array.isArray(m.buttons) ? m.buttons : [];
  const showNlu = sender === "customer" && m.intent;
  return h(
    "div",
    {
      class: "msg msg--" + sender,
      testid: "transcript-msg",
      dataset: { sender: sender, seq: m.seq, messageId: m.id },
      title: sender === "system" ? fmtFull(m.created_at) : null,
    },
    sender !== "system"
      ? h(
          "div",
          { class: "msg__meta" },
          h("span", { class: "msg__who" }, who),
          " · ",
          h("time", { datetime: m.created_at, title: fmtFull(m.created_at) }, fmtTime(m.created_at))
        )
      : null,
    h("div", { class: "msg__bubble" }, m.text || ""),
    buttons.length
      ? h("div", { class: "msg__buttons" }, buttons.map(function (b) {
          return h("span", { class: "chip", title: b.payload || null }, b.title || b.payload || "");
        }))
      : null,
    showNlu
      ? h(
          "div",
          { class: "msg__nlu", testid: "msg-intent" },
          String(m.intent) + (typeof m.confidence === "number" ? " · " + Math.round(m.confidence * 100) + "%" : "")
        )
      : null
  );
}

/** Keep a message; false when it has no id or is already there (nothing to re-render). */
export function addMessage(page, m) {
  if (!m || m.id === undefined || m.id === null) return false;
  if (page.messages.has(String(m.id))) return false;
  page.messages.set(String(m.id), m);
  return true;
}

/** In conversation order: by seq, then by id. */
function sortedMessages(page) {
  return Array.from(page.messages.values()).sort(function (a, b) {
    return (Number(a.seq) || 0) - (Number(b.seq) || 0) || (Number(a.id) || 0) - (Number(b.id) || 0);
  });
}

/**
 * Redraw the transcript. It scrolls to the newest message the first time and when the agent was
 * already near the bottom, not while they are reading further up.
 */
export function renderTranscript(page) {
  const transcript = page.els.transcript;
  const nearBottom = transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 80;
  const first = !transcript.hasChildNodes();
  const list = sortedMessages(page);
  transcript.replaceChildren(
    ...(list.length
      ? list.map(function (m) { return messageNode(m, page.view); })
      : [h("p", { class: "transcript__empty" }, "No messages yet.")])
  );
  $("#transcript-count").textContent = list.length + " message" + (list.length === 1 ? "" : "s");
  if (first || nearBottom) transcript.scrollTop = transcript.scrollHeight;
}
