/*
 * Brightline web chat widget (browser side).
 *
 * Embed:  <script src="https://GATEWAY/widget.js" data-title="Brightline Support" async></script>
 * Options (data-* on the script tag): data-title, data-greeting, data-position=right|left,
 * data-open=true.  Protocol and options: docs/widget.md.
 *
 * The file is pure ASCII (non-ASCII text as \u escapes) so it works on pages in any charset.
 * Plain ES2017, no dependencies, no build step.  The only global is window.BrightlineChat.
 * Message text is only ever inserted with textContent / text nodes, never as HTML.
 */
(function () {
  'use strict';

  if (window.BrightlineChat) return; // included twice: keep the first instance

  // ---------------------------------------------------------------- configuration

  var TOKEN_KEY = 'brightline-chat-token';
  var UNACKED_KEY = 'brightline-chat-unacked';
  var USER_KEY = 'brightline-chat-user'; // the shop user the stored chat belongs to ('' = none)
  var SEEN_KEY = 'brightline-chat-seen';
  var OPEN_KEY = 'brightline-chat-open'; // sessionStorage: panel stays open across page navigations
  var BACKOFF_MIN_MS = 500;
  var BACKOFF_MAX_MS = 10000;
  var STABLE_AFTER_MS = 3000; // a socket open this long resets the backoff
  var TYPING_MS = 3000;
  var RETRY_SOFT_ERROR_MS = 5000; // resend after rate_limited / unavailable
  var SESSION_CHECK_EVERY = 3; // re-validate the token every N failed websocket attempts

  var script = findScript();
  var scriptUrl;
  try {
    scriptUrl = new URL(script ? script.src : 'widget.js', document.baseURI);
  } catch (e) {
    scriptUrl = new URL(location.href);
  }
  var BASE = scriptUrl.origin;
  var WS_BASE = BASE.replace(/^http/, 'ws'); // http -> ws, https -> wss

  var ds = (script && script.dataset) || {};
  var opts = {
    title: (ds.title || 'Brightline Support').trim(),
    greeting: (ds.greeting || '').trim(),
    position: ds.position === 'left' ? 'left' : 'right',
    open: ds.open === 'true' || ds.open === '',
    // The shop vouches for a signed-in customer: its user id and HMAC-SHA256(shop secret, id),
    // rendered by the shop's server (docs/widget.md).
    user: ds.userId && ds.userHash ? { id: ds.userId, hash: ds.userHash } : null
  };

  function findScript() {
    var cur = document.currentScript;
    if (cur && /widget\.js(?:[?#]|$)/.test(cur.src || '')) return cur;
    var scripts = document.getElementsByTagName('script');
    for (var i = scripts.length - 1; i >= 0; i--) {
      var src = scripts[i].getAttribute('src') || '';
      if (/widget\.js(?:[?#].*)?$/.test(src)) return scripts[i];
    }
    return cur || null;
  }

  // ---------------------------------------------------------------- small helpers

  var memStore = {};
  function storage(kind) {
    try {
      var s = window[kind];
      var probe = '__blw_probe__';
      s.setItem(probe, '1');
      s.removeItem(probe);
      return s;
    } catch (e) {
      // Storage blocked (sandboxed iframe, privacy mode): keep it in memory for this page.
      return {
        getItem: function (k) { return Object.prototype.hasOwnProperty.call(memStore, kind + k) ? memStore[kind + k] : null; },
        setItem: function (k, v) { memStore[kind + k] = String(v); },
        removeItem: function (k) { delete memStore[kind + k]; }
      };
    }
  }
  var local = storage('localStorage');
  var session = storage('sessionStorage');

  function readJSON(key, fallback) {
    try {
      var raw = local.getItem(key);
      return raw ? JSON.parse(raw) : fallback;
    } catch (e) {
      return fallback;
    }
  }

  function uuid() {
    var c = window.crypto;
    if (c && typeof c.randomUUID === 'function') {
      try { return c.randomUUID(); } catch (e) { /* insecure context: fall through */ }
    }
    var b = new Uint8Array(16);
    if (c && typeof c.getRandomValues === 'function') {
      c.getRandomValues(b);
    } else {
      for (var i = 0; i < 16; i++) b[i] = Math.floor(Math.random() * 256);
    }
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var h = [];
    for (var j = 0; j < 16; j++) h.push((b[j] + 0x100).toString(16).slice(1));
    return h.slice(0, 4).join('') + '-' + h.slice(4, 6).join('') + '-' + h.slice(6, 8).join('') +
      '-' + h.slice(8, 10).join('') + '-' + h.slice(10, 16).join('');
  }

  var SVG_NS = 'http://www.w3.org/2000/svg';
  function icon(paths, cls) {
    var svg = document.createElementNS(SVG_NS, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('width', '24');
    svg.setAttribute('height', '24');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    if (cls) svg.setAttribute('class', cls);
    paths.forEach(function (d) {
      var p = document.createElementNS(SVG_NS, 'path');
      p.setAttribute('d', d);
      svg.appendChild(p);
    });
    return svg;
  }
  var ICON_CHAT = ['M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z'];
  var ICON_CLOSE = ['M6 6l12 12', 'M18 6L6 18'];
  var ICON_CHEVRON = ['M6 9l6 6 6-6'];
  var ICON_ATTACH = ['M21.4 11.05l-9.19 9.19a6 6 0 0 1-8.49-8.49l9.19-9.19a4 4 0 0 1 5.66 5.66l-9.2 9.19a2 2 0 0 1-2.83-2.83l8.49-8.48'];
  var ICON_SEND = ['M3.4 20.4l17.45-7.48a1 1 0 0 0 0-1.84L3.4 3.6a.99.99 0 0 0-1.39.91L2 9.12c0 .5.37.93.87.99L17 12 2.87 13.88c-.5.07-.87.5-.87 1l.01 4.61c0 .71.73 1.2 1.39.91z'];

  function el(tag, cls, attrs) {
    var node = document.createElement(tag);
    if (cls) node.className = cls;
    if (attrs) {
      Object.keys(attrs).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    }
    return node;
  }

  // Message text -> DOM: text nodes, plus safe <a> elements for http(s) URLs.
  var URL_RE = /\bhttps?:\/\/[^\s<>"']+/gi;
  function appendRichText(parent, text) {
    text = String(text == null ? '' : text);
    var last = 0;
    var m;
    URL_RE.lastIndex = 0;
    while ((m = URL_RE.exec(text)) !== null) {
      var raw = m[0].replace(/[.,;:!?)\]]+$/, '');
      var href = null;
      try {
        var u = new URL(raw);
        if (u.protocol === 'http:' || u.protocol === 'https:') href = u.href;
      } catch (e) { /* not a URL: leave as text */ }
      if (!href) continue;
      if (m.index > last) parent.appendChild(document.createTextNode(text.slice(last, m.index)));
      var a = el('a', 'blw-link', { href: href, target: '_blank', rel: 'noopener noreferrer nofollow' });
      a.textContent = raw;
      parent.appendChild(a);
      last = m.index + raw.length;
      URL_RE.lastIndex = last;
    }
    if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
  }

  function formatTime(iso) {
    if (!iso) return '';
    var d = new Date(iso);
    if (isNaN(d.getTime())) return '';
    try {
      return d.toLocaleString([], { dateStyle: 'medium', timeStyle: 'short' });
    } catch (e) {
      return d.toLocaleString();
    }
  }

  var QUEUE_SENTENCE = /You're number \d+ in the queue for a person \([^)]*\)\./;
  var queueLine = null; // { row, text }: the newest chat line that says where we stand
  var lastQueueText = null;

  function updateQueueLine(sentence) {
    lastQueueText = sentence;
    if (!queueLine || !QUEUE_SENTENCE.test(queueLine.text)) return;
    var target = queueLine.row.querySelector('.blw-system-text');
    if (!target) return;
    queueLine.text = queueLine.text.replace(QUEUE_SENTENCE, sentence);
    target.textContent = '';
    appendRichText(target, queueLine.text);
  }

  function queueText(position, eta) {
    var parts = [];
    if (typeof position === 'number' && position > 0) {
      parts.push("You're number " + position + ' in the queue');
    } else {
      parts.push('Waiting for the next available person');
    }
    if (typeof eta === 'number' && eta >= 0) {
      parts.push(eta < 60 ? 'less than a minute' : 'about ' + Math.round(eta / 60) + ' min');
    }
    return parts.join(' \u00b7 ');
  }

  // ---------------------------------------------------------------- state

  var token = local.getItem(TOKEN_KEY);
  var conversationId = null;
  var unacked = readJSON(UNACKED_KEY, []); // [{client_id, text, payload?}]
  if (!Array.isArray(unacked)) unacked = [];
  unacked = unacked.filter(function (m) { return m && typeof m.client_id === 'string' && typeof m.text === 'string'; });
  // Another person on this browser (signed in as someone else, or signed out): the last
  // person's chat and unsent messages are theirs, not this one's.
  var userNow = opts.user ? opts.user.id : '';
  if ((local.getItem(USER_KEY) || '') !== userNow) {
    token = null;
    unacked = [];
    local.removeItem(TOKEN_KEY);
    local.removeItem(UNACKED_KEY);
    local.removeItem(SEEN_KEY);
    if (userNow) local.setItem(USER_KEY, userNow);
    else local.removeItem(USER_KEY);
  }

  var bySeq = {}; // seq -> element
  var byClientId = {}; // client_id -> element (customer bubbles rendered locally or from the server)
  var maxSeq = 0; // highest seq rendered
  var seenSeq = parseInt(local.getItem(SEEN_KEY) || '0', 10) || 0;
  var unread = 0;

  var started = false;
  var isOpen = false;
  var ws = null;
  var connected = false;
  var attempts = 0;
  var reconnectTimer = null;
  var stableTimer = null;
  var needSession = true;
  var sessionInFlight = false;

  var convState = 'bot';
  var agentName = null;
  var typingTimer = null;

  // ---------------------------------------------------------------- DOM

  var host, root, ui = {};

  function build() {
    host = document.createElement('brightline-chat');
    host.style.display = 'none'; // revealed once widget.css has loaded (no flash of unstyled UI)
    var cssLink = el('link', null, { rel: 'stylesheet', href: BASE + '/widget.css' });
    var revealed = false;
    function reveal() {
      if (revealed) return;
      revealed = true;
      host.style.display = '';
    }
    cssLink.addEventListener('load', reveal);
    cssLink.addEventListener('error', reveal);
    setTimeout(reveal, 4000);

    if (host.attachShadow) {
      root = host.attachShadow({ mode: 'open' });
      root.appendChild(cssLink);
    } else {
      root = host;
      (document.head || document.documentElement).appendChild(cssLink);
    }

    var wrap = el('div', 'blw-root blw-' + opts.position);
    ui.wrap = wrap;

    // Launcher
    var launcher = el('button', 'blw-launcher', {
      type: 'button',
      'data-testid': 'blw-launcher',
      'aria-controls': 'blw-panel',
      'aria-expanded': 'false',
      'aria-label': 'Open chat: ' + opts.title
    });
    launcher.appendChild(icon(ICON_CHAT, 'blw-launcher-icon'));
    launcher.appendChild(icon(ICON_CHEVRON, 'blw-launcher-close'));
    var badge = el('span', 'blw-badge', { 'aria-hidden': 'true' });
    badge.hidden = true;
    launcher.appendChild(badge);
    launcher.addEventListener('click', function () { if (isOpen) close(); else open(); });
    ui.launcher = launcher;
    ui.badge = badge;

    // Panel
    var panel = el('div', 'blw-panel', {
      id: 'blw-panel',
      role: 'dialog',
      'aria-modal': 'false',
      'aria-labelledby': 'blw-title',
      'data-testid': 'blw-panel'
    });
    panel.hidden = true;
    panel.addEventListener('keydown', function (e) {
      if (e.key === 'Escape' || e.key === 'Esc') {
        e.stopPropagation();
        close();
        launcher.focus();
      }
    });
    ui.panel = panel;

    // Header
    var header = el('div', 'blw-header');
    var avatar = el('div', 'blw-avatar', { 'aria-hidden': 'true' });
    avatar.textContent = (opts.title.charAt(0) || 'B').toUpperCase();
    var heads = el('div', 'blw-heads');
    var title = el('h2', 'blw-title', { id: 'blw-title' });
    title.textContent = opts.title;
    var sub = el('p', 'blw-subtitle', { 'data-testid': 'blw-subtitle' });
    heads.appendChild(title);
    heads.appendChild(sub);
    var closeBtn = el('button', 'blw-close', { type: 'button', 'aria-label': 'Close chat', 'data-testid': 'blw-close' });
    closeBtn.appendChild(icon(ICON_CLOSE));
    closeBtn.addEventListener('click', function () { close(); launcher.focus(); });
    header.appendChild(avatar);
    header.appendChild(heads);
    header.appendChild(closeBtn);
    ui.avatar = avatar;
    ui.subtitle = sub;

    // Queue status
    var queue = el('div', 'blw-queue', { role: 'status', 'data-testid': 'blw-queue' });
    queue.hidden = true;
    var queueDot = el('span', 'blw-queue-dot', { 'aria-hidden': 'true' });
    var queueText = el('span', 'blw-queue-text');
    queue.appendChild(queueDot);
    queue.appendChild(queueText);
    ui.queue = queue;
    ui.queueText = queueText;

    // Conversation
    var body = el('div', 'blw-body');
    if (opts.greeting) {
      var greet = el('div', 'blw-row blw-from-bot blw-greeting', { 'data-testid': 'blw-greeting' });
      var gb = el('div', 'blw-bubble');
      appendRichText(gb, opts.greeting);
      greet.appendChild(gb);
      body.appendChild(greet);
    }
    var log = el('div', 'blw-log', {
      role: 'log',
      'aria-live': 'polite',
      'aria-relevant': 'additions',
      'aria-label': 'Conversation',
      'data-testid': 'blw-log'
    });
    var typing = el('div', 'blw-row blw-from-bot blw-typing', { 'data-testid': 'blw-typing', 'aria-hidden': 'true' });
    var typingBubble = el('div', 'blw-bubble blw-typing-bubble');
    for (var i = 0; i < 3; i++) typingBubble.appendChild(el('span', 'blw-dot'));
    typing.appendChild(typingBubble);
    typing.hidden = true;
    body.appendChild(log);
    body.appendChild(typing);
    ui.body = body;
    ui.log = log;
    ui.typing = typing;

    // Connection notice
    var conn = el('div', 'blw-conn', { role: 'status', 'data-testid': 'blw-conn' });
    conn.hidden = true;
    ui.conn = conn;

    // Composer
    var form = el('form', 'blw-composer', { novalidate: '' });
    var label = el('label', 'blw-sr-only', { for: 'blw-input' });
    label.textContent = 'Type your message';
    var input = el('textarea', 'blw-input', {
      id: 'blw-input',
      rows: '1',
      placeholder: 'Type your message\u2026',
      autocomplete: 'off',
      'data-testid': 'blw-input'
    });
    // A picture or a file: checked by the gateway (type and size), shown to the agent.
    var fileInput = el('input', 'blw-file-input', {
      type: 'file',
      accept: 'image/png,image/jpeg,image/gif,image/webp,application/pdf,text/plain',
      'data-testid': 'blw-file-input',
      tabindex: '-1',
      'aria-hidden': 'true'
    });
    var attachBtn = el('button', 'blw-attach', { type: 'button', 'aria-label': 'Send a picture or file', title: 'Send a picture or file', 'data-testid': 'blw-attach' });
    attachBtn.appendChild(icon(ICON_ATTACH));
    attachBtn.addEventListener('click', function () { fileInput.click(); });
    fileInput.addEventListener('change', function () {
      var file = fileInput.files && fileInput.files[0];
      fileInput.value = '';
      if (file) sendFile(file);
    });
    var sendBtn = el('button', 'blw-send', { type: 'submit', 'aria-label': 'Send message', 'data-testid': 'blw-send' });
    sendBtn.appendChild(icon(ICON_SEND));
    input.addEventListener('keydown', function (e) {
      if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
        e.preventDefault();
        submitInput();
      }
    });
    input.addEventListener('input', function () {
      autoGrow();
      updateCounter();
      tellTyping();
    });
    form.addEventListener('submit', function (e) {
      e.preventDefault();
      submitInput();
    });
    form.appendChild(label);
    form.appendChild(fileInput);
    form.appendChild(attachBtn);
    form.appendChild(input);
    form.appendChild(sendBtn);
    ui.input = input;
    ui.sendBtn = sendBtn;
    // Shown near the limit: how many characters are left, or how many too many.
    ui.counter = el('div', 'blw-counter', { 'data-testid': 'blw-counter', 'aria-live': 'polite', id: 'blw-counter' });
    ui.counter.hidden = true;
    input.setAttribute('aria-describedby', 'blw-counter');

    panel.appendChild(header);
    panel.appendChild(queue);
    panel.appendChild(body);
    panel.appendChild(conn);
    panel.appendChild(ui.counter);
    panel.appendChild(form);

    wrap.appendChild(launcher);
    wrap.appendChild(panel);
    root.appendChild(wrap);
    document.body.appendChild(host);

    renderSubtitle();
  }

  function autoGrow() {
    var input = ui.input;
    input.style.height = 'auto';
    input.style.height = Math.min(input.scrollHeight, 120) + 'px';
  }

  // The gateway's limit (the session says it); a longer message would be refused.
  var maxChars = 4000;
  var maxFileBytes = 0; // from the session; the gateway checks again

  // Characters as the gateway counts them (code points: an emoji is one, not two).
  function typedLength() {
    return Array.from(ui.input.value.trim()).length;
  }

  function tooLongBy() {
    return Math.max(0, typedLength() - maxChars);
  }

  function updateCounter() {
    var length = typedLength();
    var over = tooLongBy();
    ui.counter.hidden = length < maxChars * 0.8;
    ui.counter.classList.toggle('blw-over', over > 0);
    ui.counter.textContent = over > 0
      ? 'Too long by ' + over.toLocaleString() + ' characters (the limit is ' + maxChars.toLocaleString() + ').'
      : length.toLocaleString() + ' / ' + maxChars.toLocaleString();
    ui.sendBtn.disabled = over > 0;
  }

  function nearBottom() {
    var b = ui.body;
    return b.scrollHeight - b.scrollTop - b.clientHeight < 80;
  }

  function scrollToBottom() {
    ui.body.scrollTop = ui.body.scrollHeight;
  }

  function renderSubtitle() {
    var text;
    if (convState === 'queued') text = 'Connecting you to a person\u2026';
    else if (convState === 'assigned' && agentName) text = "You're chatting with " + agentName;
    else if (convState === 'assigned') text = "You're chatting with our team";
    else if (convState === 'pending_followup') text = "We'll follow up with you soon";
    else if (convState === 'resolved') text = 'This conversation is resolved';
    else text = 'Virtual assistant \u00b7 replies instantly';
    ui.subtitle.textContent = text;
    ui.avatar.textContent = ((convState === 'assigned' && agentName ? agentName : opts.title).charAt(0) || 'B').toUpperCase();
    ui.panel.setAttribute('data-state', convState);
  }

  function setConn(text) {
    var stick = ui.body && nearBottom();
    ui.panel.classList.toggle('blw-offline', !!text);
    if (text) {
      ui.conn.textContent = text;
      ui.conn.hidden = false;
    } else {
      ui.conn.hidden = true;
      ui.conn.textContent = '';
    }
    if (stick) scrollToBottom();
  }

  function updateBadge() {
    ui.badge.hidden = unread <= 0;
    ui.badge.textContent = unread > 9 ? '9+' : String(unread);
    ui.launcher.setAttribute('aria-label', (isOpen ? 'Close chat: ' : 'Open chat: ') + opts.title +
      (unread > 0 ? ' (' + unread + ' unread)' : ''));
  }

  function markSeen() {
    unread = 0;
    if (maxSeq > seenSeq) {
      seenSeq = maxSeq;
      local.setItem(SEEN_KEY, String(seenSeq));
    }
    updateBadge();
  }

  // ---------------------------------------------------------------- rendering messages

  function seqOf(node) {
    var s = node.getAttribute && node.getAttribute('data-seq');
    return s ? parseInt(s, 10) : null;
  }

  // Keep seq'd messages ordered by seq; in-flight customer bubbles stay at the end.
  function placeBySeq(node, seq) {
    var log = ui.log;
    var before = null;
    var kids = log.children;
    for (var i = 0; i < kids.length; i++) {
      var k = kids[i];
      if (k === node) continue;
      var s = seqOf(k);
      if (s !== null && s > seq) { before = k; break; }
      if (s === null && k.classList.contains('blw-sending')) { before = k; break; }
    }
    if (node.parentNode === log && node.nextElementSibling === before) return; // already in place
    log.insertBefore(node, before);
  }

  // A picture inline (a link to the full size), any other file as a download link. Only
  // http(s) addresses are used; a stored file's address is relative to the gateway.
  function attachmentNode(att) {
    if (!att || typeof att !== 'object' || typeof att.url !== 'string') return null;
    var href = att.file_id ? BASE + att.url : att.url;
    if (!/^https?:\/\//i.test(href)) return null;
    var name = String(att.name || 'file');
    var link = el('a', 'blw-attachment', { href: href, target: '_blank', rel: 'noopener noreferrer', 'data-testid': 'blw-attachment' });
    if (att.kind === 'image') {
      link.classList.add('blw-attachment-image');
      link.appendChild(el('img', 'blw-image', { src: href, alt: name, loading: 'lazy', 'data-testid': 'blw-image' }));
    } else {
      link.classList.add('blw-attachment-file');
      if (att.file_id) link.setAttribute('download', name);
      link.appendChild(icon(ICON_ATTACH, 'blw-attachment-icon'));
      var label = el('span', 'blw-attachment-name');
      label.textContent = name + (typeof att.size === 'number' ? ' (' + sizeText(att.size) + ')' : '');
      link.appendChild(label);
    }
    return link;
  }

  function sizeText(n) {
    if (n >= 1024 * 1024) return (n / (1024 * 1024)).toFixed(1) + ' MB';
    return Math.max(1, Math.round(n / 1024)) + ' KB';
  }

  function buildMessage(sender, senderName, text, createdAt, attachment) {
    var row = el('div', 'blw-row blw-from-' + sender, { 'data-testid': 'blw-msg', 'data-sender': sender });
    if (sender === 'system') {
      var sys = el('div', 'blw-system-text');
      appendRichText(sys, text);
      row.appendChild(sys);
      return row;
    }
    if (sender === 'agent' && senderName) {
      var name = el('div', 'blw-name');
      name.textContent = senderName;
      row.appendChild(name);
    }
    if (text) {
      var bubble = el('div', 'blw-bubble');
      appendRichText(bubble, text);
      var when = formatTime(createdAt);
      if (when) bubble.title = when;
      row.appendChild(bubble);
    }
    var att = attachmentNode(attachment);
    if (att) row.appendChild(att);
    if (sender === 'customer') {
      row.appendChild(el('div', 'blw-status', { 'data-testid': 'blw-status' }));
    }
    return row;
  }

  function setStatus(row, text, isError) {
    var st = row.querySelector('.blw-status');
    if (!st) return;
    st.textContent = text || '';
    st.classList.toggle('blw-status-error', !!isError);
    if (isError) st.setAttribute('role', 'alert'); else st.removeAttribute('role');
  }

  function markAcked(row, seq) {
    row.classList.remove('blw-sending', 'blw-failed');
    setStatus(row, 'sent', false);
    if (typeof seq === 'number' && !bySeq[seq]) {
      row.setAttribute('data-seq', String(seq));
      bySeq[seq] = row;
      if (seq > maxSeq) maxSeq = seq;
      placeBySeq(row, seq);
    }
  }

  function removeUnacked(clientId) {
    var before = unacked.length;
    unacked = unacked.filter(function (m) { return m.client_id !== clientId; });
    if (unacked.length !== before) saveUnacked();
  }

  function saveUnacked() {
    if (unacked.length) local.setItem(UNACKED_KEY, JSON.stringify(unacked));
    else local.removeItem(UNACKED_KEY);
  }

  function renderServerMessage(f) {
    var seq = typeof f.seq === 'number' ? f.seq : parseInt(f.seq, 10);
    if (isNaN(seq)) seq = null;
    if (seq !== null && bySeq[seq]) return; // never render the same seq twice
    var sender = ['customer', 'bot', 'agent', 'system'].indexOf(f.sender) >= 0 ? f.sender : 'bot';
    var stick = nearBottom();

    // Our own upload coming back: the "Sending…" line gives way to the real message.
    if (sender === 'customer' && f.client_id && pendingUploads[f.client_id]) {
      var pending = pendingUploads[f.client_id];
      delete pendingUploads[f.client_id];
      if (pending.parentNode) pending.parentNode.removeChild(pending);
    }
    // Our own message coming back (sync after reconnect / reload): adopt the local bubble.
    if (sender === 'customer' && f.client_id && byClientId[f.client_id]) {
      var mine = byClientId[f.client_id];
      removeUnacked(f.client_id);
      if (seqOf(mine) === null) markAcked(mine, seq);
      refreshQuickReplies();
      return;
    }

    var text = f.text == null ? '' : String(f.text);
    var buttons = Array.isArray(f.buttons) ? f.buttons.filter(function (b) { return b && b.title != null; }) : [];
    var attachment = f.attachment && typeof f.attachment === 'object' ? f.attachment : null;
    if (!text && !buttons.length && !attachment) return;

    var row = buildMessage(sender, f.sender_name, text, f.created_at, attachment);
    if (f.payload === 'queue_status') {
      // The chat line about our place in the queue: kept up to date in place by the queue
      // frames, so it and the bar always say the same.
      queueLine = { row: row, text: text };
      if (lastQueueText) updateQueueLine(lastQueueText);
    }
    if (sender === 'customer' && f.client_id) {
      byClientId[f.client_id] = row;
      removeUnacked(f.client_id);
    }
    if (sender === 'agent' && f.sender_name && !agentName) {
      agentName = String(f.sender_name);
      renderSubtitle();
    }
    if (buttons.length && sender !== 'customer') {
      var group = el('div', 'blw-quick-replies', { role: 'group', 'aria-label': 'Suggested replies' });
      buttons.forEach(function (b) {
        var btn = el('button', 'blw-quick-reply', { type: 'button', 'data-testid': 'blw-quick-reply' });
        btn.textContent = String(b.title);
        btn.addEventListener('click', function () {
          if (btn.disabled || group.classList.contains('blw-used')) return;
          group.classList.add('blw-used');
          btn.classList.add('blw-chosen');
          sendMessage(String(b.title), b.payload == null ? undefined : String(b.payload));
        });
        group.appendChild(btn);
      });
      row.appendChild(group);
    }

    if (seq !== null) {
      row.setAttribute('data-seq', String(seq));
      bySeq[seq] = row;
      if (seq > maxSeq) maxSeq = seq;
      placeBySeq(row, seq);
    } else {
      ui.log.appendChild(row);
    }

    if (sender !== 'customer') hideTyping();
    refreshQuickReplies();

    if (sender !== 'customer' && seq !== null) {
      if (isOpen && !document.hidden) markSeen();
      else if (seq > seenSeq) { unread++; updateBadge(); }
    }
    if (stick || sender === 'customer') scrollToBottom();
  }

  // Only the newest message's quick replies are usable, and only until one is chosen
  // or the customer has said something after it.
  function refreshQuickReplies() {
    var groups = ui.log.querySelectorAll('.blw-quick-replies');
    var lastRow = null;
    var kids = ui.log.children;
    for (var i = kids.length - 1; i >= 0; i--) {
      if (kids[i].getAttribute('data-testid') === 'blw-msg') { lastRow = kids[i]; break; }
    }
    for (var g = 0; g < groups.length; g++) {
      var group = groups[g];
      var active = group.parentNode === lastRow && !group.classList.contains('blw-used');
      group.classList.toggle('blw-inactive', !active);
      var btns = group.querySelectorAll('button');
      for (var b = 0; b < btns.length; b++) btns[b].disabled = !active;
    }
  }

  function addNotice(text, kind) {
    var stick = nearBottom();
    var n = el('div', 'blw-notice' + (kind ? ' blw-notice-' + kind : ''), { 'data-testid': 'blw-notice' });
    n.textContent = text;
    ui.log.appendChild(n);
    if (stick) scrollToBottom();
    return n;
  }

  function renderLocalCustomer(entry) {
    var row = buildMessage('customer', null, entry.text, null);
    row.classList.add('blw-sending');
    row.setAttribute('data-client-id', entry.client_id);
    setStatus(row, 'sending\u2026', false);
    byClientId[entry.client_id] = row;
    ui.log.appendChild(row);
    refreshQuickReplies();
    scrollToBottom();
    return row;
  }

  function showTyping(sender) {
    var who = sender === 'agent' && agentName ? agentName + ' is typing\u2026' : 'Typing\u2026';
    ui.typing.setAttribute('aria-label', who);
    ui.typing.className = 'blw-row blw-typing blw-from-' + (sender === 'agent' ? 'agent' : 'bot');
    var stick = nearBottom();
    ui.typing.hidden = false;
    if (stick) scrollToBottom();
    clearTimeout(typingTimer);
    typingTimer = setTimeout(hideTyping, TYPING_MS);
  }

  function hideTyping() {
    clearTimeout(typingTimer);
    ui.typing.hidden = true;
  }

  // Conversation replaced (old token rejected): forget what was rendered for the old one.
  function resetConversation() {
    Object.keys(bySeq).forEach(function (k) {
      var row = bySeq[k];
      if (row.parentNode) row.parentNode.removeChild(row);
    });
    bySeq = {};
    maxSeq = 0;
    seenSeq = 0;
    local.removeItem(SEEN_KEY);
    var notices = ui.log.querySelectorAll('.blw-notice');
    for (var i = 0; i < notices.length; i++) notices[i].parentNode.removeChild(notices[i]);
    Object.keys(byClientId).forEach(function (cid) {
      if (!byClientId[cid].parentNode) delete byClientId[cid];
    });
    convState = 'bot';
    agentName = null;
    ui.queue.hidden = true;
    renderSubtitle();
  }

  // ---------------------------------------------------------------- sending

  function submitInput() {
    var text = ui.input.value;
    if (!text.trim()) return;
    if (tooLongBy() > 0) {
      updateCounter(); // kept in the box, with the reason right above it
      return;
    }
    ui.input.value = '';
    autoGrow();
    updateCounter();
    typingSentAt = 0; // the next message's first key says so again at once
    sendMessage(text);
    ui.input.focus();
  }

  function sendMessage(text, payload) {
    text = String(text == null ? '' : text).trim();
    if (!text) return null;
    start();
    var entry = { client_id: uuid(), text: text };
    if (payload !== undefined) entry.payload = payload;
    unacked.push(entry);
    saveUnacked();
    renderLocalCustomer(entry);
    transmit(entry);
    return entry.client_id;
  }

  // Uploads in flight: client_id -> their "Sending…" row.
  var pendingUploads = {};

  function sendFile(file) {
    start();
    var clientId = uuid();
    var row = el('div', 'blw-row blw-from-customer blw-sending', { 'data-testid': 'blw-upload' });
    var bubble = el('div', 'blw-bubble blw-upload-bubble');
    bubble.textContent = file.name;
    row.appendChild(bubble);
    row.appendChild(el('div', 'blw-status', { 'data-testid': 'blw-status' }));
    ui.log.appendChild(row);
    scrollToBottom();
    function failed(text) {
      delete pendingUploads[clientId];
      row.classList.remove('blw-sending');
      row.classList.add('blw-failed');
      setStatus(row, text, true);
      row.scrollIntoView({ block: 'nearest' });
    }
    if (maxFileBytes && file.size > maxFileBytes) {
      failed('This file is ' + sizeText(file.size) + '; the limit is ' + sizeText(maxFileBytes) + '. Please send a smaller one.');
      return;
    }
    pendingUploads[clientId] = row;
    setStatus(row, 'Sending\u2026', false);
    function upload() {
      var form = new FormData();
      form.append('token', token);
      form.append('client_id', clientId);
      form.append('file', file, file.name);
      return fetch(BASE + '/webchat/files', { method: 'POST', body: form, credentials: 'omit', cache: 'no-store' });
    }
    function whenReady(tries) {
      if (token) return Promise.resolve();
      if (tries <= 0) return Promise.reject(new Error('no session'));
      return new Promise(function (resolve) { setTimeout(resolve, 300); }).then(function () { return whenReady(tries - 1); });
    }
    whenReady(20).then(upload).then(function (res) {
      if (res.ok) return;
      return res.json().catch(function () { return {}; }).then(function (err) {
        failed((err && err.message) || 'The file could not be sent (HTTP ' + res.status + ').');
      });
    }).catch(function () {
      failed('The file could not be sent: no connection. Please try again.');
    });
  }

  function transmit(entry) {
    if (!connected || !ws) return false; // stays in `unacked`, resent after the next (re)connect
    var frame = { type: 'message', client_id: entry.client_id, text: entry.text };
    if (entry.payload !== undefined) frame.payload = entry.payload;
    return sendFrame(frame);
  }

  // While the customer types, the agent sees "The customer is typing…" (a hint every 3 s).
  var typingSentAt = 0;
  function tellTyping() {
    if (!ui.input.value.trim() || !ws || ws.readyState !== 1) return;
    var now = Date.now();
    if (now - typingSentAt < 3000) return;
    typingSentAt = now;
    sendFrame({ type: 'typing' });
  }

  function sendFrame(frame) {
    try {
      ws.send(JSON.stringify(frame));
      return true;
    } catch (e) {
      return false;
    }
  }

  function resendUnacked() {
    unacked.slice().forEach(function (entry) {
      var row = byClientId[entry.client_id];
      if (row && !row.classList.contains('blw-failed')) setStatus(row, 'sending\u2026', false);
      transmit(entry);
    });
  }

  // ---------------------------------------------------------------- connection

  function start() {
    if (started) return;
    started = true;
    setConn('Connecting\u2026');
    step();
  }

  function step() {
    clearTimeout(reconnectTimer);
    reconnectTimer = null;
    if (needSession || !token) {
      openSession().then(function (ok) {
        if (ok) connect();
        else scheduleReconnect();
      });
    } else {
      connect();
    }
  }

  function openSession() {
    if (sessionInFlight) return Promise.resolve(false);
    sessionInFlight = true;
    var sentToken = token || null;
    var sentUser = opts.user;
    var body = { token: sentToken };
    if (sentUser) body.user = sentUser;
    return fetch(BASE + '/webchat/session', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store'
    }).then(function (res) {
      if (sentUser && (res.status === 400 || res.status === 403)) {
        // The shop's signature was refused: tell the site's developer, and chat anonymously
        // (the bot can still verify the customer itself).
        return res.json().catch(function () { return {}; }).then(function (err) {
          console.error('Brightline chat: the signed-in user was refused: ' +
            ((err && err.message) || ('HTTP ' + res.status)));
          opts.user = null;
          sessionInFlight = false;
          return openSession();
        });
      }
      if ((res.status === 400 || res.status === 401 || res.status === 403 || res.status === 404) && sentToken) {
        // The old token is no longer valid: start a new conversation.
        token = null;
        local.removeItem(TOKEN_KEY);
        resetConversation();
        sessionInFlight = false;
        return openSession();
      }
      if (!res.ok) throw new Error('session HTTP ' + res.status);
      return res.json().then(function (data) {
        sessionInFlight = false;
        if (!data || typeof data.token !== 'string' || !data.token) throw new Error('session: no token');
        var changed = (sentToken && data.token !== sentToken) ||
          (conversationId && data.conversation_id && data.conversation_id !== conversationId);
        if (changed) resetConversation();
        token = data.token;
        conversationId = data.conversation_id || conversationId;
        if (typeof data.max_file_bytes === 'number' && data.max_file_bytes > 0) maxFileBytes = data.max_file_bytes;
        if (typeof data.max_message_chars === 'number' && data.max_message_chars > 0) {
          maxChars = data.max_message_chars;
          updateCounter();
        }
        local.setItem(TOKEN_KEY, token);
        needSession = false;
        return true;
      });
    }).catch(function () {
      sessionInFlight = false;
      return false;
    });
  }

  function connect() {
    if (ws) return;
    var url = WS_BASE + '/webchat/ws?token=' + encodeURIComponent(token);
    var sock;
    try {
      sock = new WebSocket(url);
    } catch (e) {
      scheduleReconnect();
      return;
    }
    ws = sock;

    sock.onopen = function () {
      if (ws !== sock) return;
      connected = true;
      setConn(null);
      clearTimeout(stableTimer);
      stableTimer = setTimeout(function () { attempts = 0; }, STABLE_AFTER_MS);
      sendFrame({ type: 'sync', after_seq: maxSeq });
      resendUnacked();
    };

    sock.onmessage = function (ev) {
      if (ws !== sock) return;
      var f;
      try {
        f = JSON.parse(ev.data);
      } catch (e) {
        return;
      }
      if (!f || typeof f !== 'object') return;
      attempts = 0;
      try {
        handleFrame(f);
      } catch (e) {
        if (window.console && console.error) console.error('BrightlineChat: bad frame', e);
      }
    };

    sock.onerror = function () { /* a close event follows */ };

    sock.onclose = function (ev) {
      if (ws !== sock) return;
      ws = null;
      connected = false;
      clearTimeout(stableTimer);
      // 1008 policy violation / 4xxx application codes: most likely a rejected token.
      if (ev && (ev.code === 1008 || (ev.code >= 4000 && ev.code < 5000))) needSession = true;
      scheduleReconnect();
    };
  }

  function scheduleReconnect() {
    if (reconnectTimer) return;
    attempts++;
    if (attempts % SESSION_CHECK_EVERY === 0) needSession = true; // handshake refusals look like network errors
    var base = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * Math.pow(2, attempts - 1));
    var delay = Math.min(BACKOFF_MAX_MS, Math.round(base * (0.75 + Math.random() * 0.5)));
    setConn('Reconnecting\u2026');
    reconnectTimer = setTimeout(step, delay);
  }

  window.addEventListener('online', function () {
    if (started && !ws && reconnectTimer) {
      attempts = 0;
      step();
    }
  });

  // ---------------------------------------------------------------- incoming frames

  var softRetryTimer = null;

  function handleFrame(f) {
    switch (f.type) {
      case 'message': {
        var incoming = typeof f.seq === 'number' ? f.seq : parseInt(f.seq, 10);
        if (!isNaN(incoming) && maxSeq > 0 && incoming > maxSeq + 1) {
          // A gap: an event was lost on the way (broker reconnect). The server has every
          // message, so ask for everything after what we have; duplicates are skipped by seq.
          sendFrame({ type: 'sync', after_seq: maxSeq });
        }
        renderServerMessage(f);
        break;
      }

      case 'ack': {
        var row = f.client_id ? byClientId[f.client_id] : null;
        removeUnacked(f.client_id);
        var seq = typeof f.seq === 'number' ? f.seq : parseInt(f.seq, 10);
        if (row) markAcked(row, isNaN(seq) ? null : seq);
        refreshQuickReplies();
        break;
      }

      case 'queue':
        ui.queueText.textContent = typeof f.text === 'string' && f.text ? f.text : queueText(f.position, f.eta_seconds);
        if (typeof f.text === 'string' && f.text) updateQueueLine(f.text);
        ui.queue.hidden = false;
        if (convState !== 'queued') {
          convState = 'queued';
          renderSubtitle();
        }
        break;

      case 'agent_joined': {
        // The gateway also stores a system message for the join (it shows in the history after
        // a reload and on every channel), so only the header changes here.
        agentName = f.name ? String(f.name) : agentName;
        convState = 'assigned';
        ui.queue.hidden = true;
        renderSubtitle();
        break;
      }

      case 'state':
        convState = String(f.state || 'bot');
        if (convState === 'queued') {
          if (ui.queue.hidden) {
            ui.queueText.textContent = queueText(null, null);
            ui.queue.hidden = false;
          }
        } else {
          ui.queue.hidden = true;
        }
        if (convState === 'bot' || convState === 'resolved') agentName = null;
        renderSubtitle();
        break;

      case 'typing':
        showTyping(f.sender);
        break;

      case 'error':
        handleError(f);
        break;

      default:
        break; // unknown frame types are ignored (forward compatible)
    }
  }

  function handleError(f) {
    var code = String(f.code || '');
    var text = f.message ? String(f.message) : defaultErrorText(code);
    var row = f.client_id ? byClientId[f.client_id] : null;
    if (!row || seqOf(row) !== null) {
      addNotice(text, 'error');
      return;
    }
    if (code === 'rate_limited' || code === 'unavailable') {
      // Transient: keep it in the unacknowledged list and try again shortly.
      setStatus(row, text, true);
      clearTimeout(softRetryTimer);
      softRetryTimer = setTimeout(function () { if (connected) resendUnacked(); }, RETRY_SOFT_ERROR_MS);
      return;
    }
    // too_long / bad_request: not deliverable as is; do not resend.
    var entry = null;
    unacked.forEach(function (m) { if (m.client_id === f.client_id) entry = m; });
    removeUnacked(f.client_id);
    row.classList.remove('blw-sending');
    row.classList.add('blw-failed');
    setStatus(row, text, true);
    if (code === 'too_long' && entry && !ui.input.value.trim()) {
      ui.input.value = entry.text; // let the customer shorten it
      autoGrow();
      updateCounter();
      if (isOpen) ui.input.focus();
    }
    row.scrollIntoView({ block: 'nearest' }); // the reason, where the customer can read it
    refreshQuickReplies();
  }

  function defaultErrorText(code) {
    switch (code) {
      case 'too_long': return 'That message is too long. Please shorten it and send again.';
      case 'rate_limited': return "You're sending messages too quickly. Retrying in a moment\u2026";
      case 'unavailable': return 'Chat is temporarily unavailable. Retrying\u2026';
      default: return 'This message could not be sent.';
    }
  }

  // ---------------------------------------------------------------- public API

  function open(opts2) {
    start();
    if (isOpen) return;
    isOpen = true;
    ui.panel.hidden = false;
    ui.wrap.classList.add('blw-is-open');
    ui.launcher.setAttribute('aria-expanded', 'true');
    session.setItem(OPEN_KEY, '1');
    markSeen();
    scrollToBottom();
    if (!(opts2 && opts2.noFocus)) {
      try { ui.input.focus({ preventScroll: true }); } catch (e) { ui.input.focus(); }
    }
  }

  function close() {
    if (!isOpen) return;
    isOpen = false;
    ui.panel.hidden = true;
    ui.wrap.classList.remove('blw-is-open');
    ui.launcher.setAttribute('aria-expanded', 'false');
    session.removeItem(OPEN_KEY);
    updateBadge();
  }

  document.addEventListener('visibilitychange', function () {
    if (!document.hidden && isOpen) markSeen();
  });

  function init() {
    build();
    // Messages typed before a reload and never acknowledged: show them and resend after connecting.
    unacked.forEach(renderLocalCustomer);
    if (opts.open || session.getItem(OPEN_KEY) === '1') open({ noFocus: true });
    else if (token || unacked.length) start(); // existing conversation: fetch history, count unread
  }

  window.BrightlineChat = {
    open: function () { if (ui.panel) open(); },
    close: function () { if (ui.panel) close(); },
    send: function (text) { return ui.panel ? sendMessage(text) : null; },
    get root() { return root; } // shadow root (or host element without Shadow DOM), for tests
  };

  if (document.body) init();
  else document.addEventListener('DOMContentLoaded', init);
})();
