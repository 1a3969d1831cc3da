// The jobs table (`#/jobs?status=…&sweep=…&tag=…&archived=all`): newest first, with status, live progress
// and tags, filters by status, sweep, tag and archived, "load more" through the API's cursor, and a
// selection to compare.

import { getJson } from "./api.js";
import {
  JOB_STATUSES,
  TERMINAL_STATUSES,
  errorBox,
  formatNumber,
  formatTime,
  h,
  jobLabel,
  progressBar,
  shortId,
  statusBadge,
} from "./dom.js";
import { tagBadges } from "./housekeeping.js";

const PAGE_SIZE = 50;
const MAX_REFRESHED = 200; // the API's largest page: rows past it are not refreshed
const LIVE_REFRESH_MS = 1000; // while a listed job is queued or running
const IDLE_REFRESH_MS = 5000; // to notice new jobs

function jobsHash(status, sweep, tag = "", archived = "") {
  const query = new URLSearchParams();
  if (status) query.set("status", status);
  if (sweep) query.set("sweep", sweep);
  if (tag) query.set("tag", tag);
  if (archived) query.set("archived", archived);
  const text = query.toString();
  return `#/jobs${text ? `?${text}` : ""}`;
}

/** A tag to filter on, and whether archived jobs are listed too. */
function tagFilters(status, sweep, tag, archived) {
  const tagInput = h("input", { type: "text", id: "tag-filter", value: tag, placeholder: "any", size: 12 });
  tagInput.addEventListener("change", () => (location.hash = jobsHash(status, sweep, tagInput.value.trim(), archived)));
  const archivedBox = h("input", { type: "checkbox", id: "archived-filter", checked: archived === "all" });
  archivedBox.addEventListener("change", () => (location.hash = jobsHash(status, sweep, tag, archivedBox.checked ? "all" : "")));
  return [h("label", {}, "Tag ", tagInput), h("label", {}, archivedBox, " show archived")];
}

function statusFilter(current, sweep) {
  return h(
    "label",
    {},
    "Status ",
    h(
      "select",
      { id: "status-filter", value: current, onchange: (event) => (location.hash = jobsHash(event.target.value, sweep)) },
      h("option", { value: "" }, "all"),
      JOB_STATUSES.map((status) => h("option", { value: status }, status)),
    ),
  );
}

function sweepFilter(current, status, sweeps) {
  const options = sweeps.map((sweep) =>
    h("option", { value: sweep.id }, `${sweep.name || shortId(sweep.id)} (${sweep.size} jobs)`),
  );
  if (current && !sweeps.some((sweep) => sweep.id === current)) options.push(h("option", { value: current }, shortId(current)));
  return h(
    "label",
    {},
    "Sweep ",
    h(
      "select",
      { id: "sweep-filter", value: current, onchange: (event) => (location.hash = jobsHash(status, event.target.value)) },
      h("option", { value: "" }, "all"),
      options,
    ),
  );
}

const MAX_LIVE_ACCURACIES = 20; // running rows whose latest accuracy is read at each refresh

/** "not reached" only for a run that had its whole chance (succeeded or diverged); "—" otherwise. */
function targetCell(job) {
  const target = job.spec.target_accuracy;
  if (target === null || target === undefined) return "—";
  const steps = job.summary?.steps_to_target;
  if (steps !== null && steps !== undefined) return String(steps);
  return job.status === "succeeded" || job.status === "diverged" ? "not reached" : "—";
}

/** A running job's latest validation accuracy (its summary comes only when it ends), or null. */
async function latestAccuracy(job, signal) {
  const read = await getJson(`/v1/jobs/${job.id}/metrics?name=val_accuracy&max_points=10`, { signal });
  const { steps, values } = read.series.val_accuracy;
  for (let index = values.length - 1; index >= 0; index -= 1) {
    if (values[index] !== null) return { step: steps[index], value: values[index] };
  }
  return null;
}

/** One row's cells; the selection checkbox is kept across refreshes. */
function fillRow(row, job, selected, onSelect) {
  if (!row.firstChild) {
    row.append(
      h("td", {}, h("input", {
        type: "checkbox",
        class: "select-job",
        "aria-label": `select ${jobLabel(job)} to compare`,
        checked: selected.has(job.id),
        onchange: (event) => onSelect(job.id, event.target.checked),
      })),
      h("td"), h("td"), h("td"), h("td", { class: "number" }), h("td", { class: "number" }), h("td", { class: "time" }),
    );
  }
  const [, nameCell, statusCell, progressCell, accuracyCell, targetStepsCell, createdCell] = row.children;
  nameCell.replaceChildren(h("a", { href: `#/jobs/${job.id}`, class: "job-link" }, jobLabel(job)));
  if (job.spec.name) nameCell.append(h("span", { class: "muted id" }, ` ${shortId(job.id)}`));
  nameCell.append(" ", tagBadges(job));
  statusCell.replaceChildren(statusBadge(job.status));
  progressCell.replaceChildren(progressBar(job.progress, job.status));
  if (job.status !== "running") {
    accuracyCell.textContent = formatNumber(job.summary?.final_val_accuracy);
    accuracyCell.title = "";
    accuracyCell.classList.remove("live");
  }
  targetStepsCell.textContent = targetCell(job);
  createdCell.textContent = formatTime(job.created_at);
  row.dataset.status = job.status;
}

