// One job (`#/jobs/<id>`): status, live progress with speed and ETA, the summary (with its normalization),
// loss and accuracy curves drawn while it trains (from the event stream), the paper's Fig. 1 telemetry per
// hidden layer, saturation and gradient norms, Santurkar et al.'s gradient-based ICS per layer, the spec,
// how it is trained (in a fused group or alone), a cancel button, and its tags with archive and delete
// (`housekeeping.js`).

import { followJobEvents, getJson, postJson } from "./api.js";
import { PALETTE, bandChart, lineChart } from "./charts.js";
import {
  TERMINAL_STATUSES,
  errorBox,
  formatDuration,
  formatExecution,
  formatNumber,
  formatTime,
  h,
  isAbort,
  isFiniteNumber,
  jobLabel,
  progressBar,
  shortId,
  statusBadge,
} from "./dom.js";
import { housekeepingActions, tagBadges } from "./housekeeping.js";

const METRIC_NAMES = ["train_loss", "val_loss", "train_accuracy", "val_accuracy"];
const MAX_POINTS = 1000;
const TELEMETRY_REFRESH_MS = 3000;
const WAITING_REFRESH_MS = 3000; // while queued: has a worker for its queue come?

/** A metric series that grows from the stream: steps only ever increase. */
class GrowingSeries {
  constructor(steps = [], values = []) {
    this.steps = [...steps];
    this.values = [...values];
  }

  get lastStep() {
    return this.steps.length ? this.steps[this.steps.length - 1] : null;
  }

  add(step, value) {
    if (this.lastStep !== null && step <= this.lastStep) return;
    this.steps.push(step);
    this.values.push(value ?? null);
  }
}

/** The last value of a series before `beforeStep` (all of it when null) that is a number, with its step. */
function lastFinite(series, beforeStep = null) {
  for (let index = series.steps.length - 1; index >= 0; index -= 1) {
    if (beforeStep !== null && series.steps[index] >= beforeStep) continue;
    if (isFiniteNumber(series.values[index])) return { step: series.steps[index], value: series.values[index] };
  }
  return null;
}

function bestFinite(series, beforeStep = null) {
  const values = series.values.filter((value, index) => isFiniteNumber(value) && (beforeStep === null || series.steps[index] < beforeStep));
  return values.length ? Math.max(...values) : null;
}

/**
 * Steps to the target as far as it can be said: a number once reached; "not reached" only for a run that
 * had its whole chance (succeeded or diverged); "not yet" while it trains; "—" for a run cut short (failed
 * or cancelled, maybe before it started).
 */
function stepsToTarget(job) {
  if (!job.spec.target_accuracy) return "no target set";
  const steps = job.summary?.steps_to_target;
  if (steps !== null && steps !== undefined) return steps;
  if (job.status === "succeeded" || job.status === "diverged") return "not reached";
  return job.status === "running" ? "not yet" : "—";
}

/** The accuracy rows: what is known so far while it trains; before its divergence for a diverged run. */
function accuracyRows(job, progress, series) {
  const summary = job.summary ?? {};
  if (!TERMINAL_STATUSES.has(job.status)) {
    const latest = lastFinite(series.val_accuracy);
    return [
      ["Step", progress?.steps ? `${progress.step} of ${progress.steps}` : "—"],
      ["Latest val. accuracy", latest ? `${formatNumber(latest.value)} (step ${latest.step})` : "—"],
      ["Best val. accuracy so far", formatNumber(bestFinite(series.val_accuracy))],
      ["Latest train loss", formatNumber(lastFinite(series.train_loss)?.value, 4)],
    ];
  }
  if (job.status === "diverged") {
    const divergedAt = summary.diverged_at_step ?? null;
    const before = lastFinite(series.val_accuracy, divergedAt);
    return [
      ["Val. accuracy before divergence", before ? `${formatNumber(before.value)} (step ${before.step})` : "—"],
      ["Best val. accuracy before divergence", formatNumber(bestFinite(series.val_accuracy, divergedAt))],
      ["Final train loss", "— (diverged)"],
    ];
  }
  return [
    ["Final val. accuracy", formatNumber(summary.final_val_accuracy)],
    ["Best val. accuracy", formatNumber(summary.best_val_accuracy)],
    ["Final train loss", formatNumber(summary.final_train_loss, 4)],
  ];
}

