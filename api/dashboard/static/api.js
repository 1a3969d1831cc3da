// Talking to the bnlab API from the browser: JSON requests, the API key, images as blob URLs and a job's
// event stream.
//
// Every request goes through fetch() with an Authorization header when the user gave a key: EventSource
// and <img> cannot send one, so streams are read from fetch()'s body and images become blob URLs. When
// the API answers 401 the page asks for a key (one dialog, however many requests were refused at once),
// keeps it in sessionStorage only (gone when the tab closes) and repeats the request.

import { TERMINAL_STATUSES, sleep } from "./dom.js";

const KEY_STORAGE = "bnlab.apiKey";
const RECONNECT_MIN_MS = 500;
const RECONNECT_MAX_MS = 5000;

/** A 4xx/5xx answer. `detail` is FastAPI's: a string, or for 422 the list of {loc, msg, type}. */
export class ApiError extends Error {
  constructor(status, detail) {
    super(describeDetail(status, detail));
    this.name = "ApiError";
    this.status = status;
    this.detail = detail;
  }

  /** The 422 field errors (empty for other answers). */
  get fieldErrors() {
    return Array.isArray(this.detail) ? this.detail : [];
  }
}

function describeDetail(status, detail) {
  if (typeof detail === "string" && detail) return `${detail} (HTTP ${status})`;
  if (Array.isArray(detail)) {
    return detail
      .map((error) => `${(error.loc ?? []).filter((part) => part !== "body").join(".")}: ${error.msg}`)
      .join("; ");
  }
  return `the API answered HTTP ${status}`;
}

async function readDetail(response) {
  try {
    const body = await response.json();
    return body?.detail ?? "";
  } catch {
    return "";
  }
}

export function storedKey() {
  return sessionStorage.getItem(KEY_STORAGE);
}

let pendingKeyPrompt = null;

/** Shows the key dialog once for every request refused meanwhile; resolves to whether a key was given. */
function askForKey(reason) {
  pendingKeyPrompt ??= showKeyDialog(reason).finally(() => {
    pendingKeyPrompt = null;
  });
  return pendingKeyPrompt;
}

function showKeyDialog(reason) {
  const dialog = document.getElementById("api-key-dialog");
  const input = document.getElementById("api-key-input");
  document.getElementById("api-key-message").textContent = reason;
  input.value = "";
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener(
      "close",
      () => {
        const key = input.value.trim();
        input.value = "";
        // Escape closes the dialog without a key: the request then fails with its 401.
        if (dialog.returnValue !== "cancelled" && key) {
          sessionStorage.setItem(KEY_STORAGE, key);
          resolve(true);
        } else {
          resolve(false);
        }
      },
      { once: true },
    );
    dialog.addEventListener("cancel", () => (dialog.returnValue = "cancelled"), { once: true });
    dialog.showModal();
    input.focus();
  });
}

/**
 * fetch() with the API key; resolves to the Response of a 2xx answer, throws ApiError otherwise.
 * `json` is sent as the JSON body.
 */
export async function request(path, { method = "GET", json, body, signal, headers = {} } = {}) {
  for (;;) {
    const sentKey = storedKey();
    const init = { method, signal, headers: { Accept: "application/json", ...headers } };
    if (sentKey) init.headers.Authorization = `Bearer ${sentKey}`;
    if (json !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(json);
    } else if (body !== undefined) {
      init.body = body; // a FormData upload: the browser sets its multipart Content-Type
    }
    const response = await fetch(path, init);
    if (response.status !== 401) {
      if (!response.ok) throw new ApiError(response.status, await readDetail(response));
      return response;
    }
    const detail = await readDetail(response);
    if (sentKey && storedKey() === sentKey) sessionStorage.removeItem(KEY_STORAGE);
    const reason = sentKey
      ? `The service refused that key (${detail || "401"}). Enter another one.`
      : `This bnlab service needs an API key (${detail || "401"}).`;
    // A key given meanwhile, in answer to another request's prompt, is tried without asking again.
    if ((storedKey() && storedKey() !== sentKey) || (await askForKey(reason))) continue;
    throw new ApiError(401, detail);
  }
}

export async function getJson(path, options = {}) {
  return (await request(path, options)).json();
}

export async function postJson(path, body, options = {}) {
  return (await request(path, { ...options, method: "POST", json: body })).json();
}

/** An image (or any file) fetched with the key, as a blob: URL; the caller revokes it when replaced. */
export async function fetchBlobUrl(path, options = {}) {
  const response = await request(path, { ...options, headers: { Accept: "image/*" } });
  return URL.createObjectURL(await response.blob());
}

/** Server-Sent Events read from a fetch() body: yields {event, id, data} per event, skips comments. */
async function* readServerSentEvents(body) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      buffer += value;
      // A "\r" at the very end may be the first half of "\r\n": keep it until the next chunk.
      const complete = buffer.endsWith("\r") ? buffer.slice(0, -1) : buffer;
      const pending = buffer.slice(complete.length);
      const blocks = complete.replace(/\r\n?/g, "\n").split("\n\n");
      buffer = blocks.pop() + pending;
      for (const block of blocks) {
        const event = parseEventBlock(block);
        if (event) yield event;
      }
    }
  } finally {
    reader.cancel().catch(() => {});
  }
}

function parseEventBlock(block) {
  const event = { event: "message", id: null, data: "" };
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue; // ":" starts a comment (the keep-alive)
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event.event = value;
    else if (field === "id") event.id = value;
    else if (field === "data") data.push(value);
  }
  if (!data.length && event.id === null) return null;
  event.data = data.join("\n");
  return event;
}

/**
 * Follows `GET /v1/jobs/{id}/events` until the job's final status or until `signal` aborts, calling
 * `handlers.onStatus`, `onProgress` and `onMetrics` with each event's data. A dropped connection is
 * resumed with Last-Event-ID, so no metric step is missed or repeated; `lastEventId` starts after an
 * event the page already has (e.g. `metrics:<step>` after reading the stored series).
 */
export async function followJobEvents(jobId, handlers, { signal, lastEventId = null } = {}) {
  let last = lastEventId;
  let delay = RECONNECT_MIN_MS;
  const path = `/v1/jobs/${jobId}/events`;
  while (!signal?.aborted) {
    try {
      const headers = { Accept: "text/event-stream" };
      if (last) headers["Last-Event-ID"] = last;
      const response = await request(path, { signal, headers });
      for await (const event of readServerSentEvents(response.body)) {
        if (event.id) last = event.id;
        delay = RECONNECT_MIN_MS;
        const data = event.data ? JSON.parse(event.data) : null;
        if (event.event === "progress") handlers.onProgress?.(data);
        else if (event.event === "metrics") handlers.onMetrics?.(data);
        else if (event.event === "status") {
          handlers.onStatus?.(data);
          if (TERMINAL_STATUSES.has(data.status)) return;
        }
      }
      // The stream closed without a final status (the API restarted, or the final status came before
      // `last`): the job's row says whether there is anything left to follow.
      const job = await getJson(`/v1/jobs/${jobId}`, { signal });
      if (TERMINAL_STATUSES.has(job.status)) {
        handlers.onStatus?.({ status: job.status, summary: job.summary, error: job.error });
        return;
      }
    } catch (error) {
      if (signal?.aborted) return;
      if (error instanceof ApiError && error.status < 500) throw error; // 404 and the like: nothing to retry
    }
    await sleep(delay, signal);
    delay = Math.min(delay * 2, RECONNECT_MAX_MS);
  }
}