export function jobsPage(root, query, life) {
  const status = query.get("status") ?? "";
  const sweep = query.get("sweep") ?? "";
  const tag = query.get("tag") ?? "";
  const archived = query.get("archived") ?? "";
  const selected = new Set();
  const rows = new Map(); // job id → <tr>, reused so selections and focus survive refreshes
  const body = h("tbody");
  const message = h("div", { class: "messages" });
  const compareButton = h("button", { type: "button", id: "compare-selected", disabled: true }, "Compare selected");
  const moreButton = h("button", { type: "button", id: "load-more", hidden: true }, "Load more");
  const filters = h("div", { class: "filters" }, statusFilter(status, sweep), ...tagFilters(status, sweep, tag, archived));
  let shown = [];
  let nextCursor = null;

  const onSelect = (jobId, checked) => {
    if (checked) selected.add(jobId);
    else selected.delete(jobId);
    compareButton.disabled = selected.size < 2;
    compareButton.textContent = selected.size ? `Compare selected (${selected.size})` : "Compare selected";
  };
  compareButton.addEventListener("click", () => {
    const ids = shown.map((job) => job.id).filter((id) => selected.has(id));
    location.hash = `#/compare?ids=${ids.join(",")}`;
  });

  function render() {
    body.replaceChildren(
      ...shown.map((job) => {
        const row = rows.get(job.id) ?? h("tr", { "data-job-id": job.id });
        rows.set(job.id, row);
        fillRow(row, job, selected, onSelect);
        return row;
      }),
    );
    if (!shown.length) body.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No jobs yet. Submit one.")));
    moreButton.hidden = !nextCursor;
  }

  async function showLiveAccuracies() {
    const running = shown.filter((job) => job.status === "running").slice(0, MAX_LIVE_ACCURACIES);
    const latest = await Promise.all(running.map((job) => latestAccuracy(job, life.signal).catch(() => null)));
    running.forEach((job, index) => {
      const cell = rows.get(job.id)?.children[4];
      if (!cell || !latest[index]) return;
      cell.textContent = formatNumber(latest[index].value);
      cell.title = `latest evaluation, at step ${latest[index].step}`;
      cell.classList.add("live");
    });
  }

  function listPath(limit, cursor) {
    const parameters = new URLSearchParams({ limit: String(limit) });
    if (status) parameters.set("status", status);
    if (sweep) parameters.set("sweep_id", sweep);
    if (tag) parameters.set("tag", tag);
    if (archived) parameters.set("archived", archived);
    if (cursor) parameters.set("cursor", cursor);
    return `/v1/jobs?${parameters}`;
  }

  async function refresh() {
    const limit = Math.min(MAX_REFRESHED, Math.max(PAGE_SIZE, shown.length));
    const page = await getJson(listPath(limit), { signal: life.signal });
    const beyond = shown.slice(limit).filter((job) => !page.items.some((item) => item.id === job.id));
    shown = [...page.items, ...beyond];
    if (shown.length <= limit) nextCursor = page.next_cursor;
    message.replaceChildren();
    render();
    await showLiveAccuracies();
    return shown.some((job) => !TERMINAL_STATUSES.has(job.status));
  }

  moreButton.addEventListener("click", async () => {
    moreButton.disabled = true;
    try {
      const page = await getJson(listPath(PAGE_SIZE, nextCursor), { signal: life.signal });
      shown = [...shown, ...page.items.filter((job) => !rows.has(job.id))];
      nextCursor = page.next_cursor;
      render();
    } catch (error) {
      message.replaceChildren(errorBox(error));
    } finally {
      moreButton.disabled = false;
    }
  });

  root.append(
    h("div", { class: "title-row" }, h("h1", {}, "Jobs"), h("a", { class: "button primary", href: "#/submit" }, "Submit a job")),
    h("div", { class: "toolbar" }, filters, compareButton),
    message,
    h(
      "table",
      { class: "jobs", id: "jobs-table" },
      h("thead", {}, h("tr", {},
        h("th", {}, ""), h("th", {}, "Job"), h("th", {}, "Status"), h("th", {}, "Progress"),
        h("th", { class: "number" }, "Val. accuracy"), h("th", { class: "number" }, "Steps to target"),
        h("th", {}, "Created"),
      )),
      body,
    ),
    moreButton,
  );

  getJson("/v1/sweeps?limit=200", { signal: life.signal })
    .then((page) => filters.append(sweepFilter(sweep, status, page.items)))
    .catch((error) => life.alive && message.append(errorBox(error)));
  life.loop(
    refresh,
    (unfinished) => (unfinished ? LIVE_REFRESH_MS : IDLE_REFRESH_MS),
    (error) => message.replaceChildren(errorBox(error)),
  );
}
