"""The report's measures of covariate shift and speed per arm (studies 6-8): for each job, figures read from
its summary and telemetry; per arm, their means with 95% t intervals over seeds; per pair of arms, the
seed-by-seed differences with their intervals and the verdicts the statistics rule allows
(`core.statistics`: a verdict only where the interval excludes no difference); and the pictures of the
service's plot routes for seed 0 of each arm.

A job's figures (`job_measures`):
- steps to target and final validation accuracy, from its summary;
- the Fig. 1 drift of a last-hidden-layer unit's input (the telemetry's fixed unit): the range its median
  covers over training (highest − lowest: how far the distribution the sigmoid sees travels), and from one
  probe to the next the mean |change| of its median and of the log of its 15-85 percentile spread (how
  much it moves and widens or narrows per probe, jitter included);
- Santurkar et al.'s gradient-based ICS: ‖G − G′‖₂ and cos(G, G′) averaged over the probes and over the
  hidden layers after the first (the first has nothing before it: 0 and 1 by definition).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from studies_model import Service, Study, stat_text, value_text

from core.statistics import (
    ACCURACY_DIFFERENCE_RANGE,
    ACCURACY_RANGE,
    NON_NEGATIVE,
    Range,
    describe,
    estimate,
    paired_difference,
    ratio_of_means,
    verdict,
)


@dataclass(frozen=True)
class Measure:
    """One figure of a job: its key in `job_measures`, its column heading and digits, what a larger value
    means (for the verdicts' words), and the ranges it and a difference of two of it can take (intervals
    are cut to them; see `core.statistics`)."""

    key: str
    heading: str
    digits: int
    larger: str
    smaller: str
    within: Range | None = NON_NEGATIVE
    difference_within: Range | None = None


MEASURES = (
    Measure("steps_to_target", "steps to target", 0, "slower to the target", "faster to the target"),
    Measure(
        "final_accuracy",
        "final val acc",
        3,
        "higher final accuracy",
        "lower final accuracy",
        ACCURACY_RANGE,
        ACCURACY_DIFFERENCE_RANGE,
    ),
    Measure("median_range", "unit median's range", 3, "more drift", "less drift"),
    Measure("median_move", "unit median's move per probe", 3, "more movement", "less movement"),
    Measure(
        "spread_change", "spread's log-change per probe", 3, "more change of spread", "less change of spread"
    ),
    Measure("gradient_change", "‖G − G′‖₂", 4, "larger gradient change", "smaller gradient change"),
    Measure(
        "gradient_cosine",
        "cos(G, G′)",
        4,
        "more aligned gradients",
        "less aligned gradients",
        (-1.0, 1.0),
        (-2.0, 2.0),
    ),
)
TELEMETRY_MEASURES = ("median_range", "median_move", "spread_change", "gradient_change", "gradient_cosine")
NORMALIZATION_NAMES = {
    "none": "no normalization",
    "batch": "batch norm",
    "layer": "layer norm",
    "group": "group norm",
}
NORMALIZATION_ORDER = ("none", "batch", "noisy", "layer", "group")


def arm_kind(spec: Mapping[str, Any]) -> str:
    """none, batch, noisy (batch norm with noise), layer or group."""
    kind = spec.get("normalization") or ("batch" if spec.get("batch_norm") else "none")
    return "noisy" if kind == "batch" and spec.get("bn_noise") else str(kind)


def arm_label(spec: Mapping[str, Any]) -> str:
    """`no normalization`, `batch norm`, `noisy BN (m 0.5, s 0.5)`, `layer norm`, `group norm`."""
    kind = arm_kind(spec)
    if kind == "noisy":
        noise = spec["bn_noise"]
        return f"noisy BN (m {noise['mean_std']:g}, s {noise['scale_std']:g})"
    return NORMALIZATION_NAMES.get(kind, kind)


def arm_order(label_and_kind: tuple[str, str]) -> tuple[int, str]:
    label, kind = label_and_kind
    return (NORMALIZATION_ORDER.index(kind) if kind in NORMALIZATION_ORDER else 99, label)


def _mean(values: Sequence[float | None]) -> float | None:
    finite = [value for value in values if value is not None and math.isfinite(value)]
    return math.fsum(finite) / len(finite) if finite else None


def _mean_step(values: Sequence[float | None], transform: Callable[[float], float] = float) -> float | None:
    """The mean |difference| between consecutive finite values (after `transform`)."""
    points = [transform(value) for value in values if value is not None and math.isfinite(value)]
    steps = [abs(after - before) for before, after in itertools.pairwise(points)]
    return math.fsum(steps) / len(steps) if steps else None


def telemetry_measures(layers: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """The drift of the last hidden layer's fixed unit and the gradient-based ICS of the layers after the
    first, from `GET /v1/jobs/{id}/telemetry`'s layers."""
    if not layers:
        return dict.fromkeys(TELEMETRY_MEASURES)
    last = max(layers, key=lambda layer: layer["layer"])
    spreads = [
        None if low is None or high is None or high <= low else high - low
        for low, high in zip(last["unit_p15"], last["unit_p85"], strict=True)
    ]
    deeper = [layer for layer in layers if layer["layer"] > 0] or list(layers)
    medians = [value for value in last["unit_p50"] if value is not None and math.isfinite(value)]
    return {
        "median_range": max(medians) - min(medians) if medians else None,
        "median_move": _mean_step(last["unit_p50"]),
        "spread_change": _mean_step(spreads, math.log),
        "gradient_change": _mean([value for layer in deeper for value in layer["ics_gradient_change"]]),
        "gradient_cosine": _mean([value for layer in deeper for value in layer["ics_gradient_cosine"]]),
    }


