// The public REST API, as the studio uses it: JSON in and out, the session cookie for
// identity, the session's CSRF token on every write, problem documents as ApiError.

export class ApiError extends Error {
  constructor(status, title, detail, errors) {
    super(detail || title);
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.errors = errors || [];
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

export async function api(method, path, body, { signal, query } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (!SAFE.has(method) && csrfToken) headers["X-CSRF-Token"] = csrfToken;
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
  try {
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(0, "Imagetron is unreachable",
      "The studio cannot reach Imagetron. Check that it is running, then try again.");
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
