/*
 * Agent console: the live queue and the conversation workspace.
 *
 * Safety rule: everything that came from a customer, an agent or the server is put into the page
 * with textContent / text nodes / setAttribute — never innerHTML. The CSRF token and who is signed
 * in come from <meta> and data- attributes (the Content-Security-Policy forbids inline script).
 */
(function () {
  "use strict";

  const body = document.body;
  const PAGE = body.dataset.page || "";
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const CSRF = csrfMeta ? csrfMeta.getAttribute("content") || "" : "";
  const ME = {
    id: Number(body.dataset.agentId || 0),
    name: body.dataset.agentName || "",
    role: body.dataset.agentRole || "",
  };
  const CHANNELS = new Set(["webchat", "telegram", "slack", "rest"]);
  const PRIORITIES = new Set(["urgent", "high", "normal", "low"]);
  const SENDERS = new Set(["customer", "bot", "agent", "system"]);
  const STATES = new Set(["bot", "queued", "assigned", "resolved", "pending_followup"]);
  const STATE_LABELS = {
    bot: "With the bot",
    queued: "Waiting in queue",
    assigned: "Assigned",
    resolved: "Resolved",
    pending_followup: "Follow-up (team was offline)",
  };

  // --- small helpers ----------------------------------------------------------------------

  function $(selector) {
    return document.querySelector(selector);
  }

  /** Build an element. Strings among the children become text nodes (never HTML). */
  function h(tag, props) {
    const el = document.createElement(tag);
    if (props) {
      for (const key of Object.keys(props)) {
        const value = props[key];
        if (value === null || value === undefined || value === false) continue;
        if (key === "class") el.className = value;
        else if (key === "text") el.textContent = String(value);
        else if (key === "testid") el.setAttribute("data-testid", value);
        else if (key === "dataset") {
          for (const dk of Object.keys(value)) {
            if (value[dk] !== null && value[dk] !== undefined) el.dataset[dk] = String(value[dk]);
          }
        } else if (key.startsWith("on") && typeof value === "function") {
          el.addEventListener(key.slice(2), value);
        } else el.setAttribute(key, value === true ? "" : String(value));
      }
    }
    const children = Array.prototype.slice.call(arguments, 2).flat(Infinity);
    for (const child of children) {
      if (child === null || child === undefined || child === false) continue;
      el.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return el;
  }

  function humanize(value) {
    if (value === null || value === undefined || value === "") return "";
    const text = String(value).replace(/_/g, " ");
    return text.charAt(0).toUpperCase() + text.slice(1);
  }

  function fmtDuration(seconds) {
    const s = Math.max(0, Math.floor(seconds));
    if (s < 60) return s + "s";
    const m = Math.floor(s / 60);
    if (m < 60) return m + "m " + String(s % 60).padStart(2, "0") + "s";
    const hrs = Math.floor(m / 60);
    if (hrs < 48) return hrs + "h " + String(m % 60).padStart(2, "0") + "m";
    return Math.floor(hrs / 24) + "d " + (hrs % 24) + "h";
  }

  function parseDate(iso) {
    if (!iso) return null;
    const d = new Date(iso);
    return isNaN(d.getTime()) ? null : d;
  }

  function fmtTime(iso) {
    const d = parseDate(iso);
    if (!d) return "";
    const sameDay = d.toDateString() === new Date().toDateString();
    return sameDay
      ? d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" })
      : d.toLocaleString([], { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" });
  }

  function fmtFull(iso) {
    const d = parseDate(iso);
    return d ? d.toLocaleString() : "";
  }

  function conversationUrl(id) {
    return "/console/conversations/" + encodeURIComponent(String(id));
  }

  function apiConversation(id, action) {
    return "/console/api/conversations/" + encodeURIComponent(String(id)) + (action ? "/" + action : "");
  }

  function channelBadge(channel) {
    const known = CHANNELS.has(channel) ? channel : "rest";
    return h("span", { class: "badge badge--" + known, testid: "channel-badge" }, channel || "unknown");
  }

  function priorityBadge(priority) {
    const value = priority === null || priority === undefined || priority === "" ? "normal" : String(priority);
    const known = PRIORITIES.has(value) ? value : "normal";
    return h("span", { class: "badge badge--prio-" + known, testid: "priority-badge" }, value);
  }

  function stateBadge(state) {
    const known = STATES.has(state) ? state : "bot";
    return h("span", { class: "badge badge--state-" + known, testid: "state-badge" }, STATE_LABELS[known] || String(state));
  }

  // --- page-level messages ----------------------------------------------------------------

  let flashTimer = null;

  function flash(message, kind) {
    const box = $("#flash");
    if (!box) return;
    box.textContent = message;
    box.className = "flash" + (kind === "info" ? " flash--info" : "");
    box.hidden = false;
    clearTimeout(flashTimer);
    flashTimer = setTimeout(function () { box.hidden = true; }, kind === "info" ? 5000 : 10000);
  }

  function setError(el, message) {
    if (el) el.textContent = message || "";
  }

  // --- API --------------------------------------------------------------------------------

  class ApiError extends Error {
    constructor(message, status, code) {
      super(message);
      this.status = status;
      this.code = code;
    }
  }

  let leaving = false;

  function toLogin() {
    if (leaving) return;
    leaving = true;
    const next = location.pathname + location.search;
    location.assign("/console/login?next=" + encodeURIComponent(next));
  }

  async function api(method, path, payload) {
    const init = { method: method, credentials: "same-origin", headers: { Accept: "application/json" } };
    if (method !== "GET") init.headers["X-CSRF-Token"] = CSRF;
    if (payload !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(payload);
    }
    let response;
    try {
      response = await fetch(path, init);
    } catch (err) {
      throw new ApiError("Cannot reach the server. Check your connection and try again.", 0, "network");
    }
    let data = null;
    try {
      data = await response.json();
    } catch (err) {
      data = null;
    }
    const message = data && typeof data.message === "string" ? data.message : "";
    if (response.status === 401) {
      toLogin();
      throw new ApiError(message || "Your session has ended. Please sign in again.", 401, "unauthenticated");
    }
    if (!response.ok) {
      throw new ApiError(
        message || "The server answered " + response.status + ". Please try again.",
        response.status,
        data && data.error
      );
    }
    return data;
  }

  // --- live connection ----------------------------------------------------------------------

  /**
   * One WebSocket to /console/ws, reconnecting with exponential backoff (1 s .. 30 s, jittered).
   * onOpen(socket, count) runs when the server's first event (the queue snapshot) arrives.
   */
  function connectLive(onEvent, onOpen) {
    const status = $("#live-status");
    let socket = null;
    let attempt = 0;
    let timer = null;
    let opens = 0;

    function setStatus(kind, text) {
      if (!status) return;
      status.className = "live live--" + kind;
      status.textContent = text;
    }

    function url() {
      return (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/console/ws";
    }

    function schedule() {
      if (timer || leaving) return;
      const base = Math.min(30000, 1000 * Math.pow(2, Math.min(attempt, 5)));
      const delay = Math.round(base * (0.8 + Math.random() * 0.4));
      attempt += 1;
      setStatus("offline", "Offline · retrying in " + Math.max(1, Math.round(delay / 1000)) + "s");
      timer = setTimeout(function () {
        timer = null;
        open();
      }, delay);
      // A handshake refused for an expired session looks like any other failure: ask the API.
      if (attempt % 3 === 0) api("GET", "/console/api/me").catch(function () {});
    }

    function open() {
      if (leaving) return;
      setStatus("connecting", attempt ? "Reconnecting…" : "Connecting…");
      let sock;
      try {
        sock = new WebSocket(url());
      } catch (err) {
        schedule();
        return;
      }
      socket = sock;
      let first = true;
      sock.addEventListener("message", function (event) {
        let data;
        try {
          data = JSON.parse(event.data);
        } catch (err) {
          return;
        }
        if (!data || typeof data !== "object") return;
        if (first) {
          first = false;
          attempt = 0;
          opens += 1;
          setStatus("online", "Live");
          if (onOpen) onOpen(sock, opens);
        }
        onEvent(data);
      });
      sock.addEventListener("close", function (event) {
        if (socket === sock) socket = null;
        if (event.code === 4401) {
          toLogin();
          return;
        }
        schedule();
      });
    }

    function reconnectNow() {
      if (socket || !timer) return;
      clearTimeout(timer);
      timer = null;
      open();
    }

    document.addEventListener("visibilitychange", function () {
      if (document.visibilityState === "visible") reconnectNow();
    });
    window.addEventListener("online", reconnectNow);
    open();

    return {
      send: function (obj) {
        if (socket && socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(obj));
      },
    };
  }

  // --- ticking clocks ---------------------------------------------------------------------

  /** Elements with data-since (epoch ms) show the time elapsed since then, updated every second. */
  function tick() {
    const now = Date.now();
    const cells = document.querySelectorAll("[data-since]");
    for (const el of cells) {
      const seconds = (now - Number(el.dataset.since)) / 1000;
      el.textContent = fmtDuration(seconds);
      if (el.dataset.waitColors !== undefined) {
        el.classList.toggle("wait-long", seconds >= 600);
        el.classList.toggle("wait-mid", seconds >= 180 && seconds < 600);
      }
    }
  }

  function sinceCell(item, received, colors) {
    const since = received - Math.max(0, Number(item.waiting_seconds) || 0) * 1000;
    const cell = h("td", { class: "num", testid: "waiting-time", dataset: { since: since } });
    if (colors) cell.dataset.waitColors = "";
    return cell;
  }

  // --- queue page -------------------------------------------------------------------------

  function initQueue() {
    const queueBody = $("#queue-body");
    const mineBody = $("#mine-body");
    const othersBody = $("#others-body");
    const claiming = new Set();
    let seen = null; // conversation ids shown so far (to highlight newcomers)
    let items = [];
    let received = Date.now();
    let gotLive = false;

    function emptyRow(text) {
      return h("tr", { class: "empty" }, h("td", { colspan: 8 }, text));
    }

    function customerCell(item) {
      return h(
        "td",
        { class: "cell-customer" },
        h("a", { href: conversationUrl(item.conversation_id) }, item.customer_name || "Unknown customer")
      );
    }

    function lastCell(item) {
      const text = item.last_message || "";
      return h("td", { class: "cell-last", title: text }, text || "—");
    }

    function claimButton(item) {
      const id = String(item.conversation_id);
      const busy = claiming.has(id);
      return h(
        "button",
        {
          type: "button",
          class: "btn btn--primary btn--small",
          testid: "claim-button",
          dataset: { conversationId: id },
          disabled: busy,
          onclick: function (event) { claim(id, event.currentTarget); },
        },
        busy ? "Claiming…" : "Claim"
      );
    }

    function openButton(item) {
      return h("a", { class: "btn btn--small", href: conversationUrl(item.conversation_id) }, "Open");
    }

    function reasonCell(item) {
      return h(
        "td",
        { class: "cell-reason" },
        item.reason_text || "—",
        item.state === "pending_followup"
          ? [" ", h("span", { class: "badge badge--state-pending_followup" }, "follow-up")]
          : null
      );
    }

    function queueRow(item) {
      const id = String(item.conversation_id);
      return h(
        "tr",
        {
          testid: "queue-row",
          class: seen && !seen.has(id) ? "row--new" : null,
          dataset: { conversationId: id, state: item.state },
        },
        customerCell(item),
        h("td", null, channelBadge(item.channel)),
        reasonCell(item),
        h("td", null, priorityBadge(item.priority)),
        h("td", null, humanize(item.team) || "—"),
        sinceCell(item, received, true),
        lastCell(item),
        h("td", { class: "cell-action" }, claimButton(item))
      );
    }

    function mineRow(item) {
      return h(
        "tr",
        { testid: "my-conversation-row", dataset: { conversationId: String(item.conversation_id) } },
        customerCell(item),
        h("td", null, channelBadge(item.channel)),
        reasonCell(item),
        h("td", null, priorityBadge(item.priority)),
        h("td", null, humanize(item.team) || "—"),
        sinceCell(item, received, false),
        lastCell(item),
        h("td", { class: "cell-action" }, openButton(item))
      );
    }

    function otherRow(item) {
      return h(
        "tr",
        { testid: "assigned-row", dataset: { conversationId: String(item.conversation_id) } },
        customerCell(item),
        h("td", null, channelBadge(item.channel)),
        h("td", null, item.assigned_agent_name || "—"),
        h("td", null, priorityBadge(item.priority)),
        h("td", null, humanize(item.team) || "—"),
        sinceCell(item, received, false),
        lastCell(item),
        h("td", { class: "cell-action" }, openButton(item))
      );
    }

    function render() {
      const waiting = items.filter(function (i) { return i.state === "queued" || i.state === "pending_followup"; });
      const assigned = items.filter(function (i) { return i.state === "assigned"; });
      const mine = assigned.filter(function (i) { return Number(i.assigned_agent_id) === ME.id; });
      const others = assigned.filter(function (i) { return Number(i.assigned_agent_id) !== ME.id; });

      queueBody.replaceChildren.apply(
        queueBody,
        waiting.length ? waiting.map(queueRow) : [emptyRow("Nobody is waiting. New handoffs appear here instantly.")]
      );
      mineBody.replaceChildren.apply(
        mineBody,
        mine.length ? mine.map(mineRow) : [emptyRow("You have no open conversations. Claim one from the queue.")]
      );
      othersBody.replaceChildren.apply(
        othersBody,
        others.length ? others.map(otherRow) : [emptyRow("No other agent has an open conversation.")]
      );
      $("#queue-count").textContent = String(waiting.length);
      $("#mine-count").textContent = String(mine.length);
      $("#others-count").textContent = String(others.length);
      document.title = (waiting.length ? "(" + waiting.length + ") " : "") + "Queue · Support console";
      seen = new Set(items.map(function (i) { return String(i.conversation_id); }));
      tick();
    }

    function setItems(list) {
      items = Array.isArray(list) ? list : [];
      received = Date.now();
      render();
    }

    async function claim(id, button) {
      claiming.add(id);
      button.disabled = true;
      button.textContent = "Claiming…";
      try {
        await api("POST", apiConversation(id, "claim"));
        location.assign(conversationUrl(id));
      } catch (err) {
        claiming.delete(id);
        flash(err.message);
        render();
      }
    }

    connectLive(function (event) {
      if (event.type === "queue") {
        gotLive = true;
        setItems(event.items);
      } else if (event.type === "message" && event.message && event.message.sender === "customer") {
        // Keep "last message" current between queue snapshots.
        const item = items.find(function (i) { return String(i.conversation_id) === String(event.conversation_id); });
        if (item) {
          item.last_message = String(event.message.text || "").slice(0, 200);
          const elapsed = (Date.now() - received) / 1000;
          items.forEach(function (i) { i.waiting_seconds = (Number(i.waiting_seconds) || 0) + elapsed; });
          received = Date.now();
          render();
        }
      }
    });
    // The socket sends a snapshot when it opens; this covers a socket that cannot connect.
    api("GET", "/console/api/queue")
      .then(function (data) { if (!gotLive) setItems(data.items); })
      .catch(function (err) { if (!gotLive) flash(err.message); });
  }

  // --- conversation page ------------------------------------------------------------------

  function initConversation() {
    const convId = body.dataset.conversationId || "";
    const maxChars = Number(body.dataset.maxMessageChars || 0);
    const transcript = $("#transcript");
    const replyInput = $("#reply-input");
    const replySend = $("#reply-send");
    const replyError = $("#reply-error");
    const replyHint = $("#reply-hint");
    const replyCounter = $("#reply-counter");
    const noteInput = $("#note-input");
    const noteAdd = $("#note-add");
    const noteError = $("#note-error");
    const claimBtn = $("#claim-button");
    const transferBox = $("#transfer-box");
    const transferSelect = $("#transfer-select");
    const transferBtn = $("#transfer-button");
    const resolveBtn = $("#resolve-button");
    const actionError = $("#action-error");

    let view = null;
    const messages = new Map(); // message id -> message dict
    const notes = new Map(); // note id -> note dict
    let agents = [];
    let busy = false; // an action (claim, transfer, resolve) is running
    let sending = false;
    let addingNote = false;

    function readInitialView() {
      const script = document.getElementById("initial-view");
      if (!script) return null;
      try {
        return JSON.parse(script.textContent || "null");
      } catch (err) {
        return null;
      }
    }

    function agentName(id) {
      if (id === null || id === undefined) return "";
      if (Number(id) === ME.id) return ME.name + " (you)";
      const agent = agents.find(function (a) { return Number(a.id) === Number(id); });
      return agent ? agent.display_name : "Agent #" + id;
    }

    function customerName() {
      const c = (view && view.customer) || {};
      const p = (view && view.packet && view.packet.customer) || {};
      const conv = (view && view.conversation) || {};
      return c.display_name || p.display_name || (conv.channel ? conv.channel + " visitor" : "Customer");
    }

    // -- context card

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

    function field(label, value, testid) {
      const shown = value === "" || value === null || value === undefined ? "—" : value;
      return h("div", { class: "kv-pair" }, h("dt", null, label), h("dd", { testid: testid }, shown));
    }

    function section(title, testid) {
      const rest = Array.prototype.slice.call(arguments, 2);
      return h("div", { class: "context-section", testid: testid }, h("h3", null, title), rest);
    }

    function renderContext() {
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
          h("span", { class: "context-card__name", testid: "customer-name" }, customerName()),
          vip ? h("span", { class: "badge badge--vip", testid: "vip-badge" }, "VIP") : null,
          channelBadge(conv.channel),
          h("span", { class: "context-card__ids", testid: "channel-user-id", title: "Id on " + (conv.channel || "the channel") },
            conv.channel_user_id || customer.channel_user_id || "")
        ),
      ];
      if (view.packet) {
        children.push(h("p", { class: "context-card__reason", testid: "handoff-reason" }, reason || "Handed off"));
      } else {
        children.push(h("p", { class: "muted" }, "No handoff packet: this conversation was never handed to a person."));
      }
      const sentimentBadge = sentiment.label
        ? h(
            "span",
            {
              class: "badge badge--sentiment-" + (["negative", "neutral", "positive"].includes(sentiment.label) ? sentiment.label : "neutral"),
              title: sentiment.score !== null ? "score " + sentiment.score.toFixed(2) : null,
            },
            sentiment.label
          )
        : null;
      children.push(
        h(
          "dl",
          { class: "context-grid" },
          field("Priority", priorityBadge(packet.priority || conv.priority), "ctx-priority"),
          field("Team", humanize(packet.team || conv.team), "ctx-team"),
          field("Sentiment", sentimentBadge, "ctx-sentiment"),
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
      const columns = [];
      columns.push(
        section(
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
        )
      );
      columns.push(
        section(
          "Linked identities",
          "linked-identities",
          identities.length
            ? h("ul", { class: "plain-list" }, identities.map(function (i) {
                return h("li", null, channelBadge(i.channel), " ", h("code", null, String(i.channel_user_id || "")));
              }))
            : h("p", { class: "muted" }, "Only this channel.")
        )
      );
      columns.push(
        section(
          "Past conversations",
          "past-conversations",
          past.length
            ? h("ul", { class: "plain-list" }, past.map(function (p) {
                return h(
                  "li",
                  null,
                  h("a", { href: conversationUrl(p.conversation_id) }, fmtTime(p.started_at) || String(p.conversation_id)),
                  " · ",
                  humanize(p.state),
                  p.reason ? " · " + humanize(p.reason) : ""
                );
              }))
            : h("p", { class: "muted" }, "First conversation.")
        )
      );
      children.push(h("div", { class: "context-columns" }, columns));
      card.replaceChildren.apply(card, children);
    }

    // -- transcript

    function messageNode(m) {
      const sender = SENDERS.has(m.sender) ? m.sender : "system";
      const who =
        sender === "customer" ? m.sender_name || customerName()
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

    function addMessage(m) {
      if (!m || m.id === undefined || m.id === null) return false;
      if (messages.has(String(m.id))) return false;
      messages.set(String(m.id), m);
      return true;
    }

    function sortedMessages() {
      return Array.from(messages.values()).sort(function (a, b) {
        return (Number(a.seq) || 0) - (Number(b.seq) || 0) || (Number(a.id) || 0) - (Number(b.id) || 0);
      });
    }

    function renderTranscript() {
      const nearBottom = transcript.scrollHeight - transcript.scrollTop - transcript.clientHeight < 80;
      const first = !transcript.hasChildNodes();
      const list = sortedMessages();
      transcript.replaceChildren.apply(
        transcript,
        list.length ? list.map(messageNode) : [h("p", { class: "transcript__empty" }, "No messages yet.")]
      );
      $("#transcript-count").textContent = list.length + " message" + (list.length === 1 ? "" : "s");
      if (first || nearBottom) transcript.scrollTop = transcript.scrollHeight;
    }

    // -- notes

    function addNote(n) {
      if (!n || n.id === undefined || n.id === null || notes.has(String(n.id))) return false;
      notes.set(String(n.id), n);
      return true;
    }

    function renderNotes() {
      const list = $("#notes");
      const all = Array.from(notes.values()).sort(function (a, b) { return Number(a.id) - Number(b.id); });
      list.replaceChildren.apply(
        list,
        all.length
          ? all.map(function (n) {
              return h(
                "li",
                { testid: "note", dataset: { noteId: n.id } },
                h("div", { class: "note__meta" }, (n.agent_name || "Agent") + " · ", h("time", { datetime: n.created_at, title: fmtFull(n.created_at) }, fmtTime(n.created_at))),
                h("div", { class: "note__text" }, n.text || "")
              );
            })
          : [h("li", { class: "notes__empty" }, "No notes yet.")]
      );
      list.scrollTop = list.scrollHeight;
    }

    // -- status, actions and composer

    function renderStatus() {
      const conv = view.conversation || {};
      const dl = $("#conv-status");
      const assigned = conv.assigned_agent_id !== null && conv.assigned_agent_id !== undefined;
      dl.replaceChildren(
        field("State", stateBadge(conv.state), "ctx-state"),
        field("Assigned to", assigned ? agentName(conv.assigned_agent_id) : "Nobody", "ctx-assignee"),
        field("Channel", channelBadge(conv.channel)),
        field("Conversation", h("code", null, String(conv.id || convId)))
      );
    }

    function renderTransferOptions() {
      const conv = (view && view.conversation) || {};
      const previous = transferSelect.value;
      // A supervisor may take a colleague's conversation over by transferring it to themself.
      const candidates = agents
        .filter(function (a) {
          if (Number(a.id) === Number(conv.assigned_agent_id)) return false;
          return Number(a.id) !== ME.id || ME.role === "supervisor";
        })
        .sort(function (a, b) {
          return (b.online ? 1 : 0) - (a.online ? 1 : 0) || String(a.display_name).localeCompare(String(b.display_name));
        });
      const options = [h("option", { value: "" }, candidates.length ? "Choose an agent…" : "No other agents")];
      for (const a of candidates) {
        const label = Number(a.id) === ME.id ? "Me (" + a.display_name + ")" : a.display_name;
        options.push(h("option", { value: String(a.id) }, label + " (" + (a.online ? "online" : "offline") + ")"));
      }
      transferSelect.replaceChildren.apply(transferSelect, options);
      if (candidates.some(function (a) { return String(a.id) === previous; })) transferSelect.value = previous;
    }

    function renderActions() {
      const conv = view.conversation || {};
      const state = conv.state;
      const mine = state === "assigned" && Number(conv.assigned_agent_id) === ME.id;
      const canAct = state === "assigned" && (mine || ME.role === "supervisor");
      claimBtn.hidden = !(state === "queued" || state === "pending_followup");
      claimBtn.disabled = busy;
      transferBox.hidden = !canAct;
      transferBtn.disabled = busy;
      resolveBtn.hidden = !canAct;
      resolveBtn.disabled = busy;
      renderTransferOptions();

      replyInput.disabled = !canAct;
      replySend.disabled = !canAct || sending;
      replyInput.closest(".composer").classList.toggle("is-disabled", !canAct);
      let hint = "";
      if (state === "queued" || state === "pending_followup") hint = "Claim this conversation to reply to the customer.";
      else if (state === "assigned" && !mine) {
        hint = "Assigned to " + agentName(conv.assigned_agent_id) + "." + (canAct ? " You can still reply as a supervisor." : " Only they can reply.");
      } else if (state === "bot" || state === "resolved") hint = "This conversation is back with the bot. You cannot reply here.";
      replyHint.textContent = hint;
    }

    function renderAll() {
      renderContext();
      renderTranscript();
      renderNotes();
      renderStatus();
      renderActions();
    }

    function applyView(next) {
      if (!next || !next.conversation) return;
      view = next;
      messages.clear();
      (next.messages || []).forEach(addMessage);
      notes.clear();
      (next.notes || []).forEach(addNote);
      renderAll();
    }

    let refreshing = null;
    let refreshAgain = false;

    /** Re-read the whole conversation (coalesces bursts of events into at most two requests). */
    function refresh() {
      if (refreshing) {
        refreshAgain = true;
        return refreshing;
      }
      refreshing = api("GET", apiConversation(convId))
        .then(applyView)
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
        agents = Array.isArray(list) ? list : [];
        if (view) {
          renderStatus();
          renderTransferOptions();
          renderActions();
        }
      } catch (err) {
        /* the transfer list just stays as it was */
      }
    }

    function updateCounter() {
      const length = replyInput.value.trim().length;
      if (maxChars && length > maxChars * 0.8) {
        replyCounter.textContent = length + " / " + maxChars;
        replyCounter.classList.toggle("counter--over", length > maxChars);
      } else {
        replyCounter.textContent = "";
      }
    }

    async function sendReply() {
      if (sending || replyInput.disabled) return;
      const text = replyInput.value.trim();
      setError(replyError, "");
      if (!text) {
        setError(replyError, "Type a message first.");
        return;
      }
      if (maxChars && text.length > maxChars) {
        setError(replyError, "The reply is too long: " + text.length + " characters, the limit is " + maxChars + ".");
        return;
      }
      sending = true;
      replySend.disabled = true;
      replySend.textContent = "Sending…";
      try {
        const result = await api("POST", apiConversation(convId, "reply"), { text: text });
        if (replyInput.value.trim() === text) replyInput.value = "";
        updateCounter();
        if (result && result.message && addMessage(result.message)) renderTranscript();
        transcript.scrollTop = transcript.scrollHeight;
      } catch (err) {
        setError(replyError, err.message);
        if (err.status === 409) refresh();
      } finally {
        sending = false;
        replySend.textContent = "Send";
        renderActions();
        replyInput.focus();
      }
    }

    async function submitNote() {
      if (addingNote) return;
      const text = noteInput.value.trim();
      setError(noteError, "");
      if (!text) {
        setError(noteError, "Write the note first.");
        return;
      }
      addingNote = true;
      noteAdd.disabled = true;
      try {
        const result = await api("POST", apiConversation(convId, "notes"), { text: text });
        noteInput.value = "";
        if (result && result.note && addNote(result.note)) renderNotes();
      } catch (err) {
        setError(noteError, err.message);
      } finally {
        addingNote = false;
        noteAdd.disabled = false;
      }
    }

    async function runAction(action, payload, done) {
      if (busy) return;
      busy = true;
      setError(actionError, "");
      renderActions();
      try {
        await api("POST", apiConversation(convId, action), payload);
        if (done) done();
      } catch (err) {
        setError(actionError, err.message);
      } finally {
        busy = false;
        await refresh();
      }
    }

    claimBtn.addEventListener("click", function () {
      runAction("claim", undefined, function () {
        flash("You have this conversation now.", "info");
        setTimeout(function () { replyInput.focus(); }, 0);
      });
    });

    transferBtn.addEventListener("click", function () {
      const value = transferSelect.value;
      if (!value) {
        setError(actionError, "Choose the agent to transfer to.");
        return;
      }
      const name = agentName(Number(value));
      runAction("transfer", { agent_id: Number(value) }, function () {
        flash("Transferred to " + name + ".", "info");
      });
    });

    resolveBtn.addEventListener("click", function () {
      const ok = window.confirm(
        "Resolve this conversation?\n\nThe customer goes back to the bot and is asked to rate the conversation."
      );
      if (!ok) return;
      runAction("resolve", undefined, function () {
        flash("Resolved. The customer is back with the bot.", "info");
      });
    });

    replyInput.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.altKey) {
        event.preventDefault();
        sendReply();
      }
    });
    replyInput.addEventListener("input", function () {
      updateCounter();
      setError(replyError, "");
    });
    noteInput.addEventListener("input", function () { setError(noteError, ""); });
    replySend.addEventListener("click", sendReply);
    noteAdd.addEventListener("click", submitNote);
    noteInput.addEventListener("keydown", function (event) {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        submitNote();
      }
    });

    const initial = readInitialView();
    if (initial) applyView(initial);
    else refresh();
    loadAgents();
    setInterval(function () {
      if (document.visibilityState === "visible") loadAgents();
    }, 30000);

    connectLive(
      function (event) {
        if (String(event.conversation_id) !== convId) return;
        if (event.type === "message") {
          if (addMessage(event.message)) renderTranscript();
        } else if (event.type === "note") {
          if (addNote(event.note)) renderNotes();
        } else if (event.type === "conversation") {
          if (view && view.conversation) {
            // Show the new state at once; the refresh brings the rest (system messages, packet).
            view.conversation.state = event.state;
            view.conversation.assigned_agent_id = event.assigned_agent_id;
            renderStatus();
            renderActions();
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

  // --- start ------------------------------------------------------------------------------

  if (PAGE === "queue") initQueue();
  else if (PAGE === "conversation") initConversation();
  else if (PAGE === "not-found") connectLive(function () {});
  if (PAGE === "queue" || PAGE === "conversation") setInterval(tick, 1000);
})();
