// The workers (`#/workers`, `#/workers?include=gone`): every worker process that registered itself, its
// queues and device, what it is training and when it was last seen; refreshed every few seconds.

import { getJson } from "./api.js";
import { errorBox, formatNumber, formatTime, h, shortId } from "./dom.js";

const REFRESH_MS = 2000;

export function deviceText(device) {
  const threads = `${device.threads} thread${device.threads === 1 ? "" : "s"}`;
  if (device.kind === "cuda") {
    const memory = device.memory_mb === null ? "" : `, ${formatNumber(device.memory_mb)} MB each`;
    return `GPU: ${device.name} ×${device.count}${memory}, ${threads}`;
  }
  return `CPU: ${device.name}, ${device.count} CPUs, ${threads}`;
}

function trainingCell(training) {
  if (!training) return h("span", { class: "muted" }, "idle");
  if (training.group_id) {
    const first = training.job_ids[0];
    return h("span", {}, `fused group ${shortId(training.group_id)} of ${training.job_ids.length} jobs (first: `,
      h("a", { href: `#/jobs/${first}` }, shortId(first)), ")");
  }
  return h("span", {}, "job ", h("a", { href: `#/jobs/${training.job_ids[0]}`, class: "job-link" }, shortId(training.job_ids[0])));
}

function workerRow(worker) {
  return h(
    "tr",
    { "data-worker-id": worker.id, "data-alive": String(worker.alive) },
    h("td", {}, worker.name, h("span", { class: "muted id" }, ` pid ${worker.pid}`)),
    h("td", {}, worker.queues.join(", ")),
    h("td", { class: "worker-device" }, deviceText(worker.device)),
    h("td", { class: "worker-training" }, trainingCell(worker.training)),
    h("td", { class: "time" }, formatTime(worker.last_seen)),
    h("td", {}, h("span", { class: `status ${worker.alive ? "status-running" : "status-cancelled"}` }, worker.alive ? "alive" : "gone")),
  );
}

export function workersPage(root, query, life) {
  const includeGone = query.get("include") === "gone";
  const body = h("tbody");
  const message = h("div", { class: "messages" });
  const toggle = h("label", {}, h("input", {
    type: "checkbox",
    id: "include-gone",
    checked: includeGone,
    onchange: (event) => (location.hash = event.target.checked ? "#/workers?include=gone" : "#/workers"),
  }), " show workers that stopped or went silent");

  async function refresh() {
    const page = await getJson(`/v1/workers${includeGone ? "?include=gone" : ""}`, { signal: life.signal });
    message.replaceChildren();
    body.replaceChildren(...page.items.map(workerRow));
    if (!page.items.length) {
      const none = "No live workers: queued jobs wait until one starts (make run, or docker compose up worker).";
      body.append(h("tr", {}, h("td", { colspan: 6, class: "muted" }, none)));
    }
  }

  root.append(
    h("div", { class: "title-row" }, h("h1", {}, "Workers")),
    h("p", { class: "muted" }, "Each worker consumes the default queue and its own kind's (cpu or gpu). A worker silent for longer than the lease time is gone."),
    h("div", { class: "toolbar" }, toggle),
    message,
    h(
      "table",
      { class: "jobs", id: "workers-table" },
      h("thead", {}, h("tr", {},
        h("th", {}, "Worker"), h("th", {}, "Queues"), h("th", {}, "Device"), h("th", {}, "Training"),
        h("th", {}, "Last seen"), h("th", {}, "State"),
      )),
      body,
    ),
  );
  life.loop(refresh, () => REFRESH_MS, (error) => message.replaceChildren(errorBox(error)));
}
