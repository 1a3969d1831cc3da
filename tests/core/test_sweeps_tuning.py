"""Tuned baselines: each arm at its best setting by the stated criterion, the choice shown, the speedup
best against best with a bootstrap interval (a lower bound where the baseline never got there), and a
verdict withheld where the interval covers no difference."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from core.spec import JobSpec
from core.sweeps import CRITERION, JobOutcome, TuningError, tuned_comparison
from tests.core.test_sweeps import BASE

SEEDS = (0, 1, 2, 3, 4)


def job(
    batch_norm: bool,
    learning_rate: float,
    seed: int,
    steps: int | None,
    final: float,
    steps_run: int = 2000,
    **spec: Any,
) -> JobOutcome:
    validated = JobSpec.model_validate(
        {
            **BASE,
            "batch_norm": batch_norm,
            "learning_rate": learning_rate,
            "seed": seed,
            "steps": 2000,
            **spec,
        }
    )
    return JobOutcome(
        f"{batch_norm}-{learning_rate}-{seed}",
        "succeeded",
        validated.model_dump(mode="json"),
        final_accuracy=final,
        best_accuracy=final,
        steps_to_target=steps,
        steps_run=steps_run if steps is None else steps,
    )


# BN reaches 90% fastest at lr 1.0; without BN lr 0.1 never gets there, lr 0.5 and 1.0 do (1.0 sooner).
STUDY = [
    *(job(True, 0.1, seed, 70 + 10 * seed, 0.97) for seed in SEEDS),
    *(job(True, 1.0, seed, 50 + (seed % 2) * 10, 0.975) for seed in SEEDS),
    *(job(False, 0.1, seed, None, 0.6 + 0.01 * seed) for seed in SEEDS),
    *(job(False, 0.5, seed, 1030 + 20 * seed, 0.95) for seed in SEEDS),
    *(job(False, 1.0, seed, 830 + 40 * seed, 0.955 + 0.001 * seed) for seed in SEEDS),
]


def test_each_arm_is_taken_at_its_fewest_mean_steps_to_target_and_shows_its_choice() -> None:
    tuned = tuned_comparison(STUDY, "batch_norm", ["learning_rate"], baseline=False)
    assert tuned.criterion == CRITERION and tuned.baseline is False and not tuned.provisional
    bn, plain = sorted(tuned.arms, key=lambda arm: not arm.value)
    assert bn.chosen == {"learning_rate": 1.0} and bn.chosen_by == "steps_to_target"
    assert plain.chosen == {"learning_rate": 1.0} and plain.chosen_by == "steps_to_target"
    assert bn.settings_tried == 2 and plain.settings_tried == 3
    assert bn.seeds == [0, 1, 2, 3, 4] and bn.reached_target == 5
    assert bn.steps_to_target.mean == pytest.approx(270 / 5)


def test_the_speedup_is_best_against_best_with_a_bootstrap_interval_and_a_verdict() -> None:
    tuned = tuned_comparison(STUDY, "batch_norm", ["learning_rate"], baseline=False)
    bn = next(arm for arm in tuned.arms if arm.value is True)
    plain = next(arm for arm in tuned.arms if arm.value is False)
    assert plain.speedup_vs_baseline is None and plain.final_accuracy_vs_baseline is None  # the baseline
    speedup = bn.speedup_vs_baseline
    assert speedup is not None and not speedup.is_lower_bound
    assert speedup.estimate.value == pytest.approx((830 + 870 + 910 + 950 + 990) / (50 + 60 + 50 + 60 + 50))
    assert speedup.estimate.ci_method == "bootstrap" and speedup.estimate.n == 5
    low, high = speedup.estimate.ci95 or (0, 0)
    assert 1 < low <= speedup.estimate.value <= high
    assert speedup.verdict == "batch_norm=true reaches the target in fewer steps than batch_norm=false"
    again = tuned_comparison(STUDY, "batch_norm", ["learning_rate"], baseline=False)
    assert next(arm for arm in again.arms if arm.value is True).speedup_vs_baseline == speedup


def test_untuned_the_baseline_never_gets_there_and_the_speedup_is_a_marked_lower_bound() -> None:
    at_lr_01 = [outcome for outcome in STUDY if outcome.spec["learning_rate"] == 0.1]
    tuned = tuned_comparison(at_lr_01, "batch_norm", [], baseline=False)
    plain = next(arm for arm in tuned.arms if arm.value is False)
    assert plain.chosen_by == "final_accuracy" and plain.chosen == {}  # nothing to choose from
    bn = next(arm for arm in tuned.arms if arm.value is True)
    assert bn.speedup_vs_baseline is not None and bn.speedup_vs_baseline.is_lower_bound
    assert bn.speedup_vs_baseline.estimate.value == pytest.approx(10000 / 450)  # 2,000 steps each


def test_where_no_setting_reaches_the_target_the_best_mean_final_accuracy_is_chosen() -> None:
    outcomes = [
        *(job(False, 0.1, seed, None, 0.60) for seed in SEEDS),
        *(job(False, 0.5, seed, None, 0.85) for seed in SEEDS),
        job(False, 1.0, 0, 900, 0.91),  # one seed got there, the others not: not "every seed"
        *(job(False, 1.0, seed, None, 0.5) for seed in (1, 2)),
        *(job(True, 0.1, seed, 70, 0.97) for seed in SEEDS),
    ]
    tuned = tuned_comparison(outcomes, "batch_norm", ["learning_rate"], baseline=False)
    plain = next(arm for arm in tuned.arms if arm.value is False)
    assert plain.chosen == {"learning_rate": 0.5} and plain.chosen_by == "final_accuracy"


def test_a_setting_whose_runs_diverged_is_not_chosen_for_the_accuracy_it_had_before() -> None:
    outcomes = [
        *(job(False, 0.1, seed, None, 0.60) for seed in SEEDS),
        *(dataclasses.replace(job(False, 1.0, seed, None, 0.85), status="diverged") for seed in SEEDS),
        *(job(True, 0.1, seed, 70, 0.97) for seed in SEEDS),
    ]
    tuned = tuned_comparison(outcomes, "batch_norm", ["learning_rate"], baseline=False)
    plain = next(arm for arm in tuned.arms if arm.value is False)
    assert plain.chosen == {"learning_rate": 0.1} and plain.chosen_by == "final_accuracy"
    assert plain.final_accuracy.mean == pytest.approx(0.60)


def test_with_fewer_than_five_seeds_the_speedup_has_no_interval_and_no_verdict() -> None:
    three_seeds = [outcome for outcome in STUDY if outcome.spec["seed"] < 3]
    tuned = tuned_comparison(three_seeds, "batch_norm", ["learning_rate"], baseline=False)
    speedup = next(arm for arm in tuned.arms if arm.value is True).speedup_vs_baseline
    assert speedup is not None and speedup.estimate.ci95 is None
    assert speedup.estimate.value == pytest.approx((830 + 870 + 910) / (50 + 60 + 50))
    assert speedup.verdict == "no detectable difference at n = 3"


def test_a_verdict_is_withheld_when_the_accuracy_difference_covers_zero() -> None:
    outcomes = [
        job(True, 0.1, 0, 70, 0.962),
        job(True, 0.1, 1, 80, 0.950),
        job(False, 0.1, 0, 900, 0.946),
        job(False, 0.1, 1, 1100, 0.953),
    ]
    tuned = tuned_comparison(outcomes, "batch_norm", [], baseline=False)
    bn = next(arm for arm in tuned.arms if arm.value is True)
    difference = bn.final_accuracy_vs_baseline
    assert difference is not None and difference.difference.seeds == (0, 1)
    assert difference.verdict == "no detectable difference at n = 2"


def test_bad_arms_are_errors_naming_the_parameter() -> None:
    with pytest.raises(TuningError) as raised:
        tuned_comparison(STUDY, "dropout", ["learning_rate"])
    assert raised.value.field == "arm"
    with pytest.raises(TuningError) as raised:
        tuned_comparison(STUDY, "batch_norm", ["batch_norm"])
    assert raised.value.field == "tune"
    with pytest.raises(TuningError) as raised:
        tuned_comparison(STUDY, "batch_norm", ["learning_rate"], baseline="maybe")
    assert raised.value.field == "baseline"


def test_within_an_arm_only_seeds_and_tuned_axes_may_differ_while_arms_may_differ_in_budget() -> None:
    mixed = [*STUDY, job(True, 1.0, 5, 60, 0.97, dropout=0.2)]
    with pytest.raises(TuningError, match="within batch_norm=true the jobs also differ in dropout") as raised:
        tuned_comparison(mixed, "batch_norm", ["learning_rate"])
    assert raised.value.field == "tune"
    longer_baseline = [
        *(job(True, 0.1, seed, 70, 0.97) for seed in SEEDS),
        *(job(False, 0.1, seed, 2500, 0.95, steps_run=2500, target_accuracy=0.9) for seed in SEEDS),
    ]
    longer_baseline[len(SEEDS) :] = [
        JobOutcome(o.job_id, o.status, {**o.spec, "steps": 20000}, o.final_accuracy, o.best_accuracy, 2500)
        for o in longer_baseline[len(SEEDS) :]
    ]
    tuned = tuned_comparison(longer_baseline, "batch_norm", [], baseline=False)
    bn = next(arm for arm in tuned.arms if arm.value is True)
    assert bn.speedup_vs_baseline is not None and bn.speedup_vs_baseline.estimate.value == pytest.approx(
        2500 / 70
    )
