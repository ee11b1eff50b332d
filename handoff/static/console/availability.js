/*
 * The availability switch in the top bar: online (conversations may be pushed to me), away or
 * offline (none are). The server keeps it; an agent whose console is closed for a while counts
 * as away anyway.
 */

import { api } from "./api.js";
import { $ } from "./dom.js";
import { flash } from "./flash.js";

const LABELS = {
  online: "You're online: conversations can be assigned to you.",
  away: "You're away: nothing new is assigned to you.",
  offline: "You're offline: nothing new is assigned to you.",
};

export function initAvailability() {
  const select = $("#availability");
  const box = $("#availability-box");
  if (!select || !box) return;
  let current = select.value;

  function show(value) {
    box.className = "availability availability--" + value;
  }

  select.addEventListener("change", async function () {
    const wanted = select.value;
    select.disabled = true;
    try {
      const answer = await api("POST", "/console/api/me/availability", { availability: wanted });
      current = answer.availability;
      show(current);
      flash(LABELS[current] || "Saved.", "info");
    } catch (err) {
      select.value = current; // nothing changed on the server
      flash(err.message);
    } finally {
      select.disabled = false;
    }
  });
  show(current);
}
