// Comparison (`#/compare?ids=A,B&metric=…&target=…&baseline=…`): pick jobs, then see their curves
// overlaid with the target line, and the table of what differs, final and best values, steps to the
// target and the speedup against the baseline (a lower bound, "≥", when the baseline never got there);
// with `arm=…`, the arms over matched seeds with their intervals and verdicts. Jobs run with telemetry add
// their gradient-based ICS per layer (medians over the run of ‖G − G′‖₂ and cos(G, G′)).

import { getJson } from "./api.js";
import { armsTable } from "./arms.js";
import { lineChart } from "./charts.js";
import { axisValue, pointText } from "./heatmap.js";
import {
  TERMINAL_STATUSES,
  errorBox,
  formatNumber,
  h,
  isAbort,
  isFiniteNumber,
  jobLabel,
  shortId,
  statusBadge,
} from "./dom.js";

const METRICS = ["val_accuracy", "train_accuracy", "val_loss", "train_loss"];
const CANDIDATES = 100;
const MAX_POINTS = 500;
const LIVE_REFRESH_MS = 2000;

function compareHash(ids, metric, target, baseline, arm) {
  const query = new URLSearchParams();
  if (ids.length) query.set("ids", ids.join(","));
  if (metric && metric !== METRICS[0]) query.set("metric", metric);
  if (target !== "") query.set("target", target);
  if (baseline && ids.includes(baseline)) query.set("baseline", baseline);
  if (arm) query.set("arm", arm);
  return `#/compare?${query}`.replace(/\?$/, "");
}

/** "≥ 3.3×" when the baseline never reached the target, "—" when this job never did. */
export function formatSpeedup(row, baseline) {
  if (row.id === baseline) return "1× (baseline)";
  if (!isFiniteNumber(row.speedup_vs_baseline)) return "—";
  return `${row.speedup_is_lower_bound ? "≥ " : ""}${row.speedup_vs_baseline.toFixed(1)}×`;
}

function describeDifference(specDiff) {
  const entries = Object.entries(specDiff ?? {});
  if (!entries.length) return h("span", { class: "muted" }, "same spec");
  return entries.map(([field, value]) => h("code", { class: "diff" }, `${field}=${axisValue(value, field)}`));
}

function rowLabel(row) {
  return row.name || shortId(row.id);
}

/** A job's ICS medians of one figure, layer by layer ("0 · 0.021 · 0.034"); "—" without telemetry. */
export function icsCell(row, figure) {
  const layers = row.ics ?? [];
  if (!layers.length) return h("span", { class: "muted" }, "—");
  const title = layers.map((layer) => `layer ${layer.layer + 1}: ${formatNumber(layer[figure], 4)} (median of ${layer.probes} probes)`).join("\n");
  // Gradient changes are small numbers on any scale: three significant digits; cosines near 1: four decimals.
  const shown = (value) => (figure === "median_gradient_cosine" || !isFiniteNumber(value) ? formatNumber(value, 4) : String(Number(value.toPrecision(3))));
  return h("span", { title }, layers.map((layer) => shown(layer[figure])).join(" · "));
}

function comparisonTable(comparison) {
  const lowerIsBetter = comparison.metric.endsWith("loss");
  const withIcs = comparison.jobs.some((row) => (row.ics ?? []).length);
  const icsTitles = withIcs ? ["ICS ‖G − G′‖₂ by layer", "ICS cos(G, G′) by layer"] : [];
  return h(
    "table",
    { class: "compare", id: "compare-table" },
    h("thead", {}, h("tr", {},
      ["Job", "Differs by", "Status", "Eval every", "Final", lowerIsBetter ? "Lowest" : "Best",
       "Steps to target", "Seconds to target", "Speedup", "Diverged at", ...icsTitles]
        .map((title, index) => h("th", { class: index >= 3 ? "number" : "", title: index >= 10 ? "median over the job's telemetry steps, per hidden layer (Santurkar et al. 2018): larger ‖G − G′‖₂ and lower cosine mean more shift" : null }, title)),
    )),
    h(
      "tbody",
      {},
      comparison.jobs.map((row) =>
        h(
          "tr",
          { "data-job-id": row.id },
          h("td", {}, h("a", { href: `#/jobs/${row.id}` }, rowLabel(row))),
          h("td", {}, describeDifference(row.spec_diff)),
          h("td", {}, statusBadge(row.status)),
          h("td", { class: "number" }, row.eval_every),
          h("td", { class: "number" }, formatNumber(row.final)),
          h("td", { class: "number" }, formatNumber(row.best)),
          h("td", { class: "number" }, row.steps_to_target ?? "never"),
          h("td", { class: "number" }, formatNumber(row.seconds_to_target, 2)),
          h(
            "td",
            {
              class: "number speedup",
              title: row.speedup_is_lower_bound
                ? "the baseline never reached the target: its step budget was used, the true speedup is larger"
                : "",
            },
            formatSpeedup(row, comparison.baseline),
          ),
          h("td", { class: "number" }, row.diverged_at_step ?? "—"),
          withIcs ? h("td", { class: "number ics-change" }, icsCell(row, "median_gradient_change")) : null,
          withIcs ? h("td", { class: "number ics-cosine" }, icsCell(row, "median_gradient_cosine")) : null,
        ),
      ),
    ),
  );
}