def job_measures(job: Mapping[str, Any], layers: Sequence[Mapping[str, Any]]) -> dict[str, float | None]:
    """A job's figures; no final accuracy for a run that stopped at its target (it is the target's)."""
    summary = job.get("summary") or {}
    stopped = job["spec"].get("stop_at_target")
    return {
        "steps_to_target": summary.get("steps_to_target"),
        "final_accuracy": None if stopped else summary.get("final_val_accuracy"),
        **telemetry_measures(layers),
    }


@dataclass(frozen=True)
class Arm:
    """The jobs of one arm (at one value of the `by` axis): each seed's measures."""

    label: str
    kind: str
    by_seed: dict[int, dict[str, float | None]]


def group_arms(rows: Sequence[tuple[Mapping[str, Any], dict[str, float | None]]]) -> list[Arm]:
    """(spec, measures) rows as arms in the pictures' order: none, batch, noisy BN, layer, group."""
    arms: dict[tuple[str, str], dict[int, dict[str, float | None]]] = {}
    for spec, measures in rows:
        arms.setdefault((arm_label(spec), arm_kind(spec)), {})[int(spec["seed"])] = measures
    return [Arm(label, kind, arms[(label, kind)]) for label, kind in sorted(arms, key=arm_order)]


def shown_measures(arms: Sequence[Arm]) -> list[Measure]:
    """The measures some job has a value of (telemetry columns only where telemetry was recorded)."""
    return [
        measure
        for measure in MEASURES
        if any(values.get(measure.key) is not None for arm in arms for values in arm.by_seed.values())
    ]


def arms_table(arms: Sequence[Arm]) -> list[str]:
    """A row per arm: seeds, how many reached the target, each measure's mean [95% interval]."""
    measures = shown_measures(arms)
    lines = [
        "| arm | seeds | reached | " + " | ".join(measure.heading for measure in measures) + " |",
        "|---|---|---|" + "---|" * len(measures),
    ]
    for arm in arms:
        reached = sum(values.get("steps_to_target") is not None for values in arm.by_seed.values())
        cells = [
            stat_text(
                vars_of(
                    describe((values.get(measure.key) for values in arm.by_seed.values()), measure.within)
                ),
                measure.digits,
            )
            for measure in measures
        ]
        lines.append(
            f"| {arm.label} | {len(arm.by_seed)} | {reached}/{len(arm.by_seed)} | " + " | ".join(cells) + " |"
        )
    return lines


def vars_of(stat: Any) -> dict[str, Any]:
    """A `core.statistics` Stat as the report's stat dict (mean and ci95)."""
    return {"mean": stat.mean, "ci95": list(stat.ci95) if stat.ci95 else None}


