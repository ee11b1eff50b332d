/* The live connection: one WebSocket to /console/ws that reconnects by itself. */

import { watchForAlerts } from "./alerts.js";
import { api } from "./api.js";
import { $ } from "./dom.js";
import { isLeaving, toLogin } from "./session.js";

/**
 * Open the console's WebSocket, reconnecting with exponential backoff (1 s .. 30 s, jittered),
 * and show its state in #live-status. onEvent(event) gets every JSON object the server sends.
 * onOpen(socket, count) runs when the server's first event (the queue snapshot) arrives, count
 * being 1 for the first connection and more after reconnects. Returns { send(obj) }, which drops
 * the object while offline.
 */
export function connectLive(onEvent, onOpen) {
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
    if (timer || isLeaving()) return;
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
    if (isLeaving()) return;
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
      watchForAlerts(data); // sound and desktop notification, on every page
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

  /** Skip the wait when the tab comes back or the network returns. */
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
