// The public REST API, as the studio uses it: JSON in and out, the session cookie for
// identity, the session's CSRF token on every write, problem documents as ApiError.
//
// Sent once, however often it is sent: every POST the API takes an Idempotency-Key on
// (contracts/openapi.yaml) carries a key of its own, and is sent again with that same key
// while it has no answer (Imagetron unreachable or too slow, 502/503/504, or 409 while its
// first sending is still being answered): three attempts in all, waiting Retry-After (at
// most 10 s). The gateway answers a repeat with the first answer, so a slow moment never
// makes two prompts or two tasks. Any other answer is final.

export class ApiError extends Error {
  constructor(status, title, detail, errors) {
    super(detail || title);
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.errors = errors || [];
    /** Seconds the answer's Retry-After asked to wait; null without one. */
    this.retryAfter = null;
  }
}

let csrfToken = null;
const signedOutListeners = new Set();

export function setCsrfToken(token) {
  csrfToken = token;
}

/** Called when the API says the session is gone (expired, signed out elsewhere, revoked). */
export function onSessionEnded(listener) {
  signedOutListeners.add(listener);
  return () => signedOutListeners.delete(listener);
}

const SAFE = new Set(["GET", "HEAD"]);

/** The POSTs that take an Idempotency-Key (operations of contracts/openapi.yaml). */
const IDEMPOTENT_POSTS = [
  /^\/api\/v1\/prompts$/, // createPrompt
  /^\/api\/v1\/prompts\/generate$/, // generatePrompts
  /^\/api\/v1\/prompts\/[^/]+\/imagine$/, // imaginePrompt
  /^\/api\/v1\/chats$/, // startChat
  /^\/api\/v1\/chats\/[^/]+\/messages$/, // continueChat
  /^\/api\/v1\/tasks\/[^/]+\/(reroll|variation|upscale)$/, // rerollTask, varyTask, upscaleTask
  /^\/api\/v1\/publications$/, // createPublications
];
export const POST_ATTEMPTS = 3;
const RETRY_WAIT_MAX_MS = 10_000;
/** An attempt without an answer after this long is sent again (the language model's calls
 * may take up to the gateway's two minutes). */
const ATTEMPT_TIMEOUT_MS = 130_000;
/** Answers after which the request is sent again (409: only while its first sending is
 * still being answered, which says so with Retry-After). */
const NO_ANSWER = new Set([502, 503, 504]);

export function takesIdempotencyKey(method, path) {
  return method === "POST" && IDEMPOTENT_POSTS.some((pattern) => pattern.test(path));
}

/** A random UUID; `crypto.randomUUID` needs a secure context, this does not. */
function newKey() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6] & 0x0f) | 0x40;
  bytes[8] = (bytes[8] & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function retryWaitMs(error, attempt) {
  const retryAfter = error.retryAfter;
  if (error.status !== 0 && !NO_ANSWER.has(error.status)
      && !(error.status === 409 && retryAfter !== null)) return null;
  const seconds = retryAfter !== null ? retryAfter : attempt;
  return Math.min(seconds * 1000, RETRY_WAIT_MAX_MS);
}

const sleep = (ms, signal) => new Promise((resolve, reject) => {
  const aborted = () => reject(signal.reason ?? new DOMException("Aborted", "AbortError"));
  if (signal?.aborted) return aborted();
  const timer = setTimeout(resolve, ms);
  signal?.addEventListener("abort", () => {
    clearTimeout(timer);
    aborted();
  }, { once: true });
});

export async function api(method, path, body, options = {}) {
  if (!takesIdempotencyKey(method, path)) return send(method, path, body, options);
  const key = newKey();
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await send(method, path, body, { ...options, idempotencyKey: key,
                                              timeoutMs: ATTEMPT_TIMEOUT_MS });
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      const wait = retryWaitMs(error, attempt);
      if (wait === null) throw error;
      if (attempt >= POST_ATTEMPTS) throw gaveUp(error);
      await sleep(wait, options.signal);
    }
  }
}

/** The last attempt had no answer either: say so, and that it may have been done. */
function gaveUp(error) {
  const why = error.status === 0
    ? "could not be reached or did not answer in time"
    : error.status === 409 ? "was still busy with it" : `did not answer (${error.status})`;
  const given = new ApiError(error.status, "No answer from Imagetron",
    `Imagetron ${why}, ${POST_ATTEMPTS} times in a row. It may still have done it: `
    + "wait a moment and look before you try again.", error.errors);
  given.retryAfter = error.retryAfter;
  return given;
}

async function send(method, path, body, { signal, query, idempotencyKey, timeoutMs } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (!SAFE.has(method) && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  if (idempotencyKey) headers["Idempotency-Key"] = idempotencyKey;
  let url = path;
  if (query) {
    const params = new URLSearchParams();
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined && value !== null && value !== "") params.set(name, String(value));
    }
    const text = params.toString();
    if (text) url += (url.includes("?") ? "&" : "?") + text;
  }
  let response;
  const attempt = timeoutMs ? new AbortController() : null;
  const timer = attempt && setTimeout(() => attempt.abort(), timeoutMs);
  const stop = () => attempt.abort(signal.reason);
  if (attempt && signal) {
    if (signal.aborted) stop();
    else signal.addEventListener("abort", stop, { once: true });
  }
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      signal: attempt ? attempt.signal : signal,
    });
  } catch (error) {
    if (signal?.aborted || (error.name === "AbortError" && !attempt?.signal.aborted)) throw error;
    if (attempt?.signal.aborted) {
      throw new ApiError(0, "Imagetron is too slow",
        `Imagetron did not answer within ${timeoutMs / 1000} s; try again.`);
    }
    throw new ApiError(0, "Imagetron is unreachable",
      "The studio cannot reach Imagetron. Check that it is running, then try again.");
  } finally {
    clearTimeout(timer);
    if (attempt && signal) signal.removeEventListener("abort", stop);
  }
  if (response.status === 204) return null;
  const type = response.headers.get("content-type") || "";
  const data = type.includes("json") ? await response.json().catch(() => null) : null;
  if (!response.ok) {
    const error = new ApiError(
      response.status,
      (data && data.title) || response.statusText || "Error",
      (data && data.detail) || `Imagetron answered ${response.status}; try again.`,
      data && data.errors,
    );
    const retryAfter = Number.parseFloat(response.headers.get("retry-after") ?? "");
    error.retryAfter = Number.isFinite(retryAfter) ? Math.max(retryAfter, 0) : null;
    if (response.status === 401 && path !== "/api/v1/session") {
      for (const listener of signedOutListeners) listener(error);
    }
    throw error;
  }
  return data;
}

export const get = (path, query, options) => api("GET", path, undefined, { ...options, query });
export const post = (path, body, options) => api("POST", path, body, options);
export const put = (path, body, options) => api("PUT", path, body, options);
export const patch = (path, body, options) => api("PATCH", path, body, options);
export const del = (path, options) => api("DELETE", path, undefined, options);

export const thumbnailUrl = (imageId) => `/api/v1/images/${imageId}/thumbnail`;
export const contentUrl = (imageId) => `/api/v1/images/${imageId}/content`;
export const previewUrl = (task) => `/api/v1/tasks/${task.id}/preview?progress=${task.progress}`;
