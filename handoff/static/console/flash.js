/* Messages for the agent: the page-wide flash banner and the error line under a control. */

import { $ } from "./dom.js";

let flashTimer = null;

/** Show a message in the #flash banner; errors stay 10 s, kind "info" 5 s. */
export function flash(message, kind) {
  const box = $("#flash");
  if (!box) return;
  box.textContent = message;
  box.className = "flash" + (kind === "info" ? " flash--info" : "");
  box.hidden = false;
  clearTimeout(flashTimer);
  flashTimer = setTimeout(function () { box.hidden = true; }, kind === "info" ? 5000 : 10000);
}

/** Put a message in (or, with none, clear) an error element; a missing element is ignored. */
export function setError(el, message) {
  if (el) el.textContent = message || "";
}
