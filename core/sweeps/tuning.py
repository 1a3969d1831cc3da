"""Tuned baselines: two or more arms (the values of one axis, e.g. `batch_norm` true/false) each at the best
setting of the tuned axes (e.g. `learning_rate`), compared best against best over matched seeds.

The criterion, stated with every answer: among an arm's settings on which every seed reached the target,
the fewest mean steps to target; where no setting got every seed there, the best mean final accuracy. Steps
to target are then compared as a speedup (the baseline arm's mean steps ÷ this arm's, a ratio of means with
a percentile-bootstrap interval over paired seeds), final accuracies as a paired difference over seeds with
its Student t interval. A baseline seed that never reached the target counts with the steps it ran, so the
speedup is a lower bound and says so. Verdicts follow `core.statistics.verdict`. Torch-free.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple

from core.compare import flatten_spec
from core.statistics import (
    ACCURACY_DIFFERENCE_RANGE,
    ACCURACY_RANGE,
    NON_NEGATIVE,
    Estimate,
    PairedDifference,
    Stat,
    describe,
    estimate,
    paired_difference,
    ratio_of_means,
    verdict,
)
from core.sweeps.aggregation import TERMINAL_STATUSES, JobOutcome
from core.sweeps.expansion import value_at

CRITERION = (
    "fewest mean steps to target among the settings on which every seed reached it; "
    "where no setting did, best mean final accuracy"
)
ChosenBy = Literal["steps_to_target", "final_accuracy"]
UNPAIRED_FIELDS = frozenset({"seed", "name"})  # replicates differ in these and nothing else
BOOTSTRAP_SEED = 0  # a fixed seed: the same sweep always shows the same interval


class TuningError(ValueError):
    """The arms or tuned axes asked for do not fit the jobs; `field` names the query parameter."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Speedup:
    """The baseline arm's mean steps to target ÷ this arm's, over the seeds both ran, with its bootstrap
    interval; `is_lower_bound` where a baseline seed never reached the target (its steps run were used)."""

    estimate: Estimate
    is_lower_bound: bool
    verdict: str


@dataclass(frozen=True)
class Difference:
    """This arm's final accuracy minus the baseline arm's, seed by seed, and what may be said of it."""

    difference: PairedDifference
    verdict: str


@dataclass(frozen=True)
class TunedArm:
    """One arm at its best setting: which setting was chosen and by what, and how it did there."""

    value: Any
    chosen: dict[str, Any]
    chosen_by: ChosenBy
    settings_tried: int
    job_ids: list[str]
    seeds: list[int]
    reached_target: int
    final_accuracy: Stat
    steps_to_target: Stat
    speedup_vs_baseline: Speedup | None
    final_accuracy_vs_baseline: Difference | None


@dataclass(frozen=True)
class TunedComparison:
    arm: str
    tune: list[str]
    baseline: Any
    criterion: str
    provisional: bool  # some job has not finished: the choice may still change
    arms: list[TunedArm]


class _Choice(NamedTuple):
    """An arm's chosen setting: its jobs (one per seed), what decided, and how many settings there were."""

    chosen_by: ChosenBy
    jobs: list[JobOutcome]
    settings_tried: int


def _key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def tuned_comparison(
    outcomes: Sequence[JobOutcome], arm: str, tune: Sequence[str], baseline: Any = None
) -> TunedComparison:
    """Each value of `arm` among the jobs at its best setting of the `tune` axes, compared with the
    `baseline` arm's best (default: the arm value of the first job). The jobs of one setting are its seeds.
    Raises TuningError for an arm with fewer than two values or a baseline no job has."""
    if arm in tune:
        raise TuningError("tune", f"{arm} is the arm: it cannot also be tuned")
    by_arm: dict[str, list[JobOutcome]] = {}
    for outcome in outcomes:
        by_arm.setdefault(_key(value_at(outcome.spec, arm)), []).append(outcome)
    if len(by_arm) < 2:
        raise TuningError("arm", f"the jobs take {len(by_arm)} value(s) of {arm}; arms need two or more")
    for key, members in by_arm.items():
        _check_only_seeds_and_tuned_axes_differ(members, f"{arm}={key}", tune)
    baseline_key = next(iter(by_arm)) if baseline is None else _key(baseline)
    if baseline_key not in by_arm:
        known = ", ".join(by_arm)
        raise TuningError("baseline", f"no job has {arm} = {baseline_key} (the arms are {known})")
    best = {key: _best_setting(members, tune) for key, members in by_arm.items()}
    reference = best[baseline_key].jobs
    arms = []
    for key, choice in best.items():
        setting = choice.jobs
        is_baseline = key == baseline_key
        label, baseline_label = f"{arm}={key}", f"{arm}={baseline_key}"
        arms.append(
            TunedArm(
                value=value_at(setting[0].spec, arm),
                chosen={axis: value_at(setting[0].spec, axis) for axis in tune},
                chosen_by=choice.chosen_by,
                settings_tried=choice.settings_tried,
                job_ids=[member.job_id for member in setting],
                seeds=[_seed(member) for member in setting],
                reached_target=sum(member.steps_to_target is not None for member in setting),
                final_accuracy=describe(
                    (member.counted_final_accuracy for member in setting), ACCURACY_RANGE
                ),
                steps_to_target=describe((member.steps_to_target for member in setting), NON_NEGATIVE),
                speedup_vs_baseline=None
                if is_baseline
                else _speedup(setting, reference, label, baseline_label),
                final_accuracy_vs_baseline=None
                if is_baseline
                else _difference(setting, reference, label, baseline_label),
            )
        )
    provisional = any(outcome.status not in TERMINAL_STATUSES for outcome in outcomes)
    return TunedComparison(arm, list(tune), value_at(reference[0].spec, arm), CRITERION, provisional, arms)


