"""Statistics that say what they are: means with Student t intervals, percentile-bootstrap intervals for
ratios and medians, paired differences over matched seeds, and the verdict rule. Torch-free (numpy only).

Every aggregate over seeds is a `Stat` — `{"n", "mean", "std", "ci95": [low, high], "ci_method"}`:
- `n` counts the values that are finite numbers (a diverged run's missing accuracy is left out, not zero);
- `std` is the sample standard deviation (n - 1 in the denominator), None below two values;
- `ci95` is the 95% confidence interval of the mean, `mean ± t(0.975, n - 1) · std / √n` (Student t,
  `ci_method: "t"`), None below two values: one seed says nothing about the spread. It is cut to the
  range the quantity can take where the caller names one (`within`: an accuracy's mean lies in [0, 1], a
  count's or a loss's at or above 0, a difference of accuracies in [-1, 1]). Two seeds' t interval is
  wide (t = 12.7) and would otherwise claim accuracies above 1; the true mean always lies in that range,
  so the cut interval covers it whenever the whole one did, and a difference's verdict (does the
  interval exclude 0?) is unchanged.

A figure that is not a mean (a ratio of means, a median) is an `Estimate` with a percentile-bootstrap
interval (`ci_method: "bootstrap"`): resampling the seeds with replacement, seeded, so the same data and
seed always give the same interval; none below five seeds.

A verdict is given only where a difference's interval excludes zero; otherwise it reads "no detectable
difference at n = …".
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from core.results import finite_or_none

CiMethod = Literal["t", "bootstrap"]
Interval = tuple[float, float]
Range = tuple[float, float]  # the values a quantity can take, ends included (±inf where open)
ACCURACY_RANGE: Range = (0.0, 1.0)
NON_NEGATIVE: Range = (0.0, math.inf)  # steps, seconds, losses
ACCURACY_DIFFERENCE_RANGE: Range = (-1.0, 1.0)
CONFIDENCE = 0.95
DEFAULT_RESAMPLES = 4000  # the 2.5th/97.5th percentiles of 4,000 replicates move by well under 1%
# Fewer seeds have too few distinct resamples (3 seeds: 10) for percentiles to mean anything.
MIN_BOOTSTRAP_SAMPLES = 5
# Reduces each row of a (resamples, n[, 2]) array of resampled seeds to one number per row.
BatchStatistic = Callable[[npt.NDArray[np.float64]], npt.NDArray[np.float64]]


@dataclass(frozen=True)
class Stat:
    """A mean over `n` values with its sample standard deviation and 95% t interval."""

    n: int
    mean: float | None
    std: float | None
    ci95: Interval | None
    ci_method: CiMethod = "t"


@dataclass(frozen=True)
class Estimate:
    """A statistic that is not a mean (`statistic` says which) over `n` seeds, with a bootstrap interval."""

    n: int
    value: float | None
    ci95: Interval | None
    statistic: str
    ci_method: CiMethod = "bootstrap"


@dataclass(frozen=True)
class PairedDifference(Stat):
    """First minus second, seed by seed, over the `seeds` both have a value for: the mean difference and
    its t interval (pairing removes what the seed does to both arms alike)."""

    seeds: tuple[int, ...] = ()


# --- Student t ---------------------------------------------------------------------------------------


def _log_beta(a: float, b: float) -> float:
    return math.lgamma(a) + math.lgamma(b) - math.lgamma(a + b)


def _beta_continued_fraction(a: float, b: float, x: float) -> float:
    """Lentz's evaluation of the continued fraction of the incomplete beta function (converges fast for
    x < (a + 1) / (a + b + 2); the caller uses the symmetry I_x(a, b) = 1 - I_{1-x}(b, a) otherwise)."""
    tiny = 1e-300
    c, d = 1.0, 1.0 - (a + b) * x / (a + 1.0)
    d = 1.0 / (d if abs(d) > tiny else tiny)
    result = d
    for m in range(1, 500):
        for numerator in (
            m * (b - m) * x / ((a + 2 * m - 1) * (a + 2 * m)),
            -(a + m) * (a + b + m) * x / ((a + 2 * m) * (a + 2 * m + 1)),
        ):
            d = 1.0 + numerator * d
            d = 1.0 / (d if abs(d) > tiny else tiny)
            c = 1.0 + numerator / c
            c = c if abs(c) > tiny else tiny
            result *= c * d
        if abs(c * d - 1.0) < 1e-15:
            break
    return result


def regularized_incomplete_beta(a: float, b: float, x: float) -> float:
    """I_x(a, b), the CDF of a Beta(a, b) variable at x (0 ≤ x ≤ 1)."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    front = math.exp(a * math.log(x) + b * math.log1p(-x) - _log_beta(a, b))
    if x < (a + 1.0) / (a + b + 2.0):
        return front * _beta_continued_fraction(a, b, x) / a
    return 1.0 - front * _beta_continued_fraction(b, a, 1.0 - x) / b