def difference_text(measure: Measure, arm: Arm, baseline: Arm) -> tuple[str, str]:
    """The arm's seed-by-seed difference from the baseline in `measure` (mean [interval], over the seeds
    both have it) and the verdict the interval allows, in words."""
    difference = paired_difference(
        {seed: values.get(measure.key) for seed, values in arm.by_seed.items()},
        {seed: values.get(measure.key) for seed, values in baseline.by_seed.items()},
        measure.difference_within,
    )
    if difference.n == 0:
        return "—", f"{measure.heading}: no seed has it in both arms"
    cell = stat_text(vars_of(difference), measure.digits)
    rule = verdict(difference.ci95, difference.n, arm.label, baseline.label)
    if rule.startswith("no detectable"):
        return cell, f"{measure.heading}: {rule}"
    larger = rule.startswith(f"{arm.label} >")
    words = measure.larger if larger else measure.smaller
    return cell, f"{measure.heading}: {words} with {arm.label} ({cell}, n = {difference.n})"


def speedup_text(arm: Arm, baseline: Arm) -> tuple[str, str | None]:
    """The baseline's mean steps to target ÷ the arm's over the seeds both reached it, with its bootstrap
    interval, and the verdict (on the interval less 1); `—` and None below two such seeds."""
    pairs = [
        (float(first), float(second))
        for seed in sorted(arm.by_seed.keys() & baseline.by_seed.keys())
        if (first := baseline.by_seed[seed].get("steps_to_target")) is not None
        and (second := arm.by_seed[seed].get("steps_to_target")) is not None
    ]
    if len(pairs) < 2:
        return "—", None
    speedup = estimate(pairs, ratio_of_means, "ratio of mean steps to target")
    interval = speedup.ci95
    digits = 1 if speedup.value is not None and speedup.value >= 1 else 2  # 0.06×, not 0.1×
    cell = stat_text({"mean": speedup.value, "ci95": interval}, digits) + "×"
    shifted = None if interval is None else (interval[0] - 1.0, interval[1] - 1.0)
    rule = verdict(shifted, speedup.n, arm.label, baseline.label)
    if rule.startswith("no detectable"):
        return cell, f"speedup: {rule}"
    words = "fewer" if rule.startswith(f"{arm.label} >") else "more"
    return cell, f"speedup: {words} steps to the target with {arm.label} ({cell}, n = {speedup.n})"


def differences_table(arms: Sequence[Arm], baselines: Sequence[str]) -> list[str]:
    """For each baseline kind, every other arm's paired differences from it (and its speedup in steps to
    target), then the verdicts."""
    measures = shown_measures(arms)
    timed = any(measure.key == "steps_to_target" for measure in measures)
    lines = []
    for baseline_kind in baselines:
        baseline = next((arm for arm in arms if arm.kind == baseline_kind), None)
        earlier = baselines[: baselines.index(baseline_kind)]  # those pairs are in an earlier table
        others = [
            arm for arm in arms if baseline is not None and arm is not baseline and arm.kind not in earlier
        ]
        if baseline is None or not others:
            continue
        verdicts = []
        lines += [
            f"Each arm minus **{baseline.label}**, seed by seed (mean [95% t interval] of the differences)"
            + (
                "; the speedup is the baseline's mean steps to target ÷ the arm's over the seeds both "
                "reached it, with its 95% bootstrap interval:"
                if timed
                else ":"
            ),
            "",
            "| arm − baseline | "
            + "".join(["speedup | "] if timed else [])
            + " | ".join(measure.heading for measure in measures)
            + " |",
            "|---|" + "---|" * (len(measures) + timed),
        ]
        for arm in others:
            cells = []
            if timed:
                cell, words = speedup_text(arm, baseline)
                cells.append(cell)
                if words:
                    verdicts.append(f"- {arm.label} vs {baseline.label}, {words}.")
            for measure in measures:
                cell, words = difference_text(measure, arm, baseline)
                cells.append(cell)
                verdicts.append(f"- {arm.label} vs {baseline.label}, {words}.")
            lines.append(f"| {arm.label} | " + " | ".join(cells) + " |")
        lines += ["", *verdicts, ""]
    return lines