/** The layer before each hidden nonlinearity, in words (a spec stored before `normalization` has only batch_norm). */
export function normalizationText(spec) {
  const kind = spec.normalization ?? (spec.batch_norm ? "batch" : "none");
  if (kind === "group") return spec.groups ? `group norm (${spec.groups} groups)` : "group norm (per layer, up to 32 groups)";
  if (kind === "layer") return "layer norm";
  if (kind !== "batch") return "none";
  const batch = spec.bn_implementation === "bnlab" ? "batch norm (bnlab's paper BN)" : "batch norm";
  const noise = spec.bn_noise;
  return noise ? `${batch} with noise: m ~ N(0, ${noise.mean_std}²), log s ~ N(0, ${noise.scale_std}²)` : batch;
}

function summaryRows(job, progress, series) {
  const summary = job.summary ?? {};
  const target = job.spec.target_accuracy;
  const running = !TERMINAL_STATUSES.has(job.status);
  const speed = running ? progress?.steps_per_second : summary.steps_per_second;
  const rows = [
    ...accuracyRows(job, progress, series),
    [target ? `Steps to ${target}` : "Steps to target", stepsToTarget(job)],
    ["Seconds to target", formatNumber(summary.seconds_to_target, 2)],
    ["Diverged at step", summary.diverged_at_step ?? "—"],
    ["Steps per second", formatNumber(speed, 1)],
    ["Normalization", h("span", { id: "job-normalization", "data-kind": job.spec.normalization ?? (job.spec.batch_norm ? "batch" : "none") }, normalizationText(job.spec))],
    // The device is stored when the run ends; while it runs, the spec says what was asked for.
    ["Device", job.device ?? (running ? `${job.spec.device} (as requested)` : "—")],
    ["Attempts", job.attempts],
    ["Created", formatTime(job.created_at)],
    ["Started", formatTime(job.started_at)],
    ["Finished", formatTime(job.finished_at)],
  ];
  if (job.sweep_id) rows.push(["Sweep", h("a", { href: `#/sweeps/${job.sweep_id}` }, shortId(job.sweep_id))]);
  rows.push(["Execution", h("span", { id: "job-execution", "data-mode": job.execution.mode }, formatExecution(job.execution))]);
  if (job.error) rows.push(["Error", h("span", { class: "error-text" }, job.error)]);
  return h("dl", { class: "summary", id: "job-summary" }, rows.map(([term, value]) => [h("dt", {}, term), h("dd", {}, value)]));
}

function progressLine(progress, status, summary) {
  const parts = [];
  const speed = progress?.steps_per_second ?? summary?.steps_per_second;
  if (isFiniteNumber(speed) && speed > 0) {
    parts.push(`${formatNumber(speed, 0)} steps/s`);
    if (status === "running" && progress.steps) parts.push(`ETA ${formatDuration((progress.steps - progress.step) / speed)}`);
  }
  return h("span", { class: "muted", id: "job-speed" }, parts.join(" · "));
}

function curveCharts(series, target) {
  const line = (name, label, color, dashed = false) => ({
    label,
    steps: series[name].steps,
    values: series[name].values,
    color,
    dashed,
  });
  return [
    lineChart({
      id: "loss-chart",
      title: "Loss",
      yLabel: "cross-entropy",
      series: [line("train_loss", "train", PALETTE[0], true), line("val_loss", "validation", PALETTE[1])],
    }),
    lineChart({
      id: "accuracy-chart",
      title: "Accuracy",
      yLabel: "accuracy",
      yDomain: [0, 1],
      series: [line("train_accuracy", "train", PALETTE[0], true), line("val_accuracy", "validation", PALETTE[1])],
      guides: isFiniteNumber(target) ? [{ value: target, label: `target ${target}` }] : [],
    }),
  ];
}

