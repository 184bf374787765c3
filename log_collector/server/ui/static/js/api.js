// The query API, with the read key. get() and post() answer JSON; stream() reads
// Server-Sent Events with fetch, because EventSource cannot send an Authorization header, and
// postStream() the events that answer one POST.
// A failure shows in the error banner, unless the call says {quiet: true}: then the caller
// shows it itself (a refused key still brings up the key prompt).
import { el } from "./dom.js";
import { getKey } from "./auth.js";

// A failure of the API. `shown`: already shown to the person (the banner or the key prompt),
// so callers may ignore it; a quiet call's failure is not, unless the key was refused.
export class ApiError extends Error {
  constructor(message, status, body, shown = true) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.body = body;
    this.shown = shown;
  }
}

let onUnauthorised = () => {};

// app.js registers what to do when the server refuses the key (401/403): show the prompt.
export function setUnauthorisedHandler(handler) {
  onUnauthorised = handler;
}

export function isAbort(error) {
  return error && (error.name === "AbortError" || error.shown === true);
}

// {service: ["a", "b"], q: "x", empty: ""} -> "service=a&service=b&q=x" (empty values left out)
export function queryString(params) {
  const search = new URLSearchParams();
  for (const [name, value] of Object.entries(params || {})) {
    for (const one of Array.isArray(value) ? value : [value]) {
      if (one !== undefined && one !== null && one !== "") search.append(name, String(one));
    }
  }
  return search.toString();
}

function url(path, params) {
  const query = queryString(params);
  return query ? `${path}?${query}` : path;
}

function headers(extra, key = getKey()) {
  return key ? { Authorization: `Bearer ${key}`, ...extra } : { ...extra };
}

// The server's words for a failure: {"error", "reason"} from /api/*, {"detail"} from auth.
function reasonOf(body, response) {
  if (body && typeof body === "object") {
    const parts = [body.error, body.parameter && `(${body.parameter})`, body.reason, body.detail];
    const text = parts.filter((part) => typeof part === "string" && part).join(" ");
    if (text) return text;
  }
  return `${response.status} ${response.statusText}`;
}

// `sentKey`: the key the request carried. A refusal of a key that has since been replaced (a
// request sent before the person entered one, answered after) is dropped: it says nothing of
// the key in use, and the prompt must not come back over the data the new key opened.
async function failed(response, quiet = false, sentKey = getKey()) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    body = null;
  }
  const reason = reasonOf(body, response);
  const refused = response.status === 401 || response.status === 403;
  if (refused && sentKey !== getKey()) return new ApiError(reason, response.status, body, true);
  if (refused) onUnauthorised(reason);
  else if (!quiet) showError(reason);
  return new ApiError(reason, response.status, body, refused || !quiet);
}

async function send(method, path, params, { body, signal, quiet = false } = {}) {
  const sentKey = getKey();
  let response;
  try {
    response = await fetch(url(path, params), {
      method,
      headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }, sentKey),
      body: body === undefined ? undefined : JSON.stringify(body),
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    const reason = `the server did not answer: ${error.message}`;
    if (!quiet) showError(reason);
    throw new ApiError(reason, 0, null, !quiet);
  }
  if (!response.ok) throw await failed(response, quiet, sentKey);
  if (response.status === 204) return null;
  return response.json();
}

export const api = {
  // options: {signal, quiet}
  get: (path, params, options) => send("GET", path, params, options),
  post: (path, body, options) => send("POST", path, undefined, { ...options, body }),
  delete: (path, options) => send("DELETE", path, undefined, options),
  stream,
  postStream,
  // Asks the server whether it takes `key`: null if so, else its reason.
  async check(key) {
    let response;
    try {
      response = await fetch("/api/services", { headers: { Authorization: `Bearer ${key}` } });
    } catch (error) {
      return `the server did not answer: ${error.message}`;
    }
    if (response.ok) return null;
    let body = null;
    try {
      body = await response.json();
    } catch {
      body = null;
    }
    return reasonOf(body, response);
  },
};

