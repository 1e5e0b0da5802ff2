// A small fetch wrapper for quart_app's JSON API. No dependencies, no build step.
//
// - same-origin credentials, so the auth cookie goes along;
// - JSON in and out; unsafe methods always declare Content-Type: application/json,
//   which the server requires of cookie-authenticated requests (CSRF defence);
// - 204 (and any empty body) resolves with body null;
// - a non-2xx answer rejects with an ApiError carrying status and parsed body;
// - 401 sends the browser to the sign-in page, with `next` pointing back here.

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

export class ApiError extends Error {
  constructor(status, body) {
    super(body && body.error ? `HTTP ${status}: ${body.error}` : `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.ok = false;
    this.body = body;
  }
}

async function readBody(response) {
  const text = await response.text();
  if (!text) return null;
  const type = response.headers.get("Content-Type") || "";
  return type.includes("application/json") ? JSON.parse(text) : text;
}

export function loginUrl() {
  const base = document.body.dataset.loginUrl || "/login";
  const here = window.location.pathname + window.location.search;
  return `${base}?next=${encodeURIComponent(here)}`;
}

// Resolves with {status, ok, body, location}; rejects with ApiError on non-2xx.
export async function apiFetch(path, { method = "GET", json } = {}) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin" };
  if (json !== undefined || !SAFE_METHODS.has(method)) {
    headers["Content-Type"] = "application/json";
  }
  if (json !== undefined) init.body = JSON.stringify(json);

  const response = await fetch(path, init);
  const body = await readBody(response);
  if (response.status === 401) window.location.assign(loginUrl());
  if (!response.ok) throw new ApiError(response.status, body);
  return { status: response.status, ok: true, body, location: response.headers.get("Location") };
}

export const api = {
  get: (path) => apiFetch(path),
  post: (path, json) => apiFetch(path, { method: "POST", json }),
  patch: (path, json) => apiFetch(path, { method: "PATCH", json }),
  delete: (path) => apiFetch(path, { method: "DELETE" }),
};
