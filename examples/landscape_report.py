"""The Markdown of the loss-landscape study (`LANDSCAPE_REPORT.md`): how the runs went, BN against no BN
seed by seed with intervals and the verdicts they allow, the ratios early in training, the median levels,
and one Fig. 4-style figure per setting fetched from the plot route into figures/ beside the report
(`studies_model.Service`, as the studies report fetches its own).
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
from landscape_measures import (
    EARLY_STEPS,
    QUANTITIES,
    Job,
    Pair,
    SeedRatio,
    Setting,
    early_ratio,
    median_of,
    ratio_over_seeds,
    relative_range_over_seeds,
)
from studies_model import Service
from sweep_client import console

REPORT = "LANDSCAPE_REPORT.md"


def number(value: float | None, digits: int = 3) -> str:
    if value is None:
        return "—"
    if value != 0 and (abs(value) >= 1e4 or abs(value) < 1e-3):
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


def accuracy_text(jobs: Sequence[Job]) -> str:
    finals = [job.summary.get("final_val_accuracy") for job in jobs]
    finite = [value for value in finals if value is not None]
    diverged = sum(job.status == "diverged" for job in jobs)
    text = f"{statistics.fmean(finite):.3f}" if finite else "—"
    return f"{text} ({diverged} diverged)" if diverged else text


def training_table(pairs: dict[Setting, list[Pair]]) -> list[str]:
    lines = [
        "| activation | lr | final val acc, no BN | final val acc, BN | probes a job (no BN / BN) |",
        "|---|---|---|---|---|",
    ]
    for setting, setting_pairs in pairs.items():
        plain = [pair.plain for pair in setting_pairs]
        normalized = [pair.normalized for pair in setting_pairs]
        probe_counts = (
            f"{statistics.fmean(len(job.probes) for job in plain):.0f} / "
            f"{statistics.fmean(len(job.probes) for job in normalized):.0f}"
        )
        lines.append(
            f"| {setting.activation} | {setting.learning_rate:g} | {accuracy_text(plain)} | "
            f"{accuracy_text(normalized)} | {probe_counts} |"
        )
    return lines


def ratio_cell(ratio: SeedRatio) -> str:
    """`**0.62** [0.41, 0.95] (40%–80%)`: bold only where the interval lies below 1 (BN smoother)."""
    fractions = (
        "—" if ratio.lowest_fraction is None else f"{ratio.lowest_fraction:.0%}–{ratio.highest_fraction:.0%}"
    )
    interval = "" if ratio.ci95 is None else f" [{number(ratio.ci95[0])}, {number(ratio.ci95[1])}]"
    marker = "**" if ratio.ci95 is not None and ratio.ci95[1] < 1 else ""
    return f"{marker}{number(ratio.geometric)}{marker}{interval} ({fractions})"


def ratio_table(pairs: dict[Setting, list[Pair]]) -> list[str]:
    header = " | ".join([*QUANTITIES.values(), "loss range ÷ lowest loss"])
    lines = [f"| activation | lr | {header} |", "|---|---|" + "---|" * (len(QUANTITIES) + 1)]
    for setting, setting_pairs in pairs.items():
        cells = [ratio_cell(ratio_over_seeds(setting_pairs, quantity)) for quantity in QUANTITIES]
        cells.append(ratio_cell(relative_range_over_seeds(setting_pairs)))
        lines.append(f"| {setting.activation} | {setting.learning_rate:g} | " + " | ".join(cells) + " |")
    return lines


def early_table(pairs: dict[Setting, list[Pair]]) -> list[str]:
    header = " | ".join(QUANTITIES.values())
    lines = [f"| activation | lr | {header} |", "|---|---|" + "---|" * len(QUANTITIES)]
    for setting, setting_pairs in pairs.items():
        cells = []
        for quantity in QUANTITIES:
            cells.append(number(early_ratio(setting_pairs, quantity)))
        lines.append(f"| {setting.activation} | {setting.learning_rate:g} | " + " | ".join(cells) + " |")
    return lines


def level_table(pairs: dict[Setting, list[Pair]]) -> list[str]:
    columns = [*QUANTITIES, "grad_norm"]
    header = " | ".join(f"{QUANTITIES.get(name, '‖g‖')}" for name in columns)
    lines = [f"| activation | lr | BN | {header} |", "|---|---|---|" + "---|" * len(columns)]
    for setting, setting_pairs in pairs.items():
        for batch_norm in (False, True):
            jobs = [pair.normalized if batch_norm else pair.plain for pair in setting_pairs]
            cells = [number(median_of(jobs, name)) for name in columns]
            lines.append(
                f"| {setting.activation} | {setting.learning_rate:g} | {'on' if batch_norm else 'off'} | "
                + " | ".join(cells)
                + " |"
            )
    return lines


def verdicts(pairs: dict[Setting, list[Pair]]) -> list[str]:
    """Per activation and quantity, at how many learning rates BN is smoother (the interval of the ratio
    over seeds lies below 1), rougher (above 1), or neither (no detectable difference)."""
    lines = []
    for activation in dict.fromkeys(setting.activation for setting in pairs):
        settings = [setting for setting in pairs if setting.activation == activation]
        for quantity, label in QUANTITIES.items():
            ratios = [ratio_over_seeds(pairs[setting], quantity) for setting in settings]
            said = [ratio.verdict() for ratio in ratios]
            smoother, rougher = said.count("BN smoother"), said.count("BN rougher")
            listed = "; ".join(
                f"lr {setting.learning_rate:g}: {ratio_cell(ratio).replace('**', '')}, {text}"
                for ratio, setting, text in zip(ratios, settings, said, strict=True)
            )
            claim = (
                "holds"
                if smoother == len(settings)
                else "fails"
                if rougher == len(settings)
                else "is not settled at these seeds"
            )
            lines.append(
                f"- {activation}, {label}: BN smoother at {smoother} and rougher at {rougher} of "
                f"{len(settings)} learning rates ({listed}): the claim {claim}"
            )
    return lines


def tally(pairs: dict[Setting, list[Pair]]) -> list[str]:
    """How many (setting, seed) pairs have BN smoother on the whole, per quantity."""
    lines = []
    for quantity, label in QUANTITIES.items():
        ratios = [
            pair.ratios[quantity]["geometric_mean_ratio"]
            for setting_pairs in pairs.values()
            for pair in setting_pairs
            if pair.ratios.get(quantity) and pair.ratios[quantity]["geometric_mean_ratio"] is not None
        ]
        smoother = sum(ratio < 1 for ratio in ratios)
        lines.append(f"- {label}: BN smoother in {smoother} of {len(ratios)} (setting, seed) pairs")
    return lines


def figures(service: Service, pairs: dict[Setting, list[Pair]]) -> list[str]:
    """One Fig. 4-style picture per setting (seed 0): no BN and BN in the same panels."""
    lines = []
    for setting, setting_pairs in pairs.items():
        pair = setting_pairs[0]
        path = service.figure(
            f"/v1/jobs/{pair.normalized.id}/plots/landscape",
            f"landscape-{setting.slug}.png",
            compare_with=pair.plain.id,
        )
        lines += [f"**{setting.activation}, lr {setting.learning_rate:g}** (seed {pair.seed})", ""]
        lines += [f"![landscape, {setting.activation}, lr {setting.learning_rate:g}]({path})", ""]
    return lines


def write_report(
    client: httpx.Client,
    study: dict[str, Any],
    pairs: dict[Setting, list[Pair]],
    seconds: float,
    output_dir: Path,
) -> Path:
    base = study["sweep"]["base"]
    job_count = 2 * sum(len(setting_pairs) for setting_pairs in pairs.values())
    lines = [
        f"# {study['about']['title']}",
        "",
        "Generated by `examples/landscape_study.py` through bnlab's API "
        f"({job_count} jobs in {seconds:.0f} s); every figure below was measured by that run.",
        "",
        f"**Claim under test.** {study['about']['claim'].strip()}",
        "",
        f"**Setup.** `landscape_study.yaml`: {base['dataset']}, 3 × 100 MLP, SGD, batch "
        f"{base['batch_size']}, {base['steps']} steps; sigmoid and ReLU, learning rates 0.1, 0.5 and 1.0, "
        f"BN off and on, seeds {study['sweep']['seeds']}. Every {base['landscape_every']} steps the "
        "training core probes along the gradient g on a fixed batch (the first 60 training examples, BN in "
        "training mode) at step sizes "
        "η ∈ {0.5, 1, 2, 4} × lr. Lower is smoother for every quantity.",
        "",
        "## How the runs went",
        "",
        *training_table(pairs),
        "",
        "## BN against no BN, seed by seed",
        "",
        "Each cell: the geometric mean over the seeds of the compare route's `geometric_mean_ratio` "
        "(BN ÷ no BN over the probe steps both runs have; below 1: BN smoother), its 95% confidence "
        "interval in square brackets (a Student t interval of the mean log ratio over seeds, "
        "exponentiated), in bold only where that interval lies below 1, and in round brackets the range "
        "over seeds of `smoother_fraction` (the share of probe steps where BN's value is lower). "
        "The last column is computed here from both jobs' probes, not by the service: the loss range "
        "divided by the lowest loss along the gradient, because a run whose loss is 100 times lower has a "
        "band about 100 times narrower on the same landscape shape.",
        "",
        *ratio_table(pairs),
        "",
        *tally(pairs),
        "",
        "By activation (BN ÷ no BN over the whole run, geometric mean over seeds; a verdict only where the "
        "interval excludes 1):",
        "",
        *verdicts(pairs),
        "",
        f"## Early in training (probe steps ≤ {EARLY_STEPS})",
        "",
        "BN ÷ no BN, geometric mean over the probe steps up to "
        f"{EARLY_STEPS} and the seeds (the steps where a no-BN sigmoid net is still on its plateau). "
        "Descriptive only, with no interval: the probe steps of one run are not independent samples.",
        "",
        *early_table(pairs),
        "",
        "## Levels",
        "",
        "Median over all probes of all the seeds:",
        "",
        *level_table(pairs),
        "",
        "## Figures (Santurkar et al. Fig. 4 style)",
        "",
        "(a) the band of losses over the four step sizes at each probe step, (b) gradient predictiveness, "
        "(c) effective β-smoothness; no BN in red, BN in blue; logarithmic axes.",
        "",
        *figures(Service(client, output_dir), pairs),
    ]
    report = output_dir / REPORT
    report.write_text("\n".join(lines))
    console.print(f"wrote {report}")
    return report