// Reads the SSE stream of `path` until `signal` aborts, calling onEvent({type, id, data}) per
// event (data parsed as JSON). A dropped connection is reopened with Last-Event-ID set to the
// last id received, so the server resumes after it: nothing is missed and nothing repeated.
// onStatus("live" | "reconnecting" | "stopped") tells the page what the stream is doing.
// `after`: start after this id (the newest line the page already shows) rather than after the
// newest stored, so nothing stored between the page's first read and the stream is missed.
async function stream(path, params, onEvent, signal, onStatus = () => {}, after = null) {
  let lastId = after === null ? null : String(after);
  let delay = 500;
  while (!signal.aborted) {
    try {
      const extra = { Accept: "text/event-stream" };
      if (lastId !== null) extra["Last-Event-ID"] = lastId;
      const sentKey = getKey();
      const response = await fetch(url(path, params), { headers: headers(extra, sentKey), signal });
      if (!response.ok) {
        await failed(response, false, sentKey);
        // 401/403/400 will not pass by trying again; 503 (too many streams) may.
        if (response.status !== 503) {
          onStatus("stopped");
          return;
        }
      } else {
        onStatus("live");
        delay = 500;
        await readEvents(response.body, signal, (event) => {
          if (event.id !== null) lastId = event.id;
          onEvent(event);
        });
      }
    } catch (error) {
      // A dropped connection: try again below, after the last id received.
      if (signal.aborted || error.name === "AbortError") return;
    }
    if (signal.aborted) return;
    onStatus("reconnecting");
    await sleep(delay, signal);
    delay = Math.min(delay * 2, 10000);
  }
}

// POSTs `body` (JSON) to `path` and reads the Server-Sent Events that answer it, calling
// onEvent({type, id, data}) per event, until the server ends the stream. Sent once: a question
// is not asked again behind the person's back, so a dropped connection is an ApiError (status
// 0) rather than a retry. A refusal is an ApiError that is not shown (a refused key still
// brings up the key prompt): the caller decides, e.g. to fall back to another endpoint on 404.
async function postStream(path, body, onEvent, { signal } = {}) {
  const sentKey = getKey();
  let response;
  try {
    response = await fetch(path, {
      method: "POST",
      headers: headers(
        { "Content-Type": "application/json", Accept: "text/event-stream" },
        sentKey,
      ),
      body: JSON.stringify(body),
      signal,
    });
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError(`the server did not answer: ${error.message}`, 0, null, false);
  }
  if (!response.ok) throw await failed(response, true, sentKey);
  const stopped = signal || new AbortController().signal;
  try {
    await readEvents(response.body, stopped, onEvent);
  } catch (error) {
    if (error.name === "AbortError" || stopped.aborted) throw error;
    throw new ApiError(`the answer was cut off: ${error.message}`, 0, null, false);
  }
}

function sleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

// The SSE wire format: lines "field: value", events separated by a blank line, comment lines
// start with ":" (https://html.spec.whatwg.org/multipage/server-sent-events.html).
async function readEvents(body, signal, onEvent) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  signal.addEventListener("abort", () => reader.cancel().catch(() => {}));
  let buffer = "";
  let event = { type: "message", id: null, data: [] };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    const lines = buffer.split(/\r\n|\r|\n/);
    buffer = lines.pop();
    for (const line of lines) {
      if (line === "") {
        if (event.data.length) {
          const text = event.data.join("\n");
          let data = text;
          try {
            data = JSON.parse(text);
          } catch {
            data = text;
          }
          onEvent({ type: event.type, id: event.id, data });
        }
        event = { type: "message", id: null, data: [] };
        continue;
      }
      if (line.startsWith(":")) continue;
      const colon = line.indexOf(":");
      const field = colon === -1 ? line : line.slice(0, colon);
      let value = colon === -1 ? "" : line.slice(colon + 1);
      if (value.startsWith(" ")) value = value.slice(1);
      if (field === "data") event.data.push(value);
      else if (field === "event") event.type = value;
      else if (field === "id") event.id = value;
    }
  }
}

// The banner: the latest error, in words, until dismissed or the next page renders.
export function showError(message) {
  const banner = document.getElementById("error-banner");
  if (!banner) return;
  banner.replaceChildren(
    el("span", {}, message),
    el("button", { type: "button", title: "dismiss", onclick: hideError }, "×"),
  );
  banner.hidden = false;
}

export function hideError() {
  const banner = document.getElementById("error-banner");
  if (banner) {
    banner.hidden = true;
    banner.replaceChildren();
  }
}
