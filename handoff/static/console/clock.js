/* Waiting times that count up every second without asking the server. */

import { h } from "./dom.js";
import { fmtDuration } from "./format.js";

/**
 * Update every element with data-since (epoch ms) to the time elapsed since then. Those that
 * also have data-wait-colors turn amber from 3 minutes and red from 10 minutes.
 */
export function tick() {
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
  for (const el of document.querySelectorAll("[data-due]")) {
    const left = (Number(el.dataset.due) - now) / 1000;
    el.textContent = left >= 0 ? fmtDuration(left) : "missed " + fmtDuration(-left) + " ago";
    el.classList.toggle("sla-breached", left < 0 || el.dataset.slaState === "breached");
    el.classList.toggle("sla-warning", left >= 0 && el.dataset.slaState === "warning");
  }
}

/**
 * The time left to a conversation's nearest SLA target, kept current by tick(): amber once its
 * warning came, red once missed. item.sla.seconds_left was true at `received`.
 */
export function slaCell(item, received) {
  const sla = item.sla;
  if (!sla) return h("td", { class: "num muted", testid: "time-to-breach" }, "—");
  const due = received + Number(sla.seconds_left) * 1000;
  return h("td", {
    class: "num sla",
    testid: "time-to-breach",
    title: (sla.kind || "").replace("_", " ") + " target",
    dataset: { due: due, slaState: sla.state },
  });
}

/**
 * A table cell that tick() keeps current. item.waiting_seconds was true at `received` (epoch
 * ms, when the list arrived), so the start is computed from that rather than from the client's
 * clock compared to the server's.
 */
export function sinceCell(item, received, colors) {
  const since = received - Math.max(0, Number(item.waiting_seconds) || 0) * 1000;
  const cell = h("td", { class: "num", testid: "waiting-time", dataset: { since: since } });
  if (colors) cell.dataset.waitColors = "";
  return cell;
}
