// bnlab's own SVG charts: line charts (learning curves, overlaid comparisons, with horizontal guides such
// as the target accuracy), mean curves over shaded 95% bands (a sweep's grid points over seeds) and band
// charts (the 15th–85th percentile band and the median of a nonlinearity's input over training, the
// paper's Fig. 1(b,c)).
//
// Each chart is a <figure> holding an <svg> with a fixed viewBox that scales to its container. Every
// drawn series is one <path class="curve"> whose `d` holds its points; a null value (NaN or inf in the
// run) breaks the line instead of being drawn as zero.

import { h, isFiniteNumber, s } from "./dom.js";

export const PALETTE = ["#1f6fb4", "#d0442b", "#2e9a4a", "#e08a12", "#7b52b8", "#8c564b", "#d05fa8", "#138d9c"];
const WIDTH = 640;
const HEIGHT = 280;
const MARGIN = { top: 12, right: 16, bottom: 38, left: 56 };
const MAX_DRAWN_POINTS = 2000; // more than the plot has pixels across

/** About `count` round tick values covering [low, high]. */
export function niceTicks(low, high, count = 5) {
  if (!(high > low)) return [low];
  const rough = (high - low) / count;
  const power = 10 ** Math.floor(Math.log10(rough));
  const step = [1, 2, 2.5, 5, 10].map((factor) => factor * power).find((candidate) => candidate >= rough);
  const ticks = [];
  for (let value = Math.ceil(low / step) * step; value <= high + step * 1e-9; value += step) {
    ticks.push(Number(value.toPrecision(12)));
  }
  return ticks;
}

function tickLabel(value, digits = 4) {
  const magnitude = Math.abs(value);
  if (magnitude >= 1e5 || (magnitude > 0 && magnitude < 1e-3)) return value.toExponential(digits - 4);
  return String(Number(value.toPrecision(digits)));
}

/** Labels of `ticks`, with as many significant digits as it takes to tell them apart (a cosine axis from
 * 0.99990 to 1.0000 reads 0.9999, 0.99995, 1 rather than 0.9999, 1, 1). */
function tickLabels(ticks) {
  for (let digits = 4; digits < 10; digits += 1) {
    const labels = ticks.map((tick) => tickLabel(tick, digits));
    if (new Set(labels).size === labels.length) return labels;
  }
  return ticks.map((tick) => String(tick));
}

function extent(values, fallback) {
  let low = Infinity;
  let high = -Infinity;
  for (const value of values) {
    if (!isFiniteNumber(value)) continue;
    if (value < low) low = value;
    if (value > high) high = value;
  }
  if (low > high) return fallback;
  if (low === high) {
    const pad = Math.abs(low) * 0.1 || 0.5;
    low -= pad;
    high += pad;
  }
  return [low, high];
}

function padded([low, high], fraction) {
  const pad = (high - low) * fraction;
  return [low - pad, high + pad];
}

/** The plotting area: scales, axes with ticks and labels, in an <svg>. */
function frame({ xDomain, yDomain, xLabel, yLabel, width = WIDTH, height = HEIGHT }) {
  const plotWidth = width - MARGIN.left - MARGIN.right;
  const plotHeight = height - MARGIN.top - MARGIN.bottom;
  const [x0, x1] = xDomain;
  const [y0, y1] = yDomain;
  const x = (value) => MARGIN.left + ((value - x0) / (x1 - x0 || 1)) * plotWidth;
  const y = (value) => MARGIN.top + (1 - (value - y0) / (y1 - y0 || 1)) * plotHeight;
  const svg = s("svg", {
    viewBox: `0 0 ${width} ${height}`,
    class: "chart-svg",
    role: "img",
    preserveAspectRatio: "xMidYMid meet",
  });
  const axes = s("g", { class: "axes" });
  const yTicks = niceTicks(y0, y1);
  const yLabels = tickLabels(yTicks);
  yTicks.forEach((tick, index) => {
    axes.append(
      s("line", { x1: MARGIN.left, x2: width - MARGIN.right, y1: y(tick), y2: y(tick), class: "grid" }),
      s("text", { x: MARGIN.left - 6, y: y(tick) + 4, "text-anchor": "end", class: "tick" }, yLabels[index]),
    );
  });
  for (const tick of niceTicks(x0, x1, 6)) {
    axes.append(
      s("line", { x1: x(tick), x2: x(tick), y1: height - MARGIN.bottom, y2: height - MARGIN.bottom + 4 }),
      s("text", { x: x(tick), y: height - MARGIN.bottom + 16, "text-anchor": "middle", class: "tick" }, tickLabel(tick)),
    );
  }
  axes.append(
    s("line", { x1: MARGIN.left, x2: width - MARGIN.right, y1: height - MARGIN.bottom, y2: height - MARGIN.bottom }),
    s("line", { x1: MARGIN.left, x2: MARGIN.left, y1: MARGIN.top, y2: height - MARGIN.bottom }),
    s("text", { x: MARGIN.left + plotWidth / 2, y: height - 4, "text-anchor": "middle", class: "axis-label" }, xLabel),
    s(
      "text",
      { x: 14, y: MARGIN.top + plotHeight / 2, "text-anchor": "middle", class: "axis-label",
        transform: `rotate(-90 14 ${MARGIN.top + plotHeight / 2})` },
      yLabel,
    ),
  );
  svg.append(axes);
  return { svg, x, y, left: MARGIN.left, right: width - MARGIN.right };
}

