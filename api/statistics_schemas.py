"""Response shapes of the statistics every aggregate carries (`core.statistics`): a mean with its 95%
Student t interval, a bootstrap estimate (a ratio, a median), a paired difference over matched seeds, a
verdict that is given only where the interval excludes no difference, and arms compared at their tuned
best (`core.sweeps.tuning`).
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import FiniteFloat

CiMethod = Literal["t", "bootstrap"]
Interval = tuple[float, float]


class StatOut(BaseModel):
    """A mean over the `n` seeds that have the figure (a diverged run's missing accuracy is left out, not
    averaged as a zero), its sample standard deviation and the mean's 95% confidence interval."""

    model_config = ConfigDict(from_attributes=True)

    n: int = Field(description="seeds with a finite value")
    mean: FiniteFloat = Field(description="null when n = 0")
    std: FiniteFloat = Field(description="sample standard deviation (n - 1); null when n < 2")
    ci95: Interval | None = Field(
        description="95% confidence interval of the mean, [low, high], cut to the range the figure can "
        "take (an accuracy [0, 1], steps to target at least 0, a difference of accuracies [-1, 1]); "
        "null when n < 2"
    )
    ci_method: CiMethod = Field(description="t: mean ± t(0.975, n - 1) · std / √n (Student t)")


class EstimateOut(BaseModel):
    """A figure that is not a mean (`statistic` says which) with its 95% percentile-bootstrap interval
    over seeds (resampled with replacement, seeded: the same data give the same interval)."""

    model_config = ConfigDict(from_attributes=True)

    n: int = Field(description="seeds (pairs of seeds for a ratio) it is computed over")
    value: FiniteFloat = Field(description="the statistic on the seeds themselves")
    ci95: Interval | None = Field(description="95% bootstrap interval, [low, high]; null when n < 2")
    statistic: str = Field(description="what `value` is, e.g. `ratio of mean steps to target`")
    ci_method: CiMethod = Field(description="bootstrap: the 2.5th and 97.5th percentile of the replicates")


class PairedStatOut(StatOut):
    """One arm minus the other, seed by seed over the seeds both have a value for, with the mean
    difference's 95% t interval."""

    seeds: list[int] = Field(description="the matched seeds the differences are taken over")


class SpeedupOut(BaseModel):
    """The baseline arm's mean steps to target ÷ this arm's, paired over seeds, with a bootstrap interval."""

    model_config = ConfigDict(from_attributes=True)

    estimate: EstimateOut
    is_lower_bound: bool = Field(
        description="a baseline seed never reached the target: its steps run were used, the true speedup "
        "is larger"
    )
    verdict: str = Field(
        description="`<arm> reaches the target in fewer steps than <baseline>` (or the reverse) only where "
        "the interval excludes 1; otherwise `no detectable difference at n = …`"
    )


class DifferenceOut(BaseModel):
    """This arm's final accuracy minus the baseline arm's, seed by seed."""

    model_config = ConfigDict(from_attributes=True)

    difference: PairedStatOut
    verdict: str = Field(
        description="`<arm> > <baseline>` or the reverse only where the interval excludes 0; otherwise "
        "`no detectable difference at n = …`"
    )


class TunedArmOut(BaseModel):
    """One arm at the best setting of the tuned axes, the choice shown."""

    model_config = ConfigDict(from_attributes=True)

    value: Any = Field(description="the arm axis' value")
    chosen: dict[str, Any] = Field(description="tuned axis → the value chosen for this arm")
    chosen_by: Literal["steps_to_target", "final_accuracy"] = Field(
        description="which part of the criterion decided"
    )
    settings_tried: int = Field(description="settings of the tuned axes this arm was run at")
    job_ids: list[str] = Field(description="the chosen setting's jobs, one per seed")
    seeds: list[int]
    reached_target: int = Field(description="seeds that reached the target at the chosen setting")
    final_accuracy: StatOut
    steps_to_target: StatOut
    speedup_vs_baseline: SpeedupOut | None = Field(
        description="null for the baseline arm, and where a seed of this arm never reached the target"
    )
    final_accuracy_vs_baseline: DifferenceOut | None = Field(description="null for the baseline arm")


class TunedOut(BaseModel):
    """Arms compared best against best: each at its own best setting of the tuned axes."""

    model_config = ConfigDict(from_attributes=True)

    arm: str = Field(description="the axis whose values are the arms")
    tune: list[str] = Field(description="the axes each arm is tuned over")
    baseline: Any = Field(description="the arm value speedups and differences are taken against")
    criterion: str = Field(description="how each arm's setting is chosen")
    provisional: bool = Field(description="some job has not finished: the choice may still change")
    arms: list[TunedArmOut]


class SeedBandOut(BaseModel):
    """One grid point's curves over its seeds: per step the mean over the seeds that have a value there
    and the mean's 95% Student t interval (null below two seeds), cut to the range the metric can take
    (accuracies [0, 1], losses at least 0)."""

    model_config = ConfigDict(from_attributes=True)

    point: dict[str, Any]
    job_ids: list[str]
    steps: list[int]
    n: list[int] = Field(description="seeds with a finite value at each step")
    mean: list[FiniteFloat]
    ci95_low: list[FiniteFloat]
    ci95_high: list[FiniteFloat]


class SweepCurvesOut(BaseModel):
    metric: str
    points: list[SeedBandOut] = Field(description="one per grid point, in grid order")
