// Sweeps: the list (`#/sweeps`) and one sweep (`#/sweeps/<id>?arm=…&baseline=…`) with its progress (steps of
// all jobs, model-steps per second, ETA), the heatmap of mean final accuracy (cells' tooltips give n and the
// 95% interval), the learning curves as a mean with a shaded 95% band per grid point, one row per grid point
// aggregated over seeds, the arms compared at their tuned best, and one row per fused group (plus one for the
// jobs run alone).

import { getJson, postJson } from "./api.js";
import { armsTable } from "./arms.js";
import { meanBandChart } from "./charts.js";
import {
  describeStat,
  errorBox,
  formatDuration,
  formatNumber,
  formatStat,
  formatStatusCounts,
  formatTime,
  h,
  isAbort,
  progressBar,
  shortId,
} from "./dom.js";
import { axisValue, heatmapGrid, pointText } from "./heatmap.js";
import { housekeepingActions, tagBadges } from "./housekeeping.js";

const LIVE_REFRESH_MS = 2000;
const CURVES_REFRESH_MS = 10000; // reading every job's series: at most this often while jobs finish
const MAX_COMPARED_JOBS = 50;

export function sweepsPage(root, query, life) {
  const messages = h("div", { class: "messages" });
  const body = h("tbody");
  const archived = query.get("archived") === "all" ? "all" : "false";
  const archivedBox = h("input", { type: "checkbox", id: "archived-sweeps", checked: archived === "all" });
  archivedBox.addEventListener("change", () => (location.hash = archivedBox.checked ? "#/sweeps?archived=all" : "#/sweeps"));
  root.append(
    h("h1", {}, "Sweeps"),
    h("p", { class: "muted" }, "Submit a sweep with POST /v1/sweeps or `bnlab sweep submit SWEEP.yaml`; each grid point × seed becomes a job."),
    h("div", { class: "filters" }, h("label", {}, archivedBox, " show archived")),
    messages,
    h(
      "table",
      { class: "sweeps", id: "sweeps-table" },
      h("thead", {}, h("tr", {}, ["Sweep", "Jobs", "Statuses", "Grid", "Seeds", "Execution", "Created"].map((title) => h("th", {}, title)))),
      body,
    ),
  );
  getJson(`/v1/sweeps?limit=200&archived=${archived}`, { signal: life.signal })
    .then((page) => {
      body.replaceChildren(
        ...page.items.map((sweep) =>
          h(
            "tr",
            { "data-sweep-id": sweep.id },
            h("td", {}, h("a", { href: `#/sweeps/${sweep.id}` }, sweep.name || shortId(sweep.id)), " ", tagBadges(sweep)),
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
          axes.map((axis) => h("td", {}, axisValue(point.point[axis], axis))),
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

/** The arm chooser: which grid axis splits the sweep into arms, and which arm is the baseline. Every other
 * axis is tuned (each arm takes its best value of it), as the API asks. */
function armForm(sweep, state) {
  const axes = Object.keys(sweep.grid);
  const arm = h("select", { id: "sweep-arm", value: state.arm ?? "" }, h("option", { value: "" }, "none"), axes.map((axis) => h("option", { value: axis }, axis)));
  const values = state.arm ? sweep.grid[state.arm] ?? [] : [];
  const baseline = h("select", { id: "sweep-arm-baseline", value: state.baseline ?? "" }, values.map((value) => h("option", { value: JSON.stringify(value) }, axisValue(value, state.arm ?? ""))));
  const go = () => {
    const query = new URLSearchParams({ arm: arm.value }); // an empty arm: none, not the default
    if (arm.value && arm.value === state.arm && baseline.value) query.set("baseline", baseline.value);
    location.hash = `#/sweeps/${sweep.id}?${query}`;
  };
  arm.addEventListener("change", go);
  baseline.addEventListener("change", go);
  const tuned = axes.filter((axis) => axis !== state.arm);
  return h(
    "div",
    { class: "filters" },
    h("label", {}, "Arms: ", arm),
    state.arm ? h("label", {}, "baseline ", baseline) : null,
    state.arm ? h("span", { class: "muted" }, tuned.length ? `each arm at its best ${tuned.join(", ")}` : "no axis to tune") : null,
  );
}

function armParameters(grid, state) {
  if (!state.arm || !(state.arm in grid)) return "";
  const query = new URLSearchParams({ arm: state.arm });
  Object.keys(grid).filter((axis) => axis !== state.arm).forEach((axis) => query.append("tune", axis));
  if (state.baseline) query.set("baseline", state.baseline);
  return `?${query}`;
}

function curvesChart(curves) {
  return meanBandChart({
    id: "sweep-curves",
    title: `${curves.metric} over steps: mean over seeds with its 95% interval`,
    yLabel: curves.metric,
    yDomain: curves.metric.endsWith("accuracy") ? [0, 1] : null,
    curves: curves.points.map((point) => ({
      label: pointText(point.point) || "all jobs",
      steps: point.steps,
      mean: point.mean,
      low: point.ci95_low,
      high: point.ci95_high,
    })),
  });
}

// Training steps of all jobs, their summed rate and the time left at it, and the jobs finished.
function sweepRate(sweep) {
  const { model_steps_per_second: rate, eta_seconds: eta } = sweep.progress;
  const parts = [`${sweep.done} / ${sweep.size} jobs done`];
  if (sweep.done < sweep.size) {
    parts.push(rate > 0 ? `${formatNumber(Math.round(rate))} model-steps/s` : "no job training now");
    if (eta !== null) parts.push(`ETA ${formatDuration(eta)}`);
  }
  return parts.join(" · ");
}

export function sweepPage(root, sweepId, query, life) {
  const state = { arm: query.get("arm"), baseline: query.get("baseline") };
  const messages = h("div", { class: "messages" });
  const header = h("div");
  const housekeepingHolder = h("div", { class: "title-row", id: "sweep-housekeeping" });
  const heatmapHolder = h("figure", { class: "heatmap", id: "sweep-heatmap" });
  const curvesHolder = h("div", { id: "sweep-curves-holder" }, h("p", { class: "muted" }, "Reading the curves…"));
  const tableHolder = h("div");
  const armsHolder = h("div", { id: "sweep-arms-holder" });
  const executionHolder = h("div");
  let curvesReadAt = -Infinity;
  let curvesDone = -1;

  async function drawCurves(sweep) {
    if (sweep.done === curvesDone) return;
    if (sweep.done < sweep.size && performance.now() - curvesReadAt < CURVES_REFRESH_MS) return;
    curvesReadAt = performance.now();
    curvesDone = sweep.done;
    const curves = await getJson(`/v1/sweeps/${sweepId}/curves?max_points=200`, { signal: life.signal });
    curvesHolder.replaceChildren(curvesChart(curves));
  }

  function renderHeader(sweep) {
    const cancel = h("button", { type: "button", class: "danger", id: "cancel-sweep", hidden: sweep.done >= sweep.size }, "Cancel sweep");
    cancel.addEventListener("click", async () => {
      const unfinished = sweep.size - sweep.done;
      if (!window.confirm(`Cancel the ${unfinished} unfinished jobs of sweep ${sweep.name || shortId(sweep.id)}? Finished ones keep their results.`)) return;
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
      h("div", { class: "job-progress", id: "sweep-progress" },
        progressBar({ step: sweep.progress.steps_done, steps: sweep.progress.steps_total }, sweep.done >= sweep.size ? "succeeded" : "running"),
        h("span", { class: "muted", id: "sweep-rate" }, sweepRate(sweep)),
        h("span", { class: "counts" }, counts),
      ),
      h("p", { class: "muted" },
        `Grid: ${Object.entries(sweep.grid).map(([axis, values]) => `${axis} ∈ ${JSON.stringify(values)}`).join(" × ") || "none"}; seeds ${sweep.seeds.join(", ")}. `,
        `Executed: ${sweep.execution.used} (${sweep.execution.note}).`,
      ),
    );
  }

  function renderArms(sweep) {
    const parts = [armForm(sweep, state)];
    if (sweep.tuned) parts.push(armsTable(sweep.tuned, "sweep-arms"));
    armsHolder.replaceChildren(...parts);
  }

  function renderHousekeeping(sweep) {
    if (housekeepingHolder.firstChild) return; // once: a refresh must not reset the tags being edited
    const badges = h("span", {}, tagBadges(sweep));
    const actions = housekeepingActions("sweep", sweep, {
      messages,
      signal: life.signal,
      onChange: (changed) => badges.replaceChildren(tagBadges(changed)),
      afterDelete: () => (location.hash = "#/sweeps"),
    });
    housekeepingHolder.append(badges, actions);
  }

  root.append(
    header,
    housekeepingHolder,
    messages,
    h("section", {}, h("h2", {}, "Mean final accuracy"), heatmapHolder, h("p", { class: "muted" }, "Hover a cell for n, the 95% interval and divergences.")),
    h("section", {}, h("h2", {}, "Learning curves (mean and 95% band over seeds)"), curvesHolder),
    h("section", {}, h("h2", {}, "Per grid point (mean [95% confidence interval] over seeds)"), tableHolder),
    h("section", {}, h("h2", {}, "Arms at their tuned best"), armsHolder),
    h("section", {}, h("h2", {}, "How its jobs were executed"), executionHolder),
  );
  let grid = null; // the sweep's axes (they never change), read once: they shape the arm query
  life.loop(
    async () => {
      if (!grid) {
        grid = (await getJson(`/v1/sweeps/${sweepId}`, { signal: life.signal })).grid;
        if (state.arm === null && "batch_norm" in grid) {
          state.arm = "batch_norm"; // the claim bnlab exists to test, against the arm without it
          if (state.baseline === null && grid.batch_norm.includes(false)) state.baseline = "false";
        }
      }
      const sweep = await getJson(`/v1/sweeps/${sweepId}${armParameters(grid, state)}`, { signal: life.signal });
      renderHeader(sweep);
      renderHousekeeping(sweep);
      heatmapHolder.replaceChildren(heatmapGrid(sweep));
      tableHolder.replaceChildren(pointTable(sweep));
      renderArms(sweep);
      executionHolder.replaceChildren(executionTable(sweep));
      await drawCurves(sweep);
      return sweep;
    },
    (sweep) => (sweep.done < sweep.size || sweep.done !== curvesDone ? LIVE_REFRESH_MS : null),
    (error) => messages.replaceChildren(errorBox(error)),
  );
}
