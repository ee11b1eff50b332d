/*
 * Alerts for the agent: a short sound and, with the browser's permission, a desktop
 * notification when a conversation is assigned to them (a push, or a colleague's transfer) and
 * when a customer writes in one of theirs. Nothing while they are looking at that very
 * conversation. Every console page's live events pass through watchForAlerts().
 */

import { conversationUrl } from "./api.js";
import { $ } from "./dom.js";
import { readAgent } from "./session.js";

const mine = new Set(); // conversations assigned to the signed-in agent, as last seen
let primed = false; // the first queue snapshot teaches what is already ours: no alert for it
let audio = null;

function lookingAt(conversationId) {
  return (
    document.visibilityState === "visible" &&
    document.body.dataset.conversationId === String(conversationId)
  );
}

function beep() {
  try {
    audio = audio || new (window.AudioContext || window.webkitAudioContext)();
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    tone.frequency.value = 880;
    gain.gain.value = 0.08;
    tone.connect(gain).connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + 0.15);
  } catch (err) {
    // no sound before the agent has clicked anything on the page: the browser's rule
  }
}

function alertAgent(conversationId, title, body) {
  if (lookingAt(conversationId)) return;
  beep();
  if (!("Notification" in window) || Notification.permission !== "granted") return;
  const note = new Notification(title, { body: body || "", tag: "conv-" + conversationId });
  note.onclick = function () {
    window.focus();
    location.assign(conversationUrl(conversationId));
  };
}

function assigned(id, name, text) {
  if (mine.has(id)) return;
  mine.add(id);
  if (primed) alertAgent(id, "A conversation was assigned to you", [name, text].filter(Boolean).join(": "));
}

/** Look at one live event (queue snapshot, conversation change, message) for alerts. */
export function watchForAlerts(event) {
  const me = readAgent().id;
  if (!me || !event) return;
  if (event.type === "queue" && Array.isArray(event.items)) {
    const now = new Set();
    for (const item of event.items) {
      if (item.state === "assigned" && item.assigned_agent_id === me) {
        now.add(item.conversation_id);
        assigned(item.conversation_id, item.customer_name, item.last_message);
      }
    }
    for (const id of Array.from(mine)) if (!now.has(id)) mine.delete(id);
    primed = true;
  } else if (event.type === "conversation") {
    if (event.state === "assigned" && event.assigned_agent_id === me) assigned(event.conversation_id, "", "");
    else mine.delete(event.conversation_id);
  } else if (event.type === "message" && event.message && event.message.sender === "customer") {
    if (mine.has(event.conversation_id)) {
      alertAgent(event.conversation_id, "New message from the customer", event.message.text);
    }
  }
}

/** The top bar's "Enable alerts" button, while the browser has not been asked yet. */
export function initAlertsButton() {
  const button = $("#enable-alerts");
  if (!button || !("Notification" in window)) return;
  button.hidden = Notification.permission !== "default";
  button.addEventListener("click", async function () {
    beep(); // a click also unlocks the sound
    try {
      await Notification.requestPermission();
    } finally {
      button.hidden = Notification.permission !== "default";
    }
  });
}
