/*
 * The conversation page: transcript, handoff context, notes and the agent's actions. It starts
 * from the view embedded in the page, re-reads the conversation when it changes, and takes new
 * messages and notes from the live connection.
 *
 * The page's state is one plain object, `page`, handed to the modules that render and act:
 *   convId, maxChars, me        fixed for the page's life
 *   els                         the page's controls, by name
 *   view                        the last conversation view from the API (null until one arrives)
 *   messages, notes             Map id -> message / note (live events and refreshes overlap)
 *   agents                      the agent list, for names and transfers
 *   busy, sending, addingNote   a claim/transfer/resolve, a reply, a note is under way
 */

import { api, apiConversation } from "./api.js";
import { attachCanned } from "./canned.js";
import { sendFile, sendReply, showCustomerTyping, tellTyping, updateCounter } from "./composer.js";
import { renderContext } from "./context-card.js";
import { renderActions, renderStatus, renderTransferOptions } from "./controls.js";
import { $ } from "./dom.js";
import { flash, setError } from "./flash.js";
import { connectLive } from "./live.js";
import { addNote, renderNotes, submitNote } from "./notes.js";
import { agentName } from "./people.js";
import { addMessage, renderTranscript } from "./transcript.js";

/** The view the server embedded in the page (<script type="application/json">), or null. */
function readInitialView() {
  const script = document.getElementById("initial-view");
  if (!script) return null;
  try {
    return JSON.parse(script.textContent || "null");
  } catch (err) {
    return null;
  }
}

function renderAll(page) {
  renderContext(page.view);
  renderTranscript(page);
  renderNotes(page);
  renderStatus(page);
  renderActions(page);
}

/**
 * Tell the server how far the agent has read (the queue page's unread counts), when the page
 * is visible and there is something new since the last time.
 */
function markRead(page) {
  if (document.visibilityState !== "visible") return;
  let seq = 0;
  page.messages.forEach(function (m) { if (Number(m.seq) > seq) seq = Number(m.seq); });
  if (!seq || seq <= (page.readSeq || 0)) return;
  page.readSeq = seq;
  api("POST", apiConversation(page.convId, "read"), { seq: seq }).catch(function () {
    page.readSeq = 0; // try again with the next message
  });
}

function applyView(page, next) {
  if (!next || !next.conversation) return;
  page.view = next;
  // Merged, not replaced: messages and notes never change once stored, and one that arrived
  // live while this view was being fetched must not vanish with the older view.
  (next.messages || []).forEach(function (m) { addMessage(page, m); });
  (next.notes || []).forEach(function (n) { addNote(page, n); });
  renderAll(page);
  markRead(page);
}

