// Small helpers every page uses: building elements, formatting figures, status badges and progress bars,
// and the lifetime of a page (its fetches and timers end when the user navigates away).

export const TERMINAL_STATUSES = new Set(["succeeded", "failed", "diverged", "cancelled"]);
export const JOB_STATUSES = ["queued", "running", "succeeded", "failed", "diverged", "cancelled"];
const SVG_NAMESPACE = "http://www.w3.org/2000/svg";
const RETRY_AFTER_ERROR_MS = 3000;

function append(parent, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    parent.append(child instanceof Node ? child : String(child));
  }
}

/** An HTML element: `h("a", {href: "#/jobs", class: "link", onclick: fn}, "text", child, ...)`. */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  append(element, children); // first, so that a <select>'s value can name one of its options
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name in element && !name.includes("-") && name !== "list") {
      element[name] = value; // properties such as value, checked, disabled, className
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  return element;
}

/** An SVG element, with every attribute set as an attribute. */
export function s(tag, attributes = {}, ...children) {
  const element = document.createElementNS(SVG_NAMESPACE, tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value !== null && value !== undefined) element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

export function isFiniteNumber(value) {
  return typeof value === "number" && Number.isFinite(value);
}

/** A figure for a table cell: a dash for "none" (null is also what the API sends for NaN and inf). */
export function formatNumber(value, digits = 3) {
  if (!isFiniteNumber(value)) return "—";
  if (Number.isInteger(value)) return String(value);
  const magnitude = Math.abs(value);
  if (magnitude !== 0 && (magnitude < 10 ** -digits || magnitude >= 1e6)) return value.toExponential(2);
  return value.toFixed(digits);
}

/**
 * An aggregate over seeds as the API reports it ({n, mean, std, ci95, ci_method}): `mean [low, high]`, the
 * 95% interval; the mean alone where there is none (one seed).
 */
export function formatStat(stat, digits = 3) {
  if (!stat || !isFiniteNumber(stat.mean)) return "—";
  if (!Array.isArray(stat.ci95)) return formatNumber(stat.mean, digits);
  return `${formatNumber(stat.mean, digits)} [${formatNumber(stat.ci95[0], digits)}, ${formatNumber(stat.ci95[1], digits)}]`;
}

/** What an aggregate is, for a cell's tooltip: n, mean, std and how the interval was computed. */
export function describeStat(stat) {
  if (!stat || !isFiniteNumber(stat.mean)) return "no value yet";
  const method = stat.ci_method === "bootstrap" ? "percentile bootstrap" : "Student t";
  const interval = Array.isArray(stat.ci95) ? `95% CI [${formatNumber(stat.ci95[0], 4)}, ${formatNumber(stat.ci95[1], 4)}] (${method})` : "no interval below 2 seeds";
  const spread = isFiniteNumber(stat.std) ? `, std ${formatNumber(stat.std, 4)}` : "";
  return `n = ${stat.n}, mean ${formatNumber(stat.mean, 4)}${spread}; ${interval}`;
}

export function formatDuration(seconds) {
  if (!isFiniteNumber(seconds)) return "—";
  if (seconds < 1) return "< 1 s";
  const whole = Math.round(seconds);
  const hours = Math.floor(whole / 3600);
  const minutes = Math.floor((whole % 3600) / 60);
  const rest = whole % 60;
  if (hours) return `${hours} h ${String(minutes).padStart(2, "0")} min`;
  if (minutes) return `${minutes} min ${String(rest).padStart(2, "0")} s`;
  return `${rest} s`;
}

export function formatTime(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

export function shortId(id) {
  return id.slice(0, 8);
}

export function jobLabel(job) {
  return job.spec?.name || job.name || shortId(job.id);
}

// Finished outcomes first, then what is still to come: "12 succeeded · 1 diverged · 3 running".
const STATUS_SUMMARY_ORDER = ["succeeded", "diverged", "failed", "cancelled", "running", "queued"];

/** Jobs counted by status (the API's `status_counts`) in a few words; zero counts are left out. */
export function formatStatusCounts(counts) {
  const parts = STATUS_SUMMARY_ORDER.filter((status) => counts[status] > 0).map((status) => `${counts[status]} ${status}`);
  return parts.join(" · ") || "—";
}

/** How a job is trained, from its `execution`: in a fused group (short id and size) or as a task of its own. */
export function formatExecution(execution) {
  if (execution?.mode !== "fused") return "separate: a task of its own";
  return `fused group ${shortId(execution.group_id)}: ${execution.group_size} jobs trained together as stacked models`;
}

export function statusBadge(status) {
  return h("span", { class: `status status-${status}`, "data-status": status }, status);
}

/** A bar with "step / steps"; `data-step` and `data-steps` carry the numbers for scripts and tests. */
export function progressBar(progress, status) {
  const step = progress?.step ?? 0;
  const steps = progress?.steps ?? null;
  const fraction = steps ? Math.min(1, step / steps) : 0;
  const fill = h("span", { class: `progress-fill status-${status}` });
  fill.style.width = `${(fraction * 100).toFixed(1)}%`;
  return h(
    "span",
    { class: "progress", "data-step": step, "data-steps": steps ?? "", title: `${Math.round(fraction * 100)}%` },
    fill,
    h("span", { class: "progress-text" }, steps ? `${step} / ${steps}` : status === "queued" ? "waiting" : "—"),
  );
}

export function errorBox(error) {
  return h("p", { class: "error", role: "alert" }, error instanceof Error ? error.message : String(error));
}

export function sleep(milliseconds, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, milliseconds);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** Whether an error only says that the page went away (a fetch aborted on navigation). */
export function isAbort(error) {
  return error?.name === "AbortError";
}

/**
 * What a page holds while it is shown: an AbortSignal for its fetches and streams, and loops that
 * stop when the user navigates away.
 */
export class PageLifetime {
  constructor() {
    this.controller = new AbortController();
  }

  get signal() {
    return this.controller.signal;
  }

  get alive() {
    return !this.controller.signal.aborted;
  }

  /**
   * Runs `task` now and again after each run, `delay(result)` milliseconds later, until the page goes
   * away or the delay is null. A failed run is reported to `onError` and retried a little later,
   * unless the API refused it (a 4xx answer would only be refused again).
   */
  loop(task, delay, onError) {
    const run = async () => {
      while (this.alive) {
        let wait;
        try {
          wait = delay(await task());
        } catch (error) {
          if (!this.alive || isAbort(error)) return;
          onError(error);
          if (error.status >= 400 && error.status < 500) return;
          wait = RETRY_AFTER_ERROR_MS;
        }
        if (wait === null) return;
        await sleep(wait, this.signal);
      }
    };
    run();
  }

  end() {
    this.controller.abort();
  }
}
