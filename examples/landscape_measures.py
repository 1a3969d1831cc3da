"""The loss-landscape study's jobs and what is computed from them: a job with its probes (`Job`), the no-BN
and BN jobs of one setting and seed with the compare route's landscape ratios (`Pair`), and, over the
seeds of a setting, BN ÷ no BN as a geometric mean with its 95% interval (`SeedRatio`), the loss range
relative to the lowest loss, the ratios early in training and the median levels.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from sweep_client import get_json

from core.statistics import describe, verdict

QUANTITIES = {
    "loss_range": "loss range",
    "gradient_predictiveness": "gradient predictiveness",
    "beta_smoothness": "β-smoothness",
    "relative_gradient_change": "‖Δg‖/‖g‖",
}
EARLY_STEPS = 500  # "early in training": where a no-BN sigmoid net is still on its plateau


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


def load_job(client: httpx.Client, job_id: str) -> Job:
    job = get_json(client, f"/v1/jobs/{job_id}")
    probes = get_json(client, f"/v1/jobs/{job_id}/landscape")["probes"]
    return Job(job_id, job["status"], job["spec"], job["summary"] or {}, {p["step"]: p for p in probes})


def pair_up(client: httpx.Client, jobs: list[Job]) -> dict[Setting, list[Pair]]:
    """BN and no-BN jobs of the same setting and seed, with the compare route's landscape ratios."""
    by_key = {(job.setting, job.spec["seed"], job.spec["batch_norm"]): job for job in jobs}
    pairs: dict[Setting, list[Pair]] = defaultdict(list)
    for (setting, seed, batch_norm), plain in sorted(by_key.items(), key=lambda item: _sort_key(item[0])):
        if batch_norm:
            continue
        normalized = by_key[(setting, seed, True)]
        comparison = get_json(client, "/v1/compare", ids=[plain.id, normalized.id], baseline=plain.id)
        row = next(row for row in comparison["jobs"] if row["id"] == normalized.id)
        pairs[setting].append(Pair(seed, plain, normalized, row["landscape"] or {}))
    return pairs


def _sort_key(key: tuple[Setting, int, bool]) -> tuple[int, float, int, bool]:
    setting, seed, batch_norm = key
    return (0 if setting.activation == "sigmoid" else 1, setting.learning_rate, seed, batch_norm)


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