/**
 * At most about `limit` points of a long series (a job evaluated every step for 100k steps), keeping
 * the lowest and highest value of each stretch, so spikes and the overall shape survive.
 */
function thin(steps, values, limit = MAX_DRAWN_POINTS) {
  if (steps.length <= limit) return { steps, values };
  const stretch = Math.ceil(steps.length / (limit / 2));
  const kept = { steps: [], values: [] };
  for (let start = 0; start < steps.length; start += stretch) {
    let lowest = null;
    let highest = null;
    for (let index = start; index < Math.min(start + stretch, steps.length); index += 1) {
      const value = values[index];
      if (!isFiniteNumber(value)) continue;
      if (lowest === null || value < values[lowest]) lowest = index;
      if (highest === null || value > values[highest]) highest = index;
    }
    if (lowest === null) {
      kept.steps.push(steps[start]); // a stretch of non-finite values still breaks the line
      kept.values.push(null);
      continue;
    }
    for (const index of lowest === highest ? [lowest] : [Math.min(lowest, highest), Math.max(lowest, highest)]) {
      kept.steps.push(steps[index]);
      kept.values.push(values[index]);
    }
  }
  return kept;
}

/** The `d` of a polyline through the finite points; a null value starts a new segment. */
function linePath(steps, values, x, y) {
  const parts = [];
  let penDown = false;
  steps.forEach((step, index) => {
    const value = values[index];
    if (!isFiniteNumber(value)) {
      penDown = false;
      return;
    }
    parts.push(`${penDown ? "L" : "M"}${x(step).toFixed(1)},${y(value).toFixed(1)}`);
    penDown = true;
  });
  return parts.join(" ");
}

function figure(id, title, svg, legendItems, note) {
  const legend = legendItems.length
    ? h(
        "ul",
        { class: "legend" },
        legendItems.map(({ label, color, dashed, band }) => {
          const swatch = h("span", { class: `swatch${dashed ? " dashed" : ""}${band ? " band" : ""}` });
          // Set through the CSSOM: the page's CSP allows no inline style attributes.
          swatch.style.borderColor = color;
          if (band) swatch.style.backgroundColor = color;
          return h("li", {}, swatch, label);
        }),
      )
    : null;
  return h("figure", { class: "chart", id }, title ? h("figcaption", {}, title) : null, svg, legend, note);
}

/**
 * Curves over steps. `series`: [{label, steps, values, color?, dashed?}]; `guides`: horizontal lines
 * [{value, label}] such as the target accuracy; `yDomain` fixes the vertical range (accuracies: [0, 1]);
 * `id` names the <figure>.
 */
export function lineChart({ id = null, title, series, guides = [], xLabel = "step", yLabel = "", yDomain = null }) {
  const steps = series.flatMap((line) => line.steps);
  const values = series.flatMap((line) => line.values);
  const guideValues = guides.map((guide) => guide.value).filter(isFiniteNumber);
  const xDomain = extent(steps, [0, 1]);
  if (xDomain[0] > 0) xDomain[0] = 0; // steps count from the start of training
  const chart = frame({
    xDomain,
    yDomain: yDomain ?? extent([...values, ...guideValues], [0, 1]),
    xLabel,
    yLabel,
  });
  const legendItems = [];
  for (const guide of guides) {
    if (!isFiniteNumber(guide.value)) continue;
    const level = chart.y(guide.value).toFixed(1);
    chart.svg.append(
      s("line", { x1: chart.left, x2: chart.right, y1: level, y2: level, class: "guide", "data-value": guide.value }),
      s("text", { x: chart.right - 4, y: Number(level) - 5, "text-anchor": "end", class: "guide-label" }, guide.label),
    );
  }
  series.forEach((line, index) => {
    const color = line.color ?? PALETTE[index % PALETTE.length];
    const drawn = thin(line.steps, line.values);
    const d = linePath(drawn.steps, drawn.values, chart.x, chart.y);
    const path = s("path", {
      d,
      class: `curve${line.dashed ? " dashed" : ""}`,
      stroke: color,
      "data-label": line.label,
      "data-points": drawn.values.filter(isFiniteNumber).length,
    });
    path.append(s("title", {}, line.label));
    chart.svg.append(path);
    legendItems.push({ label: line.label, color, dashed: line.dashed });
  });
  const empty = !values.some(isFiniteNumber);
  return figure(id, title, chart.svg, legendItems, empty ? h("p", { class: "muted chart-note" }, "No points yet.") : null);
}