def arms_by_group(service: Service, study: Study, jobs: Sequence[dict[str, Any]]) -> dict[Any, list[Arm]]:
    """The study's jobs as arms, per value of the `by` axis (one group when there is none)."""
    by = study.about["measures"].get("by")
    rows: dict[Any, list[tuple[Mapping[str, Any], dict[str, float | None]]]] = {}
    for job in jobs:
        layers = (
            service.get(f"/v1/jobs/{job['id']}/telemetry")["layers"]
            if job["spec"].get("telemetry_every")
            else []
        )
        rows.setdefault(job["spec"].get(by) if by else None, []).append(
            (job["spec"], job_measures(job, layers))
        )
    return {value: group_arms(group) for value, group in sorted(rows.items(), key=lambda item: str(item[0]))}


def measures_section(service: Service, study: Study, jobs: Sequence[dict[str, Any]]) -> list[str]:
    """Per arm (and per value of `by`), the measures with intervals, then paired differences and verdicts."""
    settings = study.about["measures"]
    baselines = settings.get("baselines", [settings.get("baseline", "none")])
    lines = [
        "Per arm, over seeds: steps to target, final accuracy and, where telemetry was recorded, the drift "
        "of the last hidden layer's unit 0 (the range its median covers over training, and the mean "
        "|change| between consecutive probes of its median and of the log of its 15-85 percentile spread) "
        "and Santurkar et al.'s ‖G − G′‖₂ and cos(G, G′) (averaged over probes and over the hidden layers "
        "after the first):",
        "",
    ]
    by = settings.get("by")
    for value, arms in arms_by_group(service, study, jobs).items():
        if by:
            lines += [f"At `{by}={value_text(value)}`:", ""]
        lines += [*arms_table(arms), "", *differences_table(arms, baselines)]
    return lines


PICTURES = (  # `about.figures` key, plot route, figure file, what the report says it shows
    (
        "ics",
        "ics",
        "fig1",
        "The paper's Fig. 1(b,c): the 15th, 50th and 85th percentiles of unit 0's input to its sigmoid in "
        "the last hidden layer over training",
    ),
    (
        "gradient_ics",
        "ics-gradient",
        "ics-gradient",
        "Santurkar et al.'s gradient-based ICS per layer over training: ‖G − G′‖₂ (above) and cos(G, G′) "
        "(below)",
    ),
)


def figures_section(service: Service, study: Study, jobs: Sequence[dict[str, Any]]) -> list[str]:
    """Seed 0 of each arm side by side, from the service's plot routes: learning curves, the Fig. 1 bands
    and the gradient-based ICS, as `about.figures` asks (per value of its `by` axis)."""
    settings = study.about["figures"]
    by = settings.get("by")
    groups: dict[Any, list[dict[str, Any]]] = {}
    for job in jobs:
        if job["spec"]["seed"] == min(each["spec"]["seed"] for each in jobs):
            groups.setdefault(job["spec"].get(by) if by else None, []).append(job)
    lines = []
    for value, shown in sorted(groups.items(), key=lambda item: str(item[0])):
        shown.sort(key=lambda job: arm_order((arm_label(job["spec"]), arm_kind(job["spec"]))))
        ids = [job["id"] for job in shown]
        suffix = f"-{by}-{value_text(value)}" if by else ""
        where = f" at `{by}={value_text(value)}`" if by else ""
        names = ", ".join(arm_label(job["spec"]) for job in shown)
        seed = shown[0]["spec"]["seed"]
        if settings.get("curves"):
            figure = service.figure(
                "/v1/compare/plot",
                f"{study.slug}-validation{suffix}.png",
                ids=ids,
                metric="val_accuracy",
                max_points=500,
            )
            lines += [
                f"Validation accuracy{where}, seed {seed} ({names}):",
                "",
                f"![learning curves]({figure})",
                "",
            ]
        for key, route, name, what in PICTURES:
            if settings.get(key):
                figure = service.figure(
                    f"/v1/jobs/{ids[0]}/plots/{route}",
                    f"{study.slug}-{name}{suffix}.png",
                    compare_with=ids[1:],
                )
                lines += [f"{what}{where}, seed {seed}, one panel per arm:", "", f"![{name}]({figure})", ""]
    return lines
