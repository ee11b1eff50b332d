/*
 * The transcript of the conversation page. Messages are kept by id in page.messages, because
 * the same message can arrive twice: in a full refresh and as a live event.
 */

import { $, h } from "./dom.js";
import { fmtFull, fmtTime } from "./format.js";
import { customerName } from "./people.js";

const SENDERS = new Set(["customer", "bot", "agent", "system"]);

function sizeText(n) {
  if (typeof n !== "number") return "";
  return n >= 1048576 ? (n / 1048576).toFixed(1) + " MB" : Math.max(1, Math.round(n / 1024)) + " KB";
}

/**
 * A message's picture or file. Uploads are served by the gateway itself and shown inline; a
 * bot's image from elsewhere is a link (the console loads nothing from other sites).
 */
function attachmentNode(att) {
  if (!att || typeof att !== "object" || typeof att.url !== "string") return null;
  const own = Boolean(att.file_id) && att.url.startsWith("/files/");
  if (!own && !/^https?:\/\//i.test(att.url)) return null;
  const name = String(att.name || "file");
  if (own && att.kind === "image") {
    return h(
      "a",
      { class: "msg__attachment msg__attachment--image", href: att.url, target: "_blank", rel: "noopener", testid: "msg-attachment" },
      h("img", { src: att.url, alt: name, loading: "lazy", testid: "msg-image" })
    );
  }
  const label = (att.kind === "image" ? "Picture: " : "File: ") + name + (att.size ? " (" + sizeText(att.size) + ")" : "");
  const attrs = { class: "msg__attachment msg__attachment--file", href: att.url, target: "_blank", rel: "noopener noreferrer", testid: "msg-attachment" };
  if (own) attrs.download = name;
  return h("a", attrs, label);
}

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
    m.text || !m.attachment ? h("div", { class: "msg__bubble" }, m.text || "") : null,
    attachmentNode(m.attachment),
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
