"""Run the loss-landscape study (`examples/landscape_study.yaml`) through bnlab's HTTP API and write
`LANDSCAPE_REPORT.md` with its tables and Fig. 4-style figures into `--output-dir` (by default a new folder
under `var/reports/`; `--output-dir examples` regenerates the tracked `examples/LANDSCAPE_REPORT.md`). While
the sweep trains it prints a line whenever it moves on; a service that is not there is one line.

Santurkar et al. (2018) claim that batch normalization makes the loss landscape smoother. The study trains
every setting with and without BN on the same seeds; each BN job is compared with the no-BN job of the same
activation, learning rate and seed through `GET /v1/compare` (its landscape ratios), every job's probes are
read from `GET /v1/jobs/{id}/landscape`, and one figure per setting comes from
`GET /v1/jobs/{id}/plots/landscape`.

    make run                                                           # one terminal: the service
    .venv/bin/python examples/landscape_study.py --url http://127.0.0.1:8000   # another: the study
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console

from core.statistics import describe, verdict

EXAMPLES_DIR = Path(__file__).resolve().parent
STUDY_PATH = EXAMPLES_DIR / "landscape_study.yaml"
FIGURES = "figures"  # next to the report
REPORT = "LANDSCAPE_REPORT.md"
EXIT_SERVICE_ERROR = 1
TERMINAL_STATUSES = ("succeeded", "failed", "diverged", "cancelled")
POLL_SECONDS = 2.0
QUANTITIES = {
    "loss_range": "loss range",
    "gradient_predictiveness": "gradient predictiveness",
    "beta_smoothness": "β-smoothness",
    "relative_gradient_change": "‖Δg‖/‖g‖",
}
EARLY_STEPS = 500  # "early in training": where a no-BN sigmoid net is still on its plateau

console = Console(stderr=True, soft_wrap=True)  # a line stays one line in a log


@dataclass(frozen=True)
class Setting:
    activation: str
    learning_rate: float

    @property
    def slug(self) -> str:
        return f"{self.activation}-lr{self.learning_rate:g}"


@dataclass
class Job:
    """One finished job of the study and its probes (step → probe as the API serves it)."""

    id: str
    status: str
    spec: dict[str, Any]
    summary: dict[str, Any]
    probes: dict[int, dict[str, Any]]

    @property
    def setting(self) -> Setting:
        return Setting(self.spec["architecture"]["activation"], float(self.spec["learning_rate"]))


@dataclass
class Pair:
    """The no-BN and BN jobs of one setting and seed, and the BN job's landscape ratios against no BN."""

    seed: int
    plain: Job
    normalized: Job
    ratios: dict[str, dict[str, Any]]


