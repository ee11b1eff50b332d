/*
 * Who is signed in, the CSRF token, and the way out to the login page. The server puts these in
 * a <meta> tag and data- attributes on <body>, because the Content-Security-Policy forbids
 * inline script. They never change while a page is open.
 */

let csrf = null;
let leaving = false;

/** The signed-in agent from <body data-agent-…> (id 0 and empty strings on the login page). */
export function readAgent() {
  const data = document.body.dataset;
  return {
    id: Number(data.agentId || 0),
    name: data.agentName || "",
    role: data.agentRole || "",
  };
}

/** The token every non-GET API request carries in X-CSRF-Token (read once, from <meta>). */
export function csrfToken() {
  if (csrf === null) {
    const meta = document.querySelector('meta[name="csrf-token"]');
    csrf = meta ? meta.getAttribute("content") || "" : "";
  }
  return csrf;
}

/** Go to the login page, coming back here after signing in. Only the first call navigates. */
export function toLogin() {
  if (leaving) return;
  leaving = true;
  const next = location.pathname + location.search;
  location.assign("/console/login?next=" + encodeURIComponent(next));
}

/** Whether the page is on its way to the login page (the live connection stops retrying). */
export function isLeaving() {
  return leaving;
}