function telemetryCharts(telemetry, view) {
  const layers = telemetry.layers;
  if (!layers.length) return [h("p", { class: "muted" }, "No telemetry recorded yet.")];
  const prefix = view === "unit" ? "unit_" : "";
  const bands = layers.map((layer, index) =>
    bandChart({
      title: `Hidden layer ${layer.layer + 1}: input to the nonlinearity`,
      steps: layer.steps,
      lower: layer[`${prefix}p15`],
      middle: layer[`${prefix}p50`],
      upper: layer[`${prefix}p85`],
      color: PALETTE[index % PALETTE.length],
      yLabel: "pre-activation",
    }),
  );
  const perLayer = (field) =>
    layers.map((layer) => ({ label: `layer ${layer.layer + 1}`, steps: layer.steps, values: layer[field] }));
  const saturates = layers.some((layer) => layer.saturated_fraction.some(isFiniteNumber));
  return [
    h("div", { class: "chart-grid", id: "telemetry-bands" }, bands),
    h(
      "div",
      { class: "chart-grid" },
      saturates
        ? lineChart({ title: "Saturated fraction", yLabel: "fraction", yDomain: [0, 1], series: perLayer("saturated_fraction") })
        : h("p", { class: "muted" }, "Saturation is not measured for relu, which does not saturate."),
      lineChart({ title: "Gradient norm", yLabel: "‖∇W‖", series: perLayer("grad_norm") }),
    ),
    h("h3", {}, "Gradient-based internal covariate shift (Santurkar et al. 2018)"),
    h("p", { class: "muted" }, "For each layer, how much its weight gradient G changes when the layers before it take their step first (G′): a larger ‖G − G′‖₂ and a cosine further below 1 mean more shift. The first layer has nothing before it (0 and 1)."),
    layers.some((layer) => (layer.ics_gradient_change ?? []).some(isFiniteNumber))
      ? h(
          "div",
          { class: "chart-grid", id: "telemetry-ics" },
          lineChart({ id: "ics-change-chart", title: "‖G − G′‖₂ per layer", yLabel: "‖G − G′‖₂", series: perLayer("ics_gradient_change") }),
          lineChart({ id: "ics-cosine-chart", title: "cos(G, G′) per layer", yLabel: "cosine", series: perLayer("ics_gradient_cosine") }),
        )
      : h("p", { class: "muted", id: "telemetry-ics" }, "No gradient-based ICS measured yet."),
  ];
}

export function jobPage(root, jobId, life) {
  const messages = h("div", { class: "messages" });
  root.append(messages);
  const fail = (error) => {
    if (life.alive && !isAbort(error)) messages.replaceChildren(errorBox(error));
  };
  load(root, jobId, life, messages).catch(fail);
}

