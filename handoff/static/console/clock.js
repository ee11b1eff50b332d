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
