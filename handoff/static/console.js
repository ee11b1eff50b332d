/*
 * Agent console: the live queue and the conversation workspace. This is the entry module; the
 * work is in console/*.js (ES modules, served as they are, no build step).
 *
 * Safety rule: everything that came from a customer, an agent or the server is put into the page
 * with textContent / text nodes / setAttribute — never innerHTML. The CSRF token and who is signed
 * in come from <meta> and data- attributes (the Content-Security-Policy forbids inline script).
 *
 * Cache-busting: pages load this file from /console/static/<version>/console.js, where <version>
 * is a hash over every file under static/ (see _static_version in handoff/console.py). Imports are
 * relative, so they resolve under the same versioned directory: a change to any module changes
 * every URL, and no browser can mix a new entry with an old cached module.
 */

import { initAlertsButton } from "./console/alerts.js";
import { initAvailability } from "./console/availability.js";
import { initCannedPage } from "./console/canned-page.js";
import { tick } from "./console/clock.js";
import { initConversation } from "./console/conversation.js";
import { initCustomerPage } from "./console/customer.js";
import { initDashboard } from "./console/dashboard.js";
import { initInbox } from "./console/inbox.js";
import { connectLive } from "./console/live.js";
import { initQueue } from "./console/queue.js";
import { readAgent } from "./console/session.js";
import { initTeam } from "./console/team.js";

const PAGE = document.body.dataset.page || "";

initAvailability();
initAlertsButton();
if (PAGE === "queue") initQueue(readAgent());
else if (PAGE === "team") initTeam(readAgent());
else if (PAGE === "dashboard") initDashboard(readAgent());
else if (PAGE === "inbox") initInbox();
else if (PAGE === "canned") initCannedPage();
else if (PAGE === "customer") initCustomerPage();
else if (PAGE === "conversation") initConversation(readAgent());
else if (PAGE === "not-found") connectLive(function () {});
if (PAGE === "queue" || PAGE === "conversation") setInterval(tick, 1000);