/** Start the conversation page for the signed-in agent `me` ({ id, name, role }). */
export function initConversation(me) {
  const body = document.body;
  const page = {
    convId: body.dataset.conversationId || "",
    maxChars: Number(body.dataset.maxMessageChars || 0),
    me: me,
    els: {
      transcript: $("#transcript"),
      replyInput: $("#reply-input"),
      customerTyping: $("#customer-typing"),
      replySend: $("#reply-send"),
      replyAttach: $("#reply-attach"),
      replyFile: $("#reply-file"),
      replyError: $("#reply-error"),
      replyHint: $("#reply-hint"),
      replyCounter: $("#reply-counter"),
      noteInput: $("#note-input"),
      noteAdd: $("#note-add"),
      noteError: $("#note-error"),
      claimBtn: $("#claim-button"),
      transferBox: $("#transfer-box"),
      transferSelect: $("#transfer-select"),
      transferBtn: $("#transfer-button"),
      resolveBtn: $("#resolve-button"),
      actionError: $("#action-error"),
    },
    view: null,
    messages: new Map(),
    notes: new Map(),
    agents: [],
    teams: null,
    busy: false,
    sending: false,
    addingNote: false,
  };
  const els = page.els;
  const convId = page.convId;

  let refreshing = null;
  let refreshAgain = false;

  /** Re-read the whole conversation (coalesces bursts of events into at most two requests). */
  function refresh() {
    if (refreshing) {
      refreshAgain = true;
      return refreshing;
    }
    refreshing = api("GET", apiConversation(convId))
      .then(function (next) { applyView(page, next); })
      .catch(function (err) {
        if (err.status === 404) flash("This conversation no longer exists.");
        else flash(err.message);
      })
      .finally(function () {
        refreshing = null;
        if (refreshAgain) {
          refreshAgain = false;
          refresh();
        }
      });
    return refreshing;
  }

  async function loadAgents() {
    try {
      const list = await api("GET", "/console/api/agents");
      page.agents = Array.isArray(list) ? list : [];
      if (!page.teams) {
        const teams = await api("GET", "/console/api/teams");
        page.teams = Array.isArray(teams) ? teams : [];
      }
      if (page.view) {
        renderStatus(page);
        renderTransferOptions(page);
        renderActions(page);
      }
    } catch (err) {
      /* the transfer list just stays as it was */
    }
  }

  /** Claim, transfer or resolve (one at a time), then re-read the conversation either way. */
  async function runAction(action, payload, done) {
    if (page.busy) return;
    page.busy = true;
    setError(els.actionError, "");
    renderActions(page);
    try {
      await api("POST", apiConversation(convId, action), payload);
      if (done) done();
    } catch (err) {
      setError(els.actionError, err.message);
    } finally {
      page.busy = false;
      await refresh();
    }
  }

  els.claimBtn.addEventListener("click", function () {
    runAction("claim", undefined, function () {
      flash("You have this conversation now.", "info");
      setTimeout(function () { els.replyInput.focus(); }, 0);
    });
  });

  els.transferBtn.addEventListener("click", function () {
    const value = els.transferSelect.value;
    if (!value) {
      setError(els.actionError, "Choose the agent or the team to transfer to.");
      return;
    }
    if (value === "queue" || value.startsWith("team:")) {
      const team = value === "queue" ? null : value.slice(5);
      const option = els.transferSelect.selectedOptions[0];
      const label = option ? option.textContent : "the queue";
      runAction("transfer", team ? { team: team } : { queue: true }, function () {
        flash("Sent to " + label.replace(" (team queue)", "'s queue") + ".", "info");
      });
      return;
    }
    const name = agentName(page, Number(value));
    runAction("transfer", { agent_id: Number(value) }, function () {
      flash("Transferred to " + name + ".", "info");
    });
  });

  // Resolve opens the wrap-up: what the problem really was (the bot's guess preselected) and
  // whether the bot should have handled it; its Resolve button resolves.
  const wrapup = $("#wrapup");
  const disposition = $("#wrapup-disposition");
  const botShould = $("#wrapup-bot-should");
  els.resolveBtn.addEventListener("click", function () {
    const choices = (page.view && page.view.wrapup) || { dispositions: [], suggested: "" };
    disposition.replaceChildren(...choices.dispositions.map(function (d) {
      const option = document.createElement("option");
      option.value = d.name;
      option.textContent = d.title;
      option.selected = d.name === choices.suggested;
      return option;
    }));
    botShould.checked = false;
    wrapup.hidden = false;
    els.resolveBtn.hidden = true;
    disposition.focus();
  });
  $("#wrapup-cancel").addEventListener("click", function () {
    wrapup.hidden = true;
    renderActions(page);
  });
  wrapup.addEventListener("submit", function (event) {
    event.preventDefault();
    const payload = { disposition: disposition.value || null, bot_should_have_handled: botShould.checked };
    runAction("resolve", payload, function () {
      wrapup.hidden = true;
      flash("Resolved. The customer is back with the bot.", "info");
    });
  });

  attachCanned(page); // first: its Enter picks a reply instead of sending
  els.replyInput.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.altKey) {
      event.preventDefault();
      sendReply(page, refresh);
    }
  });
  els.replyInput.addEventListener("input", function () {
    updateCounter(page);
    setError(els.replyError, "");
    tellTyping(page);
  });
  els.noteInput.addEventListener("input", function () { setError(els.noteError, ""); });
  els.replySend.addEventListener("click", function () { sendReply(page, refresh); });
  els.replyAttach.addEventListener("click", function () { els.replyFile.click(); });
  els.replyFile.addEventListener("change", function () {
    const file = els.replyFile.files && els.replyFile.files[0];
    els.replyFile.value = "";
    if (file) sendFile(page, file, refresh);
  });
  els.noteAdd.addEventListener("click", function () { submitNote(page); });
  els.noteInput.addEventListener("keydown", function (event) {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
      event.preventDefault();
      submitNote(page);
    }
  });

  const initial = readInitialView();
  if (initial) applyView(page, initial);
  else refresh();
  loadAgents();
  setInterval(function () {
    if (document.visibilityState === "visible") loadAgents();
  }, 30000);

  document.addEventListener("visibilitychange", function () { markRead(page); });

  connectLive(
    function (event) {
      if (String(event.conversation_id) !== convId) return;
      if (event.type === "message") {
        if (addMessage(page, event.message)) {
          renderTranscript(page);
          markRead(page);
        }
      } else if (event.type === "note") {
        if (addNote(page, event.note)) renderNotes(page);
      } else if (event.type === "typing") {
        showCustomerTyping(page);
      } else if (event.type === "conversation") {
        if (page.view && page.view.conversation) {
          // Show the new state at once; the refresh brings the rest (system messages, packet).
          page.view.conversation.state = event.state;
          page.view.conversation.assigned_agent_id = event.assigned_agent_id;
          renderStatus(page);
          renderActions(page);
        }
        refresh();
      }
    },
    function (socket, opens) {
      socket.send(JSON.stringify({ type: "watch", conversation_id: convId }));
      // Catch up on anything that happened while the page loaded or the socket was down.
      if (opens > 1 || initial) refresh();
    }
  );
}