def get(client: httpx.Client, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    response.raise_for_status()
    return response.json()


def run_sweep(client: httpx.Client, sweep: dict[str, Any], timeout_seconds: float) -> list[str]:
    """Submit the sweep, wait until every job has finished; its job ids."""
    response = client.post("/v1/sweeps", json=sweep)
    if response.status_code != 201:
        raise SystemExit(f"the service refused the sweep ({response.status_code}): {response.text}")
    created = response.json()
    console.print(f"submitted sweep {created['id']}: {created['size']} jobs")
    deadline = time.monotonic() + timeout_seconds
    printed = ""
    with console.status("training") as status:
        while True:
            view = get(client, f"/v1/sweeps/{created['id']}")
            counts = view["status_counts"]
            done = sum(counts.get(name, 0) for name in TERMINAL_STATUSES)
            line = progress_line(created["size"], done, view.get("progress"))
            status.update(line)
            if line != printed:  # a line when it moves on, readable in a log too (the spinner is not)
                console.print(line, highlight=False)
                printed = line
            if done >= created["size"]:
                return list(created["job_ids"])
            if time.monotonic() > deadline:
                raise SystemExit(f"gave up after {timeout_seconds:.0f} s with {done}/{created['size']} done")
            time.sleep(POLL_SECONDS)


def progress_line(size: int, done: int, progress: dict[str, Any] | None) -> str:
    """`12/36 jobs done, 41% of the steps, about 12 s left` (from the sweep's `progress`)."""
    line = f"{done}/{size} jobs done"
    if progress and progress.get("steps_total"):
        line += f", {100 * progress['steps_done'] // progress['steps_total']}% of the steps"
        if progress.get("eta_seconds") and done < size:
            line += f", about {progress['eta_seconds']:.0f} s left"
    return line


def unreachable(url: str, error: httpx.TransportError) -> str:
    reason = " ".join(str(error).split()) or type(error).__name__
    return (
        f"error: cannot reach the bnlab service at {url} ({reason}); start it with `make run`, or pass --url"
    )


def default_output_dir() -> Path:
    """A new folder per run under var/reports/ (relative to where the script runs)."""
    return Path("var") / "reports" / f"landscape-{time.strftime('%Y%m%d-%H%M%S')}"


def load_job(client: httpx.Client, job_id: str) -> Job:
    job = get(client, f"/v1/jobs/{job_id}")
    probes = get(client, f"/v1/jobs/{job_id}/landscape")["probes"]
    return Job(job_id, job["status"], job["spec"], job["summary"] or {}, {p["step"]: p for p in probes})


def pair_up(client: httpx.Client, jobs: list[Job]) -> dict[Setting, list[Pair]]:
    """BN and no-BN jobs of the same setting and seed, with the compare route's landscape ratios."""
    by_key = {(job.setting, job.spec["seed"], job.spec["batch_norm"]): job for job in jobs}
    pairs: dict[Setting, list[Pair]] = defaultdict(list)
    for (setting, seed, batch_norm), plain in sorted(by_key.items(), key=lambda item: _sort_key(item[0])):
        if batch_norm:
            continue
        normalized = by_key[(setting, seed, True)]
        comparison = get(client, "/v1/compare", ids=[plain.id, normalized.id], baseline=plain.id)
        row = next(row for row in comparison["jobs"] if row["id"] == normalized.id)
        pairs[setting].append(Pair(seed, plain, normalized, row["landscape"] or {}))
    return pairs


def _sort_key(key: tuple[Setting, int, bool]) -> tuple[int, float, int, bool]:
    setting, seed, batch_norm = key
    return (0 if setting.activation == "sigmoid" else 1, setting.learning_rate, seed, batch_norm)


# --- figures of a setting ------------------------------------------------------------------------------


def median_of(jobs: Sequence[Job], quantity: str) -> float | None:
    """The median of one quantity over every probe of the jobs, missing (non-finite) values left out."""
    values = [probe[quantity] for job in jobs for probe in job.probes.values() if probe[quantity] is not None]
    return statistics.median(values) if values else None


@dataclass(frozen=True)
class SeedRatio:
    """BN ÷ no BN over the seeds of a setting: the geometric mean of the per-seed ratios, the 95% interval
    of that geometric mean (a Student t interval of the mean log ratio, exponentiated; None below two
    seeds), and the range over seeds of the share of probe steps where BN was lower."""

    geometric: float | None
    ci95: tuple[float, float] | None
    seeds: int
    lowest_fraction: float | None
    highest_fraction: float | None

    @classmethod
    def of(cls, per_seed_ratios: Sequence[float], fractions: Sequence[float]) -> SeedRatio:
        logs = describe(math.log(ratio) for ratio in per_seed_ratios if ratio > 0)
        interval = None if logs.ci95 is None else (math.exp(logs.ci95[0]), math.exp(logs.ci95[1]))
        geometric = None if logs.mean is None else math.exp(logs.mean)
        return cls(geometric, interval, logs.n, min(fractions, default=None), max(fractions, default=None))

    def verdict(self) -> str:
        """The verdict rule on a ratio: BN smoother (or rougher) only where the interval excludes 1."""
        if self.ci95 is not None and self.ci95[1] < 1:
            return "BN smoother"
        if self.ci95 is not None and self.ci95[0] > 1:
            return "BN rougher"
        return verdict(None, self.seeds)


def ratio_over_seeds(pairs: Sequence[Pair], quantity: str) -> SeedRatio:
    """Over the seeds, each seed's geometric-mean ratio as the compare route gives it."""
    present = [pair.ratios[quantity] for pair in pairs if pair.ratios.get(quantity)]
    ratios = [ratio["geometric_mean_ratio"] for ratio in present if ratio["geometric_mean_ratio"] is not None]
    fractions = [ratio["smoother_fraction"] for ratio in present if ratio["smoother_fraction"] is not None]
    return SeedRatio.of(ratios, fractions)


def relative_range(probe: dict[str, Any]) -> float | None:
    """The loss band's width relative to its floor: loss range ÷ the lowest loss along the gradient."""
    losses = probe["losses"]
    if probe["loss_range"] is None or any(loss is None for loss in losses) or min(losses) <= 0:
        return None
    return float(probe["loss_range"] / min(losses))


def relative_range_over_seeds(pairs: Sequence[Pair]) -> SeedRatio:
    """Like `ratio_over_seeds`, for `relative_range`, computed here from both jobs' probes."""
    per_seed_ratios, fractions = [], []
    for pair in pairs:
        logs = []
        for step, probe in pair.normalized.probes.items():
            mine = relative_range(probe)
            theirs = relative_range(pair.plain.probes[step]) if step in pair.plain.probes else None
            if mine and theirs:
                logs.append(math.log(mine / theirs))
        if logs:
            per_seed_ratios.append(math.exp(statistics.fmean(logs)))
            fractions.append(sum(log < 0 for log in logs) / len(logs))
    return SeedRatio.of(per_seed_ratios, fractions)


def early_ratio(pairs: Sequence[Pair], quantity: str) -> float | None:
    """BN / no BN over the probe steps up to EARLY_STEPS, geometric mean over steps and seeds."""
    logs = [
        math.log(normalized / plain)
        for pair in pairs
        for step, probe in pair.normalized.probes.items()
        if step <= EARLY_STEPS and step in pair.plain.probes
        if (normalized := probe[quantity]) and (plain := pair.plain.probes[step][quantity])
    ]
    return math.exp(statistics.fmean(logs)) if logs else None


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


# --- the report ----------------------------------------------------------------------------------------


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


def figures(client: httpx.Client, pairs: dict[Setting, list[Pair]], output_dir: Path) -> list[str]:
    """One Fig. 4-style picture per setting (seed 0): no BN and BN in the same panels."""
    figures_dir = output_dir / FIGURES
    figures_dir.mkdir(parents=True, exist_ok=True)
    lines = []
    for setting, setting_pairs in pairs.items():
        pair = setting_pairs[0]
        response = client.get(
            f"/v1/jobs/{pair.normalized.id}/plots/landscape",
            params={"compare_with": pair.plain.id, "format": "png"},
        )
        response.raise_for_status()
        name = f"landscape-{setting.slug}.png"
        (figures_dir / name).write_bytes(response.content)
        lines += [f"**{setting.activation}, lr {setting.learning_rate:g}** (seed {pair.seed})", ""]
        lines += [f"![landscape, {setting.activation}, lr {setting.learning_rate:g}]({FIGURES}/{name})", ""]
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
        *figures(client, pairs, output_dir),
    ]
    report = output_dir / REPORT
    report.write_text("\n".join(lines))
    console.print(f"wrote {report}")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the bnlab API")
    parser.add_argument("--api-key", default=None, help="sent as a bearer token when the API requires one")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for the sweep")
    parser.add_argument("--study", type=Path, default=STUDY_PATH, help="the study file")
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help=f"where {REPORT} and figures/ are written (default: a new folder under var/reports/; "
        "`examples` regenerates the tracked report)",
    )
    arguments = parser.parse_args(argv)

    study = yaml.safe_load(arguments.study.read_text())
    headers = {"Authorization": f"Bearer {arguments.api_key}"} if arguments.api_key else {}
    output_dir = arguments.output_dir or default_output_dir()
    started = time.monotonic()
    try:
        with httpx.Client(base_url=arguments.url, headers=headers, timeout=60.0) as client:
            job_ids = run_sweep(client, study["sweep"], arguments.timeout)
            seconds = time.monotonic() - started
            jobs = [load_job(client, job_id) for job_id in job_ids]
            output_dir.mkdir(parents=True, exist_ok=True)
            write_report(client, study, pair_up(client, jobs), seconds, output_dir)
    except httpx.TransportError as error:
        console.print(unreachable(arguments.url, error), highlight=False)
        return EXIT_SERVICE_ERROR
    except httpx.HTTPStatusError as error:
        console.print(
            f"error: {error.request.method} {error.request.url.path} answered "
            f"{error.response.status_code}: {error.response.text[:200]}",
            highlight=False,
        )
        return EXIT_SERVICE_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