def _check_only_seeds_and_tuned_axes_differ(
    members: Sequence[JobOutcome], label: str, tune: Sequence[str]
) -> None:
    """Within an arm the jobs may differ only in seed (the replicates) and the tuned axes: anything else
    would make one "setting" of runs that are not replicates of each other. Between arms anything may
    differ (a baseline given a longer step budget, say)."""
    first, *others = [flatten_spec(member.spec) for member in members]
    for other in others:
        for field in sorted(first.keys() | other.keys()):
            if field in UNPAIRED_FIELDS or any(
                field == axis or field.startswith(axis + ".") for axis in tune
            ):
                continue
            if first.get(field) != other.get(field):
                raise TuningError(
                    "tune", f"within {label} the jobs also differ in {field}: tune it too, or leave some out"
                )


def _seed(outcome: JobOutcome) -> int:
    return int(outcome.spec.get("seed", 0))


def _best_setting(members: Sequence[JobOutcome], tune: Sequence[str]) -> _Choice:
    """The arm's setting by the criterion (a tie goes to the setting met first, in grid order)."""
    settings: dict[tuple[str, ...], list[JobOutcome]] = {}
    for member in members:
        settings.setdefault(tuple(_key(value_at(member.spec, axis)) for axis in tune), []).append(member)
    candidates = list(settings.values())
    reaching = [
        setting for setting in candidates if all(member.steps_to_target is not None for member in setting)
    ]
    if reaching:
        chosen = min(reaching, key=lambda setting: describe(m.steps_to_target for m in setting).mean or 0.0)
        return _Choice("steps_to_target", chosen, len(candidates))
    chosen = max(
        candidates,
        key=lambda setting: _or_lowest(describe(member.counted_final_accuracy for member in setting).mean),
    )
    return _Choice("final_accuracy", chosen, len(candidates))


def _or_lowest(value: float | None) -> float:
    return float("-inf") if value is None else value


def _speedup(
    setting: Sequence[JobOutcome], baseline: Sequence[JobOutcome], label: str, baseline_label: str
) -> Speedup | None:
    """Paired over the seeds both ran; None unless every seed of this arm reached the target."""
    mine = {_seed(member): member for member in setting}
    theirs = {_seed(member): member for member in baseline}
    seeds = sorted(mine.keys() & theirs.keys())
    if not seeds or any(mine[seed].steps_to_target is None for seed in seeds):
        return None
    pairs = []
    lower_bound = False
    for seed in seeds:
        reference = theirs[seed]
        if reference.steps_to_target is None:
            lower_bound = True
            reference_steps = reference.steps_run or 0  # a baseline still running bounds by what it ran
        else:
            reference_steps = reference.steps_to_target
        # A target met at step 0 counts as one step, so the ratio stays finite (as in core.compare).
        pairs.append((float(max(reference_steps, 1)), float(max(mine[seed].steps_to_target or 1, 1))))
    ratio = estimate(pairs, ratio_of_means, "ratio of mean steps to target", seed=BOOTSTRAP_SEED)
    return Speedup(ratio, lower_bound, _speedup_verdict(ratio, lower_bound, label, baseline_label))


def _speedup_verdict(ratio: Estimate, lower_bound: bool, label: str, baseline_label: str) -> str:
    """The verdict rule on a ratio: its interval must exclude 1. Where the baseline's steps are a lower
    bound the true ratio is larger, so only "this arm is faster" can be concluded."""
    faster = "reaches the target in fewer steps than"
    if ratio.ci95 is not None and ratio.ci95[0] > 1.0:
        return f"{label} {faster} {baseline_label}"
    if ratio.ci95 is not None and ratio.ci95[1] < 1.0 and not lower_bound:
        return f"{baseline_label} {faster} {label}"
    return verdict(None, ratio.n)


def _difference(
    setting: Sequence[JobOutcome], baseline: Sequence[JobOutcome], label: str, baseline_label: str
) -> Difference:
    difference = paired_difference(
        {_seed(member): member.counted_final_accuracy for member in setting},
        {_seed(member): member.counted_final_accuracy for member in baseline},
        ACCURACY_DIFFERENCE_RANGE,
    )
    return Difference(difference, verdict(difference.ci95, difference.n, label, baseline_label))