def t_cdf(t: float, df: int) -> float:
    """P(T ≤ t) for Student's t with `df` degrees of freedom."""
    tail = 0.5 * regularized_incomplete_beta(df / 2.0, 0.5, df / (df + t * t))
    return 1.0 - tail if t >= 0 else tail


@functools.lru_cache(maxsize=1024)  # a sweep's curves ask for the same few (0.975, df) at every step
def t_quantile(probability: float, df: int) -> float:
    """The t value below which `probability` of Student's t with `df` degrees of freedom lies (the inverse
    of `t_cdf`, by bisection to 1e-12: exact to the precision any table prints)."""
    if not 0.0 < probability < 1.0:
        raise ValueError(f"a quantile needs 0 < probability < 1, not {probability}")
    if df < 1:
        raise ValueError(f"Student's t needs at least one degree of freedom, not {df}")
    if probability < 0.5:
        return -t_quantile(1.0 - probability, df)
    low, high = 0.0, 1.0
    while t_cdf(high, df) < probability:  # df = 1 puts the 99.95th percentile past 600
        low, high = high, high * 2.0
    while high - low > 1e-12 * max(1.0, high):
        middle = (low + high) / 2.0
        if t_cdf(middle, df) < probability:
            low = middle
        else:
            high = middle
    return (low + high) / 2.0


# --- aggregates --------------------------------------------------------------------------------------


def finite_values(values: Iterable[float | int | None]) -> list[float]:
    """The values that are finite numbers, in order (None, NaN and ±inf are no number)."""
    return [number for value in values if (number := finite_or_none(value)) is not None]


def metric_range(metric: str) -> Range:
    """The values a recorded metric can take: accuracies lie in [0, 1], losses at or above 0."""
    return NON_NEGATIVE if metric.endswith("loss") else ACCURACY_RANGE


def within_range(interval: Interval, within: Range | None) -> Interval:
    """`interval` cut to `within` (unchanged without one)."""
    if within is None:
        return interval
    return max(interval[0], within[0]), min(interval[1], within[1])


def describe(values: Iterable[float | int | None], within: Range | None = None) -> Stat:
    """n, mean, sample standard deviation and the mean's 95% Student t interval of the finite values, cut
    to `within`, the range the quantity can take (see the module's docstring)."""
    numbers = finite_values(values)
    n = len(numbers)
    if n == 0:
        return Stat(0, None, None, None)
    mean = math.fsum(numbers) / n
    if n == 1:
        return Stat(1, mean, None, None)
    std = math.sqrt(math.fsum((number - mean) ** 2 for number in numbers) / (n - 1))
    half_width = t_quantile(0.5 + CONFIDENCE / 2, n - 1) * std / math.sqrt(n)
    return Stat(n, mean, std, within_range((mean - half_width, mean + half_width), within))


