// The one place the site talks to the Pressroom API (described by `/api/openapi.json`):
// same-origin `/api/...` requests carrying the browser's anonymous user id, and every failure
// turned into words.

const USER_ID_KEY = "pressroom.userId";

/** A random id per browser, kept in localStorage, so variant assignment is sticky. */
export function userId() {
  let id = readStorage(USER_ID_KEY);
  if (!id) {
    id = randomId();
    writeStorage(USER_ID_KEY, id);
  }
  return id;
}

function randomId() {
  if (crypto.randomUUID) return crypto.randomUUID();
  // randomUUID exists only in secure contexts; plain-http hosts still get 128 random bits.
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function readStorage(key) {
  try {
    return localStorage.getItem(key);
  } catch {
    return null; // storage disabled (private mode, policy): fall back to a per-page id
  }
}

function writeStorage(key, value) {
  try {
    localStorage.setItem(key, value);
  } catch {
    // Not persisted; the id still holds for this page.
  }
}

/** An API call that failed; `message` is readable by a person, `status` is 0 for network errors. */
export class ApiError extends Error {
  constructor(message, { status = 0, code = "network_error", details = null } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

const FALLBACK_MESSAGES = {
  429: "Too many requests right now; wait a moment and try again.",
  502: "A model or the database answered with an error. Try again.",
  503: "A model or the database is unavailable at the moment. Try again shortly.",
  504: "The model took too long to answer. Try again, perhaps with fewer tokens.",
};

/**
 * Call `/api/<path>` and return the parsed JSON body, or throw an ApiError.
 * @param {string} path e.g. "generate" or "stats?since=..."
 * @param {{method?: string, body?: unknown, signal?: AbortSignal}} options
 */
export async function callApi(path, { method = "GET", body, signal } = {}) {
  const headers = { Accept: "application/json", "X-User-Id": userId() };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let response;
  try {
    response = await fetch(`/api/${path}`, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError("Could not reach the Pressroom API. Check your connection and try again.");
  }
  const payload = await readJson(response);
  if (response.ok && payload !== undefined) return payload;
  throw toApiError(response, payload);
}

async function readJson(response) {
  try {
    return await response.json();
  } catch {
    return undefined; // empty or non-JSON body (e.g. an HTML error page from a proxy)
  }
}

function toApiError(response, payload) {
  const error = payload && typeof payload === "object" ? payload.error : undefined;
  if (error && typeof error.message === "string") {
    return new ApiError(error.message, {
      status: response.status,
      code: String(error.code ?? "error"),
      details: error.details ?? null,
    });
  }
  const status = response.status;
  const message = response.ok
    ? "The server sent an answer the page cannot read."
    : FALLBACK_MESSAGES[status] ?? `The server answered ${status} ${response.statusText}`.trim() + ".";
  return new ApiError(message, { status, code: response.ok ? "bad_response" : `http_${status}` });
}

/**
 * Field-level problems from a validation error: [{field, reason}] (the API's `details` shape).
 * @returns {{field: string, reason: string}[]}
 */
export function fieldProblems(error) {
  if (!(error instanceof ApiError) || !Array.isArray(error.details)) return [];
  return error.details
    .filter((item) => item && typeof item.field === "string")
    .map((item) => ({ field: item.field, reason: String(item.reason ?? "invalid") }));
}
