// Sweeps: the list (`#/sweeps`) and one sweep (`#/sweeps/<id>`) with its progress, the heatmap of mean
// final accuracy (an image fetched with the API key and shown from a blob URL), one row per grid point
// aggregated over seeds, and one row per fused group (plus one for the jobs run alone) with its jobs' statuses.

import { ApiError, fetchBlobUrl, getJson, postJson } from "./api.js";
import {
  describeStat,
  errorBox,
  formatStat,
  formatStatusCounts,
  formatTime,
  h,
  isAbort,
  progressBar,
  shortId,
} from "./dom.js";

const LIVE_REFRESH_MS = 2000;
const HEATMAP_REFRESH_MS = 10000; // drawing is server work: redraw at most this often while jobs finish
const MAX_COMPARED_JOBS = 50;

export function sweepsPage(root, query, life) {
  const messages = h("div", { class: "messages" });
  const body = h("tbody");
  root.append(
    h("h1", {}, "Sweeps"),
    h("p", { class: "muted" }, "Submit a sweep with POST /v1/sweeps or `bnlab sweep submit SWEEP.yaml`; each grid point × seed becomes a job."),
    messages,
    h(
      "table",
      { class: "sweeps", id: "sweeps-table" },
      h("thead", {}, h("tr", {}, ["Sweep", "Jobs", "Statuses", "Grid", "Seeds", "Execution", "Created"].map((title) => h("th", {}, title)))),
      body,
    ),
  );
  getJson("/v1/sweeps?limit=200", { signal: life.signal })
    .then((page) => {
      body.replaceChildren(
        ...page.items.map((sweep) =>
          h(
            "tr",
            { "data-sweep-id": sweep.id },
            h("td", {}, h("a", { href: `#/sweeps/${sweep.id}` }, sweep.name || shortId(sweep.id))),
            h("td", { class: "number" }, sweep.size),
            h("td", { class: "sweep-statuses" }, formatStatusCounts(sweep.status_counts)),
            h("td", {}, Object.entries(sweep.grid).map(([axis, values]) => h("code", { class: "diff" }, `${axis} ∈ ${JSON.stringify(values)}`))),
            h("td", {}, sweep.seeds.join(", ")),
            h("td", {}, sweep.execution.used),
            h("td", {}, formatTime(sweep.created_at)),
          ),
        ),
      );
      if (!page.items.length) body.append(h("tr", {}, h("td", { colspan: 7, class: "muted" }, "No sweeps yet.")));
    })
    .catch((error) => life.alive && !isAbort(error) && messages.append(errorBox(error)));
}

function pointTable(sweep) {
  const axes = Object.keys(sweep.grid);
  const headers = [...axes, "Seeds", "Done", "Diverged", "Reached target", "Final accuracy", "Best accuracy", "Steps to target", ""];
  return h(
    "table",
    { class: "points", id: "sweep-points" },
    h("thead", {}, h("tr", {}, headers.map((title, index) => h("th", { class: index >= axes.length ? "number" : "" }, title)))),
    h(
      "tbody",
      {},
      sweep.points.map((point) =>
        h(
          "tr",
          {},
          axes.map((axis) => h("td", {}, JSON.stringify(point.point[axis]))),
          h("td", { class: "number" }, point.seeds.length),
          h("td", { class: "number" }, `${point.done} / ${point.job_ids.length}`),
          h("td", { class: "number" }, point.diverged),
          h("td", { class: "number" }, point.reached_target),
          h("td", { class: "number", title: describeStat(point.final_accuracy) }, formatStat(point.final_accuracy)),
          h("td", { class: "number", title: describeStat(point.best_accuracy) }, formatStat(point.best_accuracy)),
          h("td", { class: "number", title: describeStat(point.steps_to_target) }, formatStat(point.steps_to_target, 1)),
          h("td", {}, h("a", { href: `#/compare?ids=${point.job_ids.join(",")}` }, "compare seeds")),
        ),
      ),
    ),
  );
}

/** One row per fused group (one task trains its jobs as stacked models), then one for the jobs run alone. */
function executionTable(sweep) {
  const { fused_groups: groups, separate_job_ids: separate } = sweep.execution;
  const rows = groups.map((group) =>
    h(
      "tr",
      { "data-group-id": group.id },
      h("td", {}, "fused group ", h("code", { title: group.id }, shortId(group.id))),
      h("td", { class: "number" }, group.size),
      h("td", { class: "group-statuses" }, formatStatusCounts(group.status_counts)),
      h("td", {}, group.job_ids.length <= MAX_COMPARED_JOBS ? h("a", { href: `#/compare?ids=${group.job_ids.join(",")}` }, "compare its jobs") : null),
    ),
  );
  if (separate.length) {
    rows.push(
      h(
        "tr",
        { "data-execution": "separate" },
        h("td", {}, "separate (a task each)"),
        h("td", { class: "number" }, separate.length),
        h("td", { class: "group-statuses" }, formatStatusCounts(sweep.execution.separate_status_counts)),
        h("td", {}, h("div", { class: "job-links" }, separate.map((jobId) => h("a", { href: `#/jobs/${jobId}`, title: jobId }, h("code", {}, shortId(jobId)))))),
      ),
    );
  }
  const headers = [["Execution", ""], ["Jobs", "number"], ["Statuses", ""], ["", ""]];
  return h(
    "table",
    { class: "groups", id: "sweep-groups" },
    h("thead", {}, h("tr", {}, headers.map(([title, kind]) => h("th", { class: kind }, title)))),
    h("tbody", {}, rows),
  );
}

