/* The reply box of the conversation page: what the agent writes goes to the customer. */

import { api, apiConversation } from "./api.js";
import { renderActions } from "./controls.js";
import { setError } from "./flash.js";
import { addMessage, renderTranscript } from "./transcript.js";

/** Show "n / max" once the reply passes 80% of the channel's limit, in red past it. */
export function updateCounter(page) {
  const { replyInput, replyCounter } = page.els;
  const maxChars = page.maxChars;
  const length = Array.from(replyInput.value.trim()).length; // code points, as the server counts
  if (maxChars && length > maxChars * 0.8) {
    replyCounter.textContent = length + " / " + maxChars;
    replyCounter.classList.toggle("counter--over", length > maxChars);
  } else {
    replyCounter.textContent = "";
  }
}

/**
 * Post something for the customer (a reply, a file) and show the stored message; the error
 * under the reply box otherwise (a 409, the conversation changed hands: refresh()). True when
 * it was sent.
 */
async function post(page, action, payload, refresh) {
  const { replyError, transcript } = page.els;
  try {
    const result = await api("POST", apiConversation(page.convId, action), payload);
    if (result && result.message && addMessage(page, result.message)) renderTranscript(page);
    transcript.scrollTop = transcript.scrollHeight;
    return true;
  } catch (err) {
    setError(replyError, err.message);
    if (err.status === 409) refresh();
    return false;
  }
}

/**
 * Send the reply in #reply-input. The box is cleared only if the agent did not change it while
 * it was sending. A 409 (the conversation changed hands or state) calls refresh().
 */
export async function sendReply(page, refresh) {
  const { replyInput, replySend, replyError } = page.els;
  const maxChars = page.maxChars;
  if (page.sending || replyInput.disabled) return;
  const text = replyInput.value.trim();
  setError(replyError, "");
  if (!text) {
    setError(replyError, "Type a message first.");
    return;
  }
  const length = Array.from(text).length;
  if (maxChars && length > maxChars) {
    setError(replyError, "The reply is too long: " + length + " characters, the limit is " + maxChars + ".");
    return;
  }
  page.sending = true;
  replySend.disabled = true;
  replySend.textContent = "Sending…";
  try {
    if (await post(page, "reply", { text: text }, refresh) && replyInput.value.trim() === text) {
      replyInput.value = "";
    }
    updateCounter(page);
  } finally {
    page.sending = false;
    replySend.textContent = "Send";
    renderActions(page);
    replyInput.focus();
  }
}

/** Send the customer a picture or file; the gateway checks its type and size. */
export async function sendFile(page, file, refresh) {
  const { replyAttach, replyError } = page.els;
  if (page.sending) return;
  setError(replyError, "");
  page.sending = true;
  replyAttach.disabled = true;
  replyAttach.textContent = "Sending " + file.name + "…";
  const form = new FormData();
  form.append("file", file, file.name);
  try {
    await post(page, "files", form, refresh);
  } finally {
    page.sending = false;
    replyAttach.textContent = "Attach file";
    renderActions(page);
  }
}

const TYPING_EVERY_MS = 3000; // at most one "typing" to the server per this while typing
const CUSTOMER_TYPING_MS = 4000; // the line stays this long after the customer's last signal

/** While the agent types a reply (not a /shortcut), the customer sees "Sam is typing…". */
export function tellTyping(page) {
  const text = page.els.replyInput.value.trim();
  if (!text || text.startsWith("/") || page.els.replyInput.disabled) return;
  const now = Date.now();
  if (page.typingSentAt && now - page.typingSentAt < TYPING_EVERY_MS) return;
  page.typingSentAt = now;
  api("POST", apiConversation(page.convId, "typing")).catch(function () {
    // only a hint: a lost one costs nothing
  });
}

/** "Customer is typing…" under the transcript, for a few seconds after each signal. */
export function showCustomerTyping(page) {
  const line = page.els.customerTyping;
  if (!line) return;
  line.hidden = false;
  clearTimeout(page.customerTypingTimer);
  page.customerTypingTimer = setTimeout(function () { line.hidden = true; }, CUSTOMER_TYPING_MS);
}
