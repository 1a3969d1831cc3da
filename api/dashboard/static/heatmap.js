// A sweep's heatmap of mean final accuracy over its first two grid axes, drawn as a table so that each
// cell's tooltip can say what the mean is over: n, the 95% interval, how many diverged. Grid points that
// differ only on further axes share a cell (its tooltip lists each).

import { describeStat, formatNumber, h } from "./dom.js";

// viridis at 0, 0.25, 0.5, 0.75 and 1 (the colour map of the server's heatmap picture).
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];

function viridis(fraction) {
  const position = Math.min(Math.max(fraction, 0), 1) * (VIRIDIS.length - 1);
  const index = Math.min(Math.floor(position), VIRIDIS.length - 2);
  const part = position - index;
  const [r, g, b] = VIRIDIS[index].map((channel, which) => Math.round(channel + (VIRIDIS[index + 1][which] - channel) * part));
  return `rgb(${r}, ${g}, ${b})`;
}

/**
 * A grid value as an axis label: a word as itself (normalization `layer`, not `"layer"`), no noise as `off`,
 * noise parameters as `mean_std=0.5, scale_std=1`, anything else as JSON (`true`, `0.1`, `[100,100]`).
 */
export function axisValue(value, axis = "") {
  if (typeof value === "string") return value;
  if (value === null && axis.startsWith("bn_noise")) return "off";
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    return Object.entries(value).map(([key, item]) => `${key}=${axisValue(item)}`).join(", ");
  }
  return JSON.stringify(value);
}

/** A grid point as `axis=value, …` (values as `axisValue` writes them). */
export function pointText(point) {
  return Object.entries(point).map(([axis, value]) => `${axis}=${axisValue(value, axis)}`).join(", ");
}

function distinct(values) {
  const seen = new Map();
  for (const value of values) seen.set(JSON.stringify(value), value);
  const list = [...seen.values()];
  return list.every((value) => typeof value === "number") ? list.sort((a, b) => a - b) : list;
}

export function heatmapGrid(sweep) {
  const [xAxis, yAxis] = Object.keys(sweep.grid);
  if (xAxis === undefined) return h("p", { class: "muted" }, "A sweep without a grid axis has no heatmap.");
  const xValues = distinct(sweep.points.map((point) => point.point[xAxis]));
  const yValues = yAxis === undefined ? [null] : distinct(sweep.points.map((point) => point.point[yAxis]));
  const cell = (xValue, yValue) => {
    const members = sweep.points.filter(
      (point) => JSON.stringify(point.point[xAxis]) === JSON.stringify(xValue) && (yAxis === undefined || JSON.stringify(point.point[yAxis]) === JSON.stringify(yValue)),
    );
    const measured = members.filter((point) => typeof point.final_accuracy.mean === "number");
    const seeds = measured.reduce((total, point) => total + point.final_accuracy.n, 0);
    const mean = seeds ? measured.reduce((total, point) => total + point.final_accuracy.mean * point.final_accuracy.n, 0) / seeds : null;
    const diverged = members.reduce((total, point) => total + point.diverged, 0);
    const tooltip = members
      .map((point) => {
        return `${pointText(point.point)}: final accuracy ${describeStat(point.final_accuracy)}; ${point.diverged} of ${point.job_ids.length} diverged`;
      })
      .join("\n");
    const single = members.length === 1 ? members[0].final_accuracy : null;
    const interval = single && Array.isArray(single.ci95) ? h("span", { class: "interval" }, `[${formatNumber(single.ci95[0], 3)}, ${formatNumber(single.ci95[1], 3)}]`) : null;
    const element = h(
      "td",
      { class: `heatmap-cell${mean === null ? " empty" : ""}${diverged ? " diverged" : ""}`, title: tooltip || "no jobs" },
      h("span", { class: "mean" }, mean === null ? (members.length ? "no result yet" : "no jobs") : formatNumber(mean, 3)),
      interval,
      diverged ? h("span", { class: "diverged-count" }, `✕ ${diverged} diverged`) : null,
    );
    if (mean !== null) {
      element.style.backgroundColor = viridis(mean); // through the CSSOM: the page's CSP allows no style attributes
      element.style.color = mean < 0.6 ? "white" : "black";
    }
    return element;
  };
  return h(
    "table",
    { class: "heatmap-grid" },
    h("thead", {}, h("tr", {}, h("th", {}, yAxis ? `${yAxis} \\ ${xAxis}` : xAxis), xValues.map((value) => h("th", {}, axisValue(value, xAxis))))),
    h("tbody", {}, yValues.map((yValue) => h("tr", {}, h("th", {}, yAxis ? axisValue(yValue, yAxis) : "mean final accuracy"), xValues.map((xValue) => cell(xValue, yValue))))),
  );
}
