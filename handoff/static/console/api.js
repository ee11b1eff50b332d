/* The console's JSON API: URLs, and requests with the CSRF header and readable errors. */

import { csrfToken, toLogin } from "./session.js";

/** A failed request. status 0 and code "network" when the server could not be reached. */
export class ApiError extends Error {
  constructor(message, status, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/** The console page of a conversation. */
export function conversationUrl(id) {
  return "/console/conversations/" + encodeURIComponent(String(id));
}

/** The API URL of a conversation, or of one of its actions ("claim", "reply", …). */
export function apiConversation(id, action) {
  return "/console/api/conversations/" + encodeURIComponent(String(id)) + (action ? "/" + action : "");
}

/**
 * Send a request and return the decoded JSON answer. Throws ApiError with a message fit to show
 * the agent (the server's own message when it gave one). A 401 also leaves for the login page.
 */
export async function api(method, path, payload) {
  const init = { method: method, credentials: "same-origin", headers: { Accept: "application/json" } };
  if (method !== "GET") init.headers["X-CSRF-Token"] = csrfToken();
  if (payload instanceof FormData) {
    init.body = payload; // multipart: the browser sets the Content-Type with its boundary
  } else if (payload !== undefined) {
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