async function load(root, jobId, life, messages) {
  const { signal } = life;
  let job = await getJson(`/v1/jobs/${jobId}`, { signal });
  let progress = job.progress;
  let telemetryView = "unit";
  let telemetry = { layers: [] };
  const series = Object.fromEntries(METRIC_NAMES.map((name) => [name, new GrowingSeries()]));

  const heading = h("h1", { id: "job-title" });
  const statusHolder = h("span", { id: "job-status" });
  const cancelButton = h("button", { type: "button", id: "cancel-job", class: "danger" }, "Cancel");
  const progressHolder = h("div", { class: "job-progress", id: "job-progress" });
  const waitingHolder = h("p", { class: "error", id: "job-waiting", role: "status", hidden: true });
  const summaryHolder = h("div");
  const curvesHolder = h("div", { class: "chart-grid", id: "job-curves" });
  const telemetryHolder = h("div", { id: "job-telemetry" });
  const viewSelect = h(
    "select",
    { id: "telemetry-view", value: telemetryView },
    h("option", { value: "unit" }, "one fixed unit (the paper's Fig. 1)"),
    h("option", { value: "layer" }, "all units of the layer"),
  );

  const renderHeader = () => {
    heading.replaceChildren(jobLabel(job), h("span", { class: "muted id" }, ` ${job.id}`));
    statusHolder.replaceChildren(statusBadge(job.status));
    cancelButton.hidden = TERMINAL_STATUSES.has(job.status);
    progressHolder.replaceChildren(progressBar(progress, job.status), progressLine(progress, job.status, job.summary));
    // Why a queued job does not start (no live worker consumes its queue), as the API says it.
    waitingHolder.hidden = !(job.status === "queued" && job.waiting_for);
    waitingHolder.textContent = waitingHolder.hidden ? "" : `Waiting: ${job.waiting_for}.`;
    summaryHolder.replaceChildren(summaryRows(job, progress, series));
  };
  let drawPending = false;
  const drawCurves = () => {
    if (drawPending) return;
    drawPending = true; // at most one redraw per animation frame, however many points arrive
    requestAnimationFrame(() => {
      drawPending = false;
      curvesHolder.replaceChildren(...curveCharts(series, job.spec.target_accuracy));
      summaryHolder.replaceChildren(summaryRows(job, progress, series)); // the latest accuracy too
    });
  };
  const drawTelemetry = () => {
    if (!job.spec.telemetry_every) {
      telemetryHolder.replaceChildren(h("p", { class: "muted" }, "Telemetry is off for this job (telemetry_every is 0)."));
      return;
    }
    telemetryHolder.replaceChildren(...telemetryCharts(telemetry, telemetryView));
  };
  viewSelect.addEventListener("change", () => {
    telemetryView = viewSelect.value;
    drawTelemetry();
  });

  const readStored = async () => {
    const names = METRIC_NAMES.map((name) => `name=${name}`).join("&");
    const stored = await getJson(`/v1/jobs/${jobId}/metrics?${names}&max_points=${MAX_POINTS}`, { signal });
    for (const name of METRIC_NAMES) series[name] = new GrowingSeries(stored.series[name].steps, stored.series[name].values);
    drawCurves();
  };
  const readTelemetry = async () => {
    if (!job.spec.telemetry_every) return;
    telemetry = await getJson(`/v1/jobs/${jobId}/telemetry`, { signal });
    drawTelemetry();
  };

  cancelButton.addEventListener("click", async () => {
    const what = job.status === "running" ? "It stops within a few seconds; its results so far are kept." : "It will not start.";
    if (!window.confirm(`Cancel job ${jobLabel(job)}? ${what}`)) return;
    cancelButton.disabled = true;
    try {
      // A queued job is cancelled at once; a running one stops within seconds and the stream says so.
      job = await postJson(`/v1/jobs/${jobId}/cancel`, undefined, { signal });
      cancelButton.textContent = "Cancelling…";
    } catch (error) {
      if (isAbort(error)) return;
      messages.replaceChildren(errorBox(error)); // 409: it finished meanwhile; its final status follows
      cancelButton.disabled = false;
    }
    renderHeader();
  });

  const tagsHolder = h("span", { id: "job-tag-badges" }, tagBadges(job));
  const actions = housekeepingActions("job", job, {
    messages,
    signal,
    onChange: (changed) => {
      job = { ...job, tags: changed.tags, note: changed.note, archived: changed.archived };
      tagsHolder.replaceChildren(tagBadges(job));
    },
    afterDelete: () => (location.hash = "#/jobs"),
  });

  root.append(
    h("div", { class: "title-row" }, heading, h("div", { class: "actions" }, statusHolder, cancelButton)),
    h("div", { class: "title-row" }, tagsHolder, actions),
    progressHolder,
    waitingHolder,
    h("section", {}, h("h2", {}, "Summary"), summaryHolder),
    h("section", {}, h("h2", {}, "Curves"), curvesHolder),
    h(
      "section",
      {},
      h("div", { class: "title-row" }, h("h2", {}, "Telemetry"), h("label", {}, "Percentiles of ", viewSelect)),
      h("p", { class: "muted" }, "15th, 50th and 85th percentiles of each hidden layer's input to its nonlinearity on a fixed batch: with batch norm the band stays put, without it the band drifts (internal covariate shift)."),
      telemetryHolder,
    ),
    h(
      "section",
      {},
      h("div", { class: "title-row" },
        h("h2", {}, "Spec"),
        h("div", { class: "actions" },
          h("a", { class: "button", href: `#/compare?ids=${jobId}` }, "Compare with…"),
          h("a", { class: "button", href: `#/submit?from=${jobId}` }, "Submit a copy"),
        ),
      ),
      h("pre", { class: "spec", id: "job-spec" }, JSON.stringify(job.spec, null, 2)),
    ),
  );
  renderHeader();
  drawTelemetry();
  await Promise.all([readStored(), readTelemetry()]);
  if (TERMINAL_STATUSES.has(job.status)) return;

  // While it is queued, a worker may come (or go): re-read whether anyone can take it.
  const readWaiting = async () => {
    if (job.status !== "queued") return null;
    const fresh = await getJson(`/v1/jobs/${jobId}`, { signal });
    if (job.status === "queued") job = { ...job, waiting_for: fresh.waiting_for };
    renderHeader();
    return job.status;
  };
  life.loop(readWaiting, (status) => (status === "queued" ? WAITING_REFRESH_MS : null), () => {});
  // Live: the stream resumes after the last stored step, so every later evaluation arrives exactly once.
  life.loop(readTelemetry, () => (TERMINAL_STATUSES.has(job.status) ? null : TELEMETRY_REFRESH_MS), () => {});
  const lastStep = series.val_accuracy.lastStep ?? series.train_loss.lastStep;
  await followJobEvents(
    jobId,
    {
      onProgress: (data) => {
        progress = data;
        renderHeader();
      },
      onMetrics: ({ step, values }) => {
        for (const [name, value] of Object.entries(values)) series[name]?.add(step, value);
        drawCurves();
      },
      onStatus: (data) => {
        job = { ...job, status: data.status, summary: data.summary ?? job.summary, error: data.error ?? job.error };
        renderHeader();
      },
    },
    { signal, lastEventId: lastStep === null ? null : `metrics:${lastStep}` },
  );
  if (!life.alive) return;
  // Finished: the stored row, series and telemetry are now complete.
  job = await getJson(`/v1/jobs/${jobId}`, { signal });
  progress = job.progress;
  renderHeader();
  await Promise.all([readStored(), readTelemetry()]);
}
