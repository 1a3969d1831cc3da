"""Response shapes of the statistics every aggregate carries (`core.statistics`): a mean with its 95%
Student t interval, a bootstrap estimate (a ratio, a median), a paired difference over matched seeds, and
a verdict that is given only where the interval excludes no difference.
"""

from __future__ import annotations

from typing import Literal

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
        description="95% confidence interval of the mean, [low, high]; null when n < 2"
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


class PairedDifferenceOut(StatOut):
    """One arm minus the other, seed by seed over the seeds both have a value for, with the mean
    difference's 95% t interval, and what may be concluded from it."""

    seeds: list[int] = Field(description="the matched seeds the differences are taken over")
    verdict: str = Field(
        description="`A > B` or `B > A` (arm labels) only where the interval excludes 0; otherwise "
        "`no detectable difference at n = …`"
    )
