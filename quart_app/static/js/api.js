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

// Live updates: subscribe(path, handlers) follows one of the API's Server-Sent Events
// streams (/api/things/events, /api/admin/events) with the browser's EventSource, which
// sends the cookie along (same origin) and reconnects by itself after a dropped
// connection or an `event: end`, asking for what it missed with Last-Event-ID.
//
// handlers, each optional:
// - events: {name: (data, id) => ...} for thing.created, thing.updated, thing.deleted,
//   reset, user.created, ...; data is the event's JSON, parsed;
// - onopen({resumed}): the stream is open. resumed is false when it starts from now
//   instead of after the last event seen: whatever was loaded before may be stale;
// - onreconnecting(): the EventSource is retrying on its own;
// - onend(reason): the server ended the stream on purpose ("revoked", "shutdown");
// - onclosed(status, body, retryIn): the EventSource was refused, and gave up for good.
//   It never says with which status, so subscribe() sends the same request with fetch
//   to find out. 429, 503 and other 5xx: a new EventSource opens after Retry-After
//   seconds (retryIn), resuming after the last event seen (?last_event_id=); so it
//   does after a growing delay for a network failure (status 0) and for a 200 the
//   EventSource refused anyway. 204, 401, 403 and any other status: it stops (retryIn
//   null).
//
// Returns {close()}.

const STREAM_RETRY_STATUSES = new Set([429, 500, 502, 503, 504]);
const STREAM_MIN_BACKOFF = 2;
const STREAM_MAX_BACKOFF = 60;

function retryAfterSeconds(response, fallback) {
  const value = response.headers.get("Retry-After");
  if (value && /^\d+$/.test(value.trim())) return Number(value);
  const date = value ? Date.parse(value) : NaN;
  if (!Number.isNaN(date)) return Math.max(0, Math.ceil((date - Date.now()) / 1000));
  return fallback;
}

function parseData(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function withLastEventId(path, lastEventId) {
  if (lastEventId === null) return path;
  const url = new URL(path, window.location.href);
  url.searchParams.set("last_event_id", lastEventId);
  return url.pathname + url.search;
}

export function subscribe(path, handlers = {}) {
  const events = handlers.events || {};
  const call = (name, ...args) => {
    if (typeof handlers[name] === "function") handlers[name](...args);
  };
  let source = null;
  let probe = null;
  let timer = null;
  let closed = false;
  let lastEventId = null;
  let backoff = STREAM_MIN_BACKOFF;

  function retryLater(status, body, seconds) {
    call("onclosed", status, body, seconds);
    timer = window.setTimeout(() => {
      timer = null;
      open();
    }, seconds * 1000);
  }

  function nextBackoff() {
    const seconds = backoff;
    backoff = Math.min(backoff * 2, STREAM_MAX_BACKOFF);
    return seconds;
  }

  function stop(status, body) {
    closed = true;
    call("onclosed", status, body, null);
  }

  // The EventSource was refused: the same request again, by fetch, which sees the
  // status. A 200 is a stream the server would hold open, so it is cut at the headers.
  async function findOutWhy(url) {
    const controller = new AbortController();
    probe = controller;
    let response;
    try {
      response = await fetch(url, {
        signal: controller.signal,
        credentials: "same-origin",
        cache: "no-store",
        headers: { Accept: "text/event-stream" },
      });
    } catch {
      probe = null;
      if (!closed) retryLater(0, null, nextBackoff());
      return;
    }
    if (response.status === 200) {
      controller.abort();
      probe = null;
      // Accepted now, yet the EventSource refused it (a proxy's other content type,
      // or a refusal that has since passed): again, more slowly each time.
      if (!closed) retryLater(200, null, nextBackoff());
      return;
    }
    let body = null;
    try {
      body = await readBody(response);
    } catch {
      // An aborted or garbled body still leaves the status to report.
    }
    probe = null;
    if (closed) return;
    if (STREAM_RETRY_STATUSES.has(response.status)) {
      retryLater(response.status, body, retryAfterSeconds(response, nextBackoff()));
    } else {
      // 204 is the standard's way of saying "do not reconnect"; 401 and 403 would
      // only be refused again.
      stop(response.status, body);
    }
  }

  function open() {
    const url = withLastEventId(path, lastEventId);
    const stream = new EventSource(url);
    source = stream;
    stream.addEventListener("open", () => {
      backoff = STREAM_MIN_BACKOFF;
      // Without an event id to resume from, the server sends only what happens from
      // now on: whoever shows a list must (re)load it.
      call("onopen", { resumed: lastEventId !== null });
    });
    stream.addEventListener("error", () => {
      if (closed) return;
      if (stream.readyState === EventSource.CONNECTING) {
        call("onreconnecting");
        return;
      }
      stream.close();
      source = null;
      findOutWhy(url);
    });
    stream.addEventListener("end", (event) => {
      const data = parseData(event.data);
      call("onend", data && data.reason);
    });
    for (const [name, handler] of Object.entries(events)) {
      stream.addEventListener(name, (event) => {
        if (event.lastEventId) lastEventId = event.lastEventId;
        handler(parseData(event.data), event.lastEventId);
      });
    }
  }

  open();
  return {
    close() {
      closed = true;
      if (source) source.close();
      if (probe) probe.abort();
      if (timer !== null) window.clearTimeout(timer);
      source = probe = timer = null;
    },
  };
}