function comparisonChart(comparison) {
  const series = comparison.jobs.map((row) => ({
    label: `${rowLabel(row)}${Object.keys(row.spec_diff ?? {}).length ? ` (${pointText(row.spec_diff)})` : ""}`,
    steps: comparison.series[row.id]?.steps ?? [],
    values: comparison.series[row.id]?.values ?? [],
  }));
  const isAccuracy = comparison.metric.endsWith("accuracy");
  return lineChart({
    id: "compare-chart",
    title: `${comparison.metric} over steps`,
    yLabel: comparison.metric,
    yDomain: isAccuracy ? [0, 1] : null,
    series,
    guides: isFiniteNumber(comparison.target) ? [{ value: comparison.target, label: `target ${comparison.target}` }] : [],
  });
}

function picker(candidates, state) {
  const chosen = new Set(state.ids);
  const known = new Set(candidates.map((job) => job.id));
  const checkbox = (id, label, extra) =>
    h("li", {}, h("label", {},
      h("input", { type: "checkbox", class: "pick-job", value: id, checked: chosen.has(id) }),
      ` ${label} `, extra,
    ));
  const list = h(
    "ul",
    { class: "pick-list", id: "compare-picker" },
    state.ids.filter((id) => !known.has(id)).map((id) => checkbox(id, shortId(id), null)),
    candidates.map((job) => checkbox(job.id, jobLabel(job), statusBadge(job.status))),
  );
  const metric = h("select", { id: "compare-metric", value: state.metric }, METRICS.map((name) => h("option", { value: name }, name)));
  const target = h("input", { id: "compare-target", type: "text", inputmode: "decimal", value: state.target, placeholder: "the spec's target", size: 8 });
  const labelOf = (id) => {
    const job = candidates.find((candidate) => candidate.id === id);
    return job ? jobLabel(job) : shortId(id);
  };
  const baseline = h(
    "select",
    { id: "compare-baseline", value: state.baseline },
    h("option", { value: "" }, "first picked"),
    state.ids.map((id) => h("option", { value: id }, labelOf(id))),
  );
  const arm = h("input", { id: "compare-arm", type: "text", value: state.arm, placeholder: "e.g. batch_norm", size: 14, title: "a spec field whose values split the jobs into arms, compared over matched seeds" });
  const form = h(
    "form",
    { class: "compare-form", id: "compare-form" },
    h("div", { class: "filters" },
      h("label", {}, "Metric ", metric),
      h("label", {}, "Target ", target),
      h("label", {}, "Baseline ", baseline),
      h("label", {}, "Arms by ", arm),
      h("button", { type: "submit", class: "primary", id: "compare-submit" }, "Compare"),
    ),
    candidates.length || state.ids.length ? list : h("p", { class: "muted" }, "No jobs to compare yet."),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const ids = [...form.querySelectorAll(".pick-job:checked")].map((input) => input.value);
    location.hash = compareHash(ids, metric.value, target.value.trim(), baseline.value, arm.value.trim());
  });
  return form;
}

export function comparePage(root, query, life) {
  const state = {
    ids: (query.get("ids") ?? "").split(",").filter(Boolean),
    metric: query.get("metric") ?? METRICS[0],
    target: query.get("target") ?? "",
    baseline: query.get("baseline") ?? "",
    arm: query.get("arm") ?? "",
  };
  const messages = h("div", { class: "messages" });
  const pickerHolder = h("details", { class: "picker", open: state.ids.length < 1 }, h("summary", {}, "Jobs to compare"));
  const result = h("div", { id: "compare-result" });
  root.append(h("h1", {}, "Compare"), messages, pickerHolder, result);

  getJson(`/v1/jobs?limit=${CANDIDATES}`, { signal: life.signal })
    .then((page) => pickerHolder.append(picker(page.items, state)))
    .catch((error) => life.alive && !isAbort(error) && messages.append(errorBox(error)));

  if (!state.ids.length) {
    result.append(h("p", { class: "muted" }, "Pick two or more jobs, then Compare."));
    return;
  }
  const parameters = new URLSearchParams({ metric: state.metric, max_points: String(MAX_POINTS) });
  state.ids.forEach((id) => parameters.append("ids", id));
  if (state.target) parameters.set("target", state.target);
  if (state.baseline) parameters.set("baseline", state.baseline);
  if (state.arm) parameters.set("arm", state.arm);
  life.loop(
    async () => {
      const comparison = await getJson(`/v1/compare?${parameters}`, { signal: life.signal });
      messages.replaceChildren();
      result.replaceChildren(
        comparisonChart(comparison),
        comparisonTable(comparison),
        h("p", { class: "muted" }, "Speedup: the baseline's steps to the target ÷ this job's, each resolved to its own eval_every. ≥ marks a lower bound: the baseline never reached the target, so its whole step budget was used."),
        ...(comparison.arms ? [h("section", {}, h("h2", {}, `Arms by ${comparison.arms.arm}, over matched seeds`), armsTable(comparison.arms, "compare-arms"))] : []),
      );
      return comparison.jobs.some((row) => !TERMINAL_STATUSES.has(row.status));
    },
    (unfinished) => (unfinished ? LIVE_REFRESH_MS : null),
    (error) => messages.replaceChildren(errorBox(error)),
  );
}