export function sweepPage(root, sweepId, life) {
  const messages = h("div", { class: "messages" });
  const header = h("div");
  const heatmapHolder = h("figure", { class: "heatmap", id: "sweep-heatmap" }, h("p", { class: "muted" }, "Drawing the heatmap…"));
  const tableHolder = h("div");
  const executionHolder = h("div");
  let imageUrl = null;
  let heatmapDrawnAt = -Infinity;
  let heatmapDone = -1;
  life.signal.addEventListener("abort", () => imageUrl && URL.revokeObjectURL(imageUrl));

  async function drawHeatmap(sweep) {
    if (sweep.done === heatmapDone) return;
    if (sweep.done < sweep.size && performance.now() - heatmapDrawnAt < HEATMAP_REFRESH_MS) return;
    heatmapDrawnAt = performance.now();
    heatmapDone = sweep.done;
    try {
      const url = await fetchBlobUrl(`/v1/sweeps/${sweepId}/plots/heatmap?format=png`, { signal: life.signal });
      if (imageUrl) URL.revokeObjectURL(imageUrl);
      imageUrl = url;
      heatmapHolder.replaceChildren(
        h("img", { src: url, alt: `heatmap of mean final accuracy over ${Object.keys(sweep.grid).join(" × ")}` }),
      );
    } catch (error) {
      if (error instanceof ApiError && error.status === 409) {
        heatmapHolder.replaceChildren(h("p", { class: "muted" }, error.detail)); // a sweep without a grid axis
      } else {
        throw error;
      }
    }
  }

  function renderHeader(sweep) {
    const cancel = h("button", { type: "button", class: "danger", id: "cancel-sweep", hidden: sweep.done >= sweep.size }, "Cancel sweep");
    cancel.addEventListener("click", async () => {
      cancel.disabled = true;
      try {
        await postJson(`/v1/sweeps/${sweepId}/cancel`, undefined, { signal: life.signal });
      } catch (error) {
        messages.replaceChildren(errorBox(error));
      }
    });
    const counts = Object.entries(sweep.status_counts).filter(([, count]) => count > 0).map(([status, count]) => h("span", { class: `status status-${status}` }, `${count} ${status}`));
    const compareAll = sweep.job_ids.length <= MAX_COMPARED_JOBS
      ? h("a", { class: "button", href: `#/compare?ids=${sweep.job_ids.join(",")}` }, "Compare all jobs")
      : null;
    header.replaceChildren(
      h("div", { class: "title-row" },
        h("h1", {}, sweep.name || `Sweep ${shortId(sweep.id)}`, h("span", { class: "muted id" }, ` ${sweep.id}`)),
        h("div", { class: "actions" }, h("a", { class: "button", href: `#/jobs?sweep=${sweep.id}` }, "Its jobs"), compareAll, cancel),
      ),
      h("div", { class: "job-progress" }, progressBar({ step: sweep.done, steps: sweep.size }, sweep.done >= sweep.size ? "succeeded" : "running"), h("span", { class: "counts" }, counts)),
      h("p", { class: "muted" },
        `Grid: ${Object.entries(sweep.grid).map(([axis, values]) => `${axis} ∈ ${JSON.stringify(values)}`).join(" × ") || "none"}; seeds ${sweep.seeds.join(", ")}. `,
        `Executed: ${sweep.execution.used} (${sweep.execution.note}).`,
      ),
    );
  }

  root.append(
    header,
    messages,
    h("section", {}, h("h2", {}, "Mean final accuracy"), heatmapHolder),
    h("section", {}, h("h2", {}, "Per grid point (mean [95% confidence interval] over seeds)"), tableHolder),
    h("section", {}, h("h2", {}, "How its jobs were executed"), executionHolder),
  );
  life.loop(
    async () => {
      const sweep = await getJson(`/v1/sweeps/${sweepId}`, { signal: life.signal });
      renderHeader(sweep);
      tableHolder.replaceChildren(pointTable(sweep));
      executionHolder.replaceChildren(executionTable(sweep));
      await drawHeatmap(sweep);
      return sweep;
    },
    (sweep) => (sweep.done < sweep.size || sweep.done !== heatmapDone ? LIVE_REFRESH_MS : null),
    (error) => messages.replaceChildren(errorBox(error)),
  );
}