/**
 * A band between `lower` and `upper` with `middle` drawn as a line, over `steps` (percentiles 15, 85
 * and the median of a layer's pre-activation in the paper's Fig. 1).
 */
export function bandChart({ id = null, title, steps, lower, middle, upper, color = PALETTE[0], xLabel = "step", yLabel = "" }) {
  const kept = steps
    .map((step, index) => ({ step, lower: lower[index], middle: middle[index], upper: upper[index] }))
    .filter((point) => [point.lower, point.middle, point.upper].every(isFiniteNumber));
  const chart = frame({
    xDomain: extent(kept.map((point) => point.step), [0, 1]),
    yDomain: padded(extent(kept.flatMap((point) => [point.lower, point.upper]), [0, 1]), 0.1),
    xLabel,
    yLabel,
  });
  if (kept.length) {
    const upperEdge = kept.map((point) => `${chart.x(point.step).toFixed(1)},${chart.y(point.upper).toFixed(1)}`);
    const lowerEdge = kept
      .slice()
      .reverse()
      .map((point) => `${chart.x(point.step).toFixed(1)},${chart.y(point.lower).toFixed(1)}`);
    chart.svg.append(
      s("path", { d: `M${upperEdge.join(" L")} L${lowerEdge.join(" L")} Z`, class: "band", fill: color }),
    );
  }
  const median = s("path", {
    d: linePath(kept.map((point) => point.step), kept.map((point) => point.middle), chart.x, chart.y),
    class: "curve",
    stroke: color,
    "data-label": "median",
    "data-points": kept.length,
  });
  chart.svg.append(median);
  const legendItems = [
    { label: "15th–85th percentile", color, band: true },
    { label: "median", color },
  ];
  const note = kept.length ? null : h("p", { class: "muted chart-note" }, "No telemetry yet.");
  return figure(id, title, chart.svg, legendItems, note);
}

/** Runs of consecutive points where both bounds are numbers: one shaded polygon each. */
function bandSegments(steps, low, high) {
  const segments = [];
  let current = [];
  steps.forEach((step, index) => {
    if (isFiniteNumber(low[index]) && isFiniteNumber(high[index])) {
      current.push({ step, low: low[index], high: high[index] });
    } else {
      if (current.length > 1) segments.push(current);
      current = [];
    }
  });
  if (current.length > 1) segments.push(current);
  return segments;
}

/**
 * Curves each drawn as a mean line over a shaded band, its 95% interval (a sweep's grid points over their
 * seeds); where a curve has no bounds (fewer than two seeds at a step) only its line is drawn. With a
 * `yDomain` (an accuracy's [0, 1]) the bands are cut to it: an interval of the mean may reach past what
 * the metric can be.
 */
export function meanBandChart({ id = null, title, curves, xLabel = "step", yLabel = "", yDomain = null }) {
  const clamp = (value) => (yDomain && isFiniteNumber(value) ? Math.min(Math.max(value, yDomain[0]), yDomain[1]) : value);
  curves = curves.map((curve) => ({ ...curve, low: curve.low.map(clamp), high: curve.high.map(clamp) }));
  const steps = curves.flatMap((curve) => curve.steps);
  const values = curves.flatMap((curve) => [...curve.mean, ...curve.low, ...curve.high]);
  const xDomain = extent(steps, [0, 1]);
  if (xDomain[0] > 0) xDomain[0] = 0;
  const chart = frame({ xDomain, yDomain: yDomain ?? extent(values, [0, 1]), xLabel, yLabel });
  const legendItems = [];
  curves.forEach((curve, index) => {
    const color = PALETTE[index % PALETTE.length];
    for (const segment of bandSegments(curve.steps, curve.low, curve.high)) {
      const upper = segment.map((point) => `${chart.x(point.step).toFixed(1)},${chart.y(point.high).toFixed(1)}`);
      const lower = segment.slice().reverse().map((point) => `${chart.x(point.step).toFixed(1)},${chart.y(point.low).toFixed(1)}`);
      chart.svg.append(s("path", { d: `M${upper.join(" L")} L${lower.join(" L")} Z`, class: "band", fill: color, "data-label": curve.label }));
    }
    const line = s("path", {
      d: linePath(curve.steps, curve.mean, chart.x, chart.y),
      class: "curve",
      stroke: color,
      "data-label": curve.label,
      "data-points": curve.mean.filter(isFiniteNumber).length,
    });
    line.append(s("title", {}, curve.label));
    chart.svg.append(line);
    legendItems.push({ label: curve.label, color });
  });
  if (curves.length) legendItems.push({ label: "95% interval of the mean over seeds", color: "#777", band: true });
  const empty = !values.some(isFiniteNumber);
  return figure(id, title, chart.svg, legendItems, empty ? h("p", { class: "muted chart-note" }, "No points yet.") : null);
}