def bootstrap_interval(
    samples: Sequence[float] | Sequence[tuple[float, float]],
    statistic: BatchStatistic,
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
) -> Interval | None:
    """The 95% percentile-bootstrap interval of `statistic` over `samples` (values, or pairs resampled
    together: a seed's two arms stay matched).

    `statistic` reduces each row of an array of shape (resamples, n) — (resamples, n, 2) for pairs — to
    one number (`np.median(rows, axis=1)`, `ratio_of_means`), so all replicates are computed at once.
    Seeded: the same samples, statistic and seed give the same interval. None below
    `MIN_BOOTSTRAP_SAMPLES`: two or three seeds have too few distinct resamples for their percentiles to
    be an interval. Replicates that are not finite are dropped.
    """
    data = np.asarray(samples, dtype=np.float64)
    if len(data) < MIN_BOOTSTRAP_SAMPLES:
        return None
    generator = np.random.default_rng(seed)
    indices = generator.integers(0, len(data), size=(resamples, len(data)))
    with np.errstate(divide="ignore", invalid="ignore"):
        replicates = np.asarray(statistic(data[indices]), dtype=np.float64)
    replicates = replicates[np.isfinite(replicates)]
    if len(replicates) == 0:
        return None
    tail = (1.0 - CONFIDENCE) / 2 * 100
    low, high = np.percentile(replicates, [tail, 100.0 - tail])
    return float(low), float(high)


def median(rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Each row's median (a `BatchStatistic`)."""
    return np.asarray(np.median(rows, axis=1), dtype=np.float64)


def ratio_of_means(rows: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """Per row of (first, second) pairs, mean of the first ÷ mean of the second (a `BatchStatistic`)."""
    return np.asarray(rows[..., 0].mean(axis=1) / rows[..., 1].mean(axis=1), dtype=np.float64)


def estimate(
    samples: Sequence[float] | Sequence[tuple[float, float]],
    statistic: BatchStatistic,
    name: str,
    seed: int = 0,
    resamples: int = DEFAULT_RESAMPLES,
) -> Estimate:
    """`statistic` of the samples themselves, with its bootstrap interval (see `bootstrap_interval`)."""
    if len(samples) == 0:
        return Estimate(0, None, None, name)
    data = np.asarray(samples, dtype=np.float64)
    value = finite_or_none(float(statistic(data[np.newaxis])[0]))
    return Estimate(len(samples), value, bootstrap_interval(samples, statistic, seed, resamples), name)


# --- two arms ----------------------------------------------------------------------------------------


def paired_difference(
    first_by_seed: Mapping[int, float | int | None],
    second_by_seed: Mapping[int, float | int | None],
    within: Range | None = None,
) -> PairedDifference:
    """First minus second over the seeds where both have a finite value: mean, sample std and t interval
    of the per-seed differences, cut to `within` (the range a difference can take)."""
    seeds = []
    differences = []
    for seed in sorted(first_by_seed.keys() & second_by_seed.keys()):
        first, second = finite_or_none(first_by_seed[seed]), finite_or_none(second_by_seed[seed])
        if first is not None and second is not None:
            seeds.append(seed)
            differences.append(first - second)
    stat = describe(differences, within)
    return PairedDifference(stat.n, stat.mean, stat.std, stat.ci95, stat.ci_method, tuple(seeds))


def verdict(interval: Interval | None, n: int, first: str = "A", second: str = "B") -> str:
    """What an interval of first − second allows one to say: "A > B" when it lies above zero, "B > A"
    below, else "no detectable difference at n = …" (also when there is no interval: fewer than two
    values). For a ratio, pass its interval less 1 (a speedup is a difference from 1)."""
    if interval is not None and interval[0] > 0:
        return f"{first} > {second}"
    if interval is not None and interval[1] < 0:
        return f"{second} > {first}"
    return f"no detectable difference at n = {n}"
