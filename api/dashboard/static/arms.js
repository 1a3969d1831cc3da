// Arms compared at their tuned best (a sweep's `tuned`, a comparison's `arms`): each arm's chosen setting,
// its figures as mean [95% interval], the speedup against the baseline arm (≥ where a lower bound) and the
// final-accuracy difference, then the verdicts the intervals allow and the criterion that chose.

import { describeStat, formatNumber, formatStat, h } from "./dom.js";
import { axisValue, pointText } from "./heatmap.js";

function formatInterval(estimate, suffix = "") {
  const middle = estimate?.value ?? estimate?.mean;
  if (typeof middle !== "number") return "—";
  const bounds = Array.isArray(estimate.ci95) ? ` [${formatNumber(estimate.ci95[0], 3)}, ${formatNumber(estimate.ci95[1], 3)}]` : "";
  return `${formatNumber(middle, 3)}${suffix}${bounds}`;
}

function chosenText(arm) {
  const chosen = pointText(arm.chosen);
  const by = arm.chosen_by === "steps_to_target" ? "fewest steps" : "best final";
  return `${chosen || "the only setting"} (by ${by}, of ${arm.settings_tried})`;
}

export function armsTable(tuned, id = "arms") {
  const verdicts = [];
  const rows = tuned.arms.map((arm) => {
    const label = `${tuned.arm}=${axisValue(arm.value, tuned.arm)}`;
    const speedup = arm.speedup_vs_baseline;
    const difference = arm.final_accuracy_vs_baseline;
    if (speedup) verdicts.push(`${label}, steps to target: ${speedup.verdict}`);
    if (difference) verdicts.push(`${label}, final: ${difference.verdict}`);
    const isBaseline = JSON.stringify(arm.value) === JSON.stringify(tuned.baseline);
    return h(
      "tr",
      { "data-arm": JSON.stringify(arm.value) },
      h("td", {}, label, isBaseline ? " (baseline)" : ""),
      h("td", {}, chosenText(arm)),
      h("td", { class: "number" }, arm.seeds.length),
      h("td", { class: "number", title: describeStat(arm.final_accuracy) }, formatStat(arm.final_accuracy)),
      h("td", { class: "number", title: describeStat(arm.steps_to_target) }, formatStat(arm.steps_to_target, 1)),
      h(
        "td",
        { class: "number speedup", title: speedup?.is_lower_bound ? "a baseline seed never reached the target: its steps run were used, the true speedup is larger" : "ratio of mean steps to target, 95% percentile-bootstrap interval over paired seeds" },
        speedup ? `${speedup.is_lower_bound ? "≥ " : ""}${formatInterval(speedup.estimate, "×")}` : "—",
      ),
      h("td", { class: "number", title: difference ? describeStat(difference.difference) : "" }, difference ? formatInterval(difference.difference) : "—"),
    );
  });
  const headers = [[tuned.arm, ""], ["Chosen", ""], ["Seeds", "number"], ["Final", "number"], ["Steps to target", "number"], ["Speedup", "number"], ["Final − baseline", "number"]];
  return h(
    "div",
    { id },
    h(
      "table",
      { class: "arms" },
      h("thead", {}, h("tr", {}, headers.map(([title, kind]) => h("th", { class: kind }, title)))),
      h("tbody", {}, rows),
    ),
    h("ul", { class: "verdicts" }, verdicts.map((line) => h("li", {}, line))),
    h("p", { class: "muted" }, `Each arm's setting: ${tuned.criterion}. Intervals are 95%: Student t for means and differences, percentile bootstrap for the speedup.${tuned.provisional ? " Provisional: some jobs have not finished." : ""}`),
  );
}
