"""Sweeps: a grid × seeds expands into valid job specs or into an error naming the bad grid point and
field; fusable jobs form fused groups; outcomes aggregate per grid point over seeds."""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from core.spec import JobSpec
from core.sweeps import (
    JobOutcome,
    Stat,
    SweepRequest,
    SweepValidationError,
    aggregate,
    expand_sweep,
    fused_groups,
    heatmap,
    how_executed,
    status_counts,
    value_at,
)

BASE: dict[str, Any] = {
    "architecture": {"kind": "mlp", "hidden": [100, 100, 100], "activation": "sigmoid"},
    "batch_norm": True,
    "learning_rate": 0.1,
    "dropout": 0.0,
    "steps": 200,
    "eval_every": 10,
    "target_accuracy": 0.9,
}
CAP = 256


def request(**fields: Any) -> SweepRequest:
    return SweepRequest.model_validate({"name": "study", "base": BASE, **fields})


def expansion_errors(sweep: SweepRequest, cap: int = CAP) -> list[dict[str, Any]]:
    with pytest.raises(SweepValidationError) as raised:
        expand_sweep(sweep, cap)
    return raised.value.errors


# --- expansion ------------------------------------------------------------------------------------


def test_grid_times_seeds_gives_one_job_per_combination_in_grid_order() -> None:
    grid = {"learning_rate": [0.01, 0.1, 1.0], "batch_norm": [True, False]}
    seeds = [0, 1, 2]
    jobs = expand_sweep(request(grid=grid, seeds=seeds), CAP)
    assert len(jobs) == request(grid=grid, seeds=seeds).size() == 3 * 2 * 3
    combinations = [(job.spec.learning_rate, job.spec.batch_norm, job.spec.seed) for job in jobs]
    assert combinations == [
        (learning_rate, batch_norm, seed)
        for learning_rate in grid["learning_rate"]
        for batch_norm in grid["batch_norm"]
        for seed in seeds
    ]
    assert all(
        job.point == {"learning_rate": job.spec.learning_rate, "batch_norm": job.spec.batch_norm}
        for job in jobs
    )


def test_everything_off_the_grid_comes_from_the_base_spec() -> None:
    jobs = expand_sweep(request(grid={"dropout": [0.0, 0.5]}), CAP)
    base = JobSpec.model_validate(BASE)
    for job in jobs:
        assert job.spec.model_dump(exclude={"dropout", "name"}) == base.model_dump(
            exclude={"dropout", "name"}
        )


def test_dotted_axes_reach_into_the_architecture() -> None:
    grid = {"architecture.activation": ["sigmoid", "relu"], "architecture.hidden": [[50], [50, 50]]}
    jobs = expand_sweep(request(grid=grid), CAP)
    assert [(job.spec.architecture.activation, job.spec.architecture.hidden) for job in jobs] == [
        ("sigmoid", [50]),
        ("sigmoid", [50, 50]),
        ("relu", [50]),
        ("relu", [50, 50]),
    ]
    assert jobs[0].point == {"architecture.activation": "sigmoid", "architecture.hidden": [50]}


def test_a_whole_architecture_can_be_an_axis() -> None:
    cnn = {"kind": "cnn", "channels": [8]}
    jobs = expand_sweep(request(grid={"architecture": [BASE["architecture"], cnn]}), CAP)
    assert [job.spec.architecture.kind for job in jobs] == ["mlp", "cnn"]


def test_without_seeds_the_base_seed_is_the_only_replicate() -> None:
    jobs = expand_sweep(request(base={**BASE, "seed": 7}, grid={"batch_norm": [True, False]}), CAP)
    assert [job.seed for job in jobs] == [7, 7]


def test_each_job_is_named_after_the_sweep_its_point_and_seed() -> None:
    jobs = expand_sweep(request(grid={"learning_rate": [0.5]}, seeds=[3]), CAP)
    assert jobs[0].spec.name == "study learning_rate=0.5 seed=3"


def test_an_empty_grid_is_one_point_per_seed() -> None:
    jobs = expand_sweep(request(seeds=[0, 1]), CAP)
    assert [job.seed for job in jobs] == [0, 1]
    assert all(job.point == {} for job in jobs)


# --- validation -----------------------------------------------------------------------------------


def test_one_bad_value_names_its_grid_point_and_field() -> None:
    errors = expansion_errors(request(grid={"batch_norm": [True, False], "learning_rate": [0.1, -1.0]}))
    assert len(errors) == 1  # the bad value is reported once, not once per point it appears in
    (error,) = errors
    assert error["loc"] == ["body", "grid", "learning_rate", 1]
    assert "learning_rate=-1.0" in error["msg"] and "batch_norm=true" in error["msg"]
    assert error["type"] == "greater_than"
    assert error["input"] == -1.0


def test_a_bad_value_inside_the_architecture_is_located_on_its_dotted_axis() -> None:
    errors = expansion_errors(request(grid={"architecture.activation": ["relu", "swish"]}))
    assert [error["loc"] for error in errors] == [["body", "grid", "architecture.activation", 1]]
    assert "architecture.activation" in errors[0]["msg"]


def test_a_point_made_invalid_by_the_combination_names_the_point_and_the_field() -> None:
    sweep = request(base={**BASE, "batch_norm": False, "batch_size": 1}, grid={"batch_norm": [False, True]})
    errors = expansion_errors(sweep)
    # The failing field (batch_size) is not on the grid: the error sits on the grid and names both.
    assert [error["loc"] for error in errors] == [["body", "grid"]]
    assert "batch_norm=true" in errors[0]["msg"] and "batch_size" in errors[0]["msg"]


def test_an_unknown_field_is_an_error_naming_it() -> None:
    errors = expansion_errors(request(grid={"learning_rat": [0.1]}))
    assert errors[0]["loc"] == ["body", "grid", "learning_rat", 0]
    assert "learning_rat" in errors[0]["msg"]
    errors = expansion_errors(request(grid={"architecture.depth": [3]}))
    assert errors[0]["loc"][:3] == ["body", "grid", "architecture.depth"]


@pytest.mark.parametrize(
    ("grid", "loc"),
    [
        ({"seed": [0, 1]}, ["body", "grid", "seed"]),
        ({"batch_norm.momentum": [0.1]}, ["body", "grid", "batch_norm.momentum"]),
        ({"learning_rate": []}, ["body", "grid", "learning_rate"]),
        ({"learning_rate": [0.1, 0.1]}, ["body", "grid", "learning_rate"]),
    ],
)
def test_malformed_axes_are_rejected_before_any_point_is_built(grid: dict[str, Any], loc: list[str]) -> None:
    assert loc in [error["loc"] for error in expansion_errors(request(grid=grid))]


def test_the_size_cap_counts_seeds_and_is_checked_without_expanding() -> None:
    grid = {"learning_rate": [0.01 * (index + 1) for index in range(100)], "dropout": [0.0, 0.1, 0.2]}
    sweep = request(grid=grid, seeds=[0, 1])
    errors = expansion_errors(sweep, cap=599)
    assert errors[0]["loc"] == ["body", "grid"] and "600" in errors[0]["msg"] and "599" in errors[0]["msg"]
    assert len(expand_sweep(sweep, 600)) == 600


def test_duplicate_seeds_are_rejected() -> None:
    assert ["body", "seeds"] in [error["loc"] for error in expansion_errors(request(seeds=[1, 1]))]


def test_errors_carry_json_safe_inputs() -> None:
    errors = expansion_errors(request(grid={"learning_rate": [math.nan]}))
    assert errors[0]["loc"] == ["body", "grid", "learning_rate", 0]
    assert isinstance(errors[0]["input"], str)


def test_the_request_itself_rejects_unknown_keys_and_bad_seeds() -> None:
    with pytest.raises(ValidationError):
        SweepRequest.model_validate({"base": BASE, "grid": {}, "seedz": [0]})
    with pytest.raises(ValidationError):
        SweepRequest.model_validate({"base": BASE, "seeds": [-1]})
    with pytest.raises(ValidationError):
        SweepRequest.model_validate({"base": BASE, "grid": {"Learning Rate": [0.1]}})
    assert SweepRequest.model_validate({"base": BASE}).execution == "fused"


# --- aggregation ----------------------------------------------------------------------------------


def outcome(
    job_id: str,
    status: str,
    learning_rate: float,
    batch_norm: bool,
    seed: int,
    final: float | None = None,
    best: float | None = None,
    steps: int | None = None,
) -> JobOutcome:
    spec = JobSpec.model_validate(
        {**BASE, "learning_rate": learning_rate, "batch_norm": batch_norm, "seed": seed}
    )
    return JobOutcome(job_id, status, spec.model_dump(mode="json"), final, best, steps)


OUTCOMES = [
    outcome("a0", "succeeded", 0.1, True, 0, final=0.95, best=0.96, steps=70),
    outcome("a1", "succeeded", 0.1, True, 1, final=0.93, best=0.97, steps=80),
    outcome("a2", "diverged", 0.1, True, 2, final=None, best=0.5, steps=None),
    outcome("b0", "succeeded", 0.1, False, 0, final=0.61, best=0.66, steps=None),
    outcome("b1", "running", 0.1, False, 1),
    outcome("c0", "succeeded", 1.0, True, 0, final=0.9, best=0.92, steps=120),
]


def test_aggregation_groups_seeds_of_a_grid_point_in_first_seen_order() -> None:
    summaries = aggregate(OUTCOMES, ["learning_rate", "batch_norm"])
    assert [summary.point for summary in summaries] == [
        {"learning_rate": 0.1, "batch_norm": True},
        {"learning_rate": 0.1, "batch_norm": False},
        {"learning_rate": 1.0, "batch_norm": True},
    ]
    assert summaries[0].job_ids == ["a0", "a1", "a2"] and summaries[0].seeds == [0, 1, 2]


def test_aggregation_gives_mean_and_sample_std_and_counts() -> None:
    bn = aggregate(OUTCOMES, ["learning_rate", "batch_norm"])[0]
    assert bn.final_accuracy.n == 2  # the diverged run has no final accuracy: left out, not a zero
    assert bn.final_accuracy.mean == pytest.approx(statistics.fmean([0.95, 0.93]))
    assert bn.final_accuracy.std == pytest.approx(statistics.stdev([0.95, 0.93]))
    # two seeds: mean ± t(0.975, 1) · std / √2, with t(0.975, 1) = 12.706 — whose top, above 1, is cut to
    # the highest accuracy there is
    half_width = 12.7062047 * statistics.stdev([0.95, 0.93]) / math.sqrt(2)
    assert 0.94 + half_width > 1.0
    assert bn.final_accuracy.ci95 == pytest.approx((0.94 - half_width, 1.0))
    assert bn.final_accuracy.ci_method == "t"
    assert bn.best_accuracy.mean == pytest.approx(statistics.fmean([0.96, 0.97, 0.5]))
    assert (bn.steps_to_target.n, bn.steps_to_target.mean) == (2, 75.0)
    assert bn.steps_to_target.std == pytest.approx(statistics.stdev([70.0, 80.0]))
    assert (bn.done, bn.diverged, bn.reached_target) == (3, 1, 2)
    assert bn.status_counts["succeeded"] == 2 and bn.status_counts["diverged"] == 1


def test_aggregation_of_unfinished_or_single_jobs_leaves_what_is_unknown_empty() -> None:
    summaries = aggregate(OUTCOMES, ["learning_rate", "batch_norm"])
    no_bn, high_lr = summaries[1], summaries[2]
    assert no_bn.done == 1 and no_bn.status_counts["running"] == 1
    assert no_bn.steps_to_target == Stat(0, None, None, None)
    assert high_lr.final_accuracy == Stat(1, 0.9, None, None)  # one seed: no spread, no interval


def test_a_grid_point_whose_runs_all_diverged_has_no_final_accuracy() -> None:
    # A diverged run keeps the accuracy of its last evaluation before the loss went non-finite: that is
    # where it broke down, not where it ended, so five diverged seeds average to no final accuracy.
    diverged = [
        outcome(f"d{seed}", "diverged", 1.0, False, seed, final=0.1 + seed / 100, best=0.3)
        for seed in range(5)
    ]
    (point,) = aggregate(diverged, ["learning_rate", "batch_norm"])
    assert (point.diverged, point.done) == (5, 5)
    assert point.final_accuracy == Stat(0, None, None, None)
    assert point.best_accuracy.n == 5  # the best it reached before diverging stays a fact
    cells = heatmap([*diverged, OUTCOMES[0]], "learning_rate", "batch_norm")
    assert cells.y_values == [False, True] and cells.mean_final_accuracy == [[None, None], [0.95, None]]
    assert cells.diverged == [[0, 5], [0, 0]]


def test_status_counts_list_every_status() -> None:
    counts = status_counts(["running", "succeeded", "succeeded"])
    assert counts["succeeded"] == 2 and counts["running"] == 1 and counts["queued"] == 0
    assert sum(counts.values()) == 3


def test_value_at_reads_dotted_paths_and_tolerates_missing_ones() -> None:
    spec = OUTCOMES[0].spec
    assert value_at(spec, "architecture.activation") == "sigmoid"
    assert value_at(spec, "architecture.channels") is None
    assert value_at(spec, "batch_norm.x") is None


def test_heatmap_places_mean_final_accuracy_and_divergence_on_two_axes() -> None:
    cells = heatmap(OUTCOMES, "learning_rate", "batch_norm")
    assert cells.x_values == [0.1, 1.0] and cells.y_values == [True, False]
    assert cells.mean_final_accuracy[0] == [pytest.approx(0.94), 0.9]
    assert cells.mean_final_accuracy[1] == [0.61, None]  # nothing ran at lr 1.0 without BN
    assert cells.diverged == [[1, 0], [0, 0]]
    assert cells.jobs == [[3, 1], [2, 0]]


def test_heatmap_over_one_axis_is_one_row_and_other_axes_share_cells() -> None:
    cells = heatmap(OUTCOMES, "batch_norm", None)
    assert cells.y_values == [None] and cells.x_values == [True, False]
    assert cells.jobs == [[4, 2]]
    assert cells.mean_final_accuracy[0][0] == pytest.approx(statistics.fmean([0.95, 0.93, 0.9]))


# --- the example studies --------------------------------------------------------------------------

STUDY_FILES = sorted((Path(__file__).resolve().parents[2] / "examples" / "studies").glob("*.yaml"))


def test_there_are_eight_example_studies() -> None:
    assert [path.stem.split("-")[0] for path in STUDY_FILES] == [str(number) for number in range(1, 9)]


# Minutes on two cores, fused: a study's steps over all its jobs stay within this, not counting runs that
# stop at their target (study 1 gives its no-BN arm room to get there). Study 6, the paper's 50,000 steps
# for 10 jobs, is the largest.
MAX_STUDY_STEPS = 500_000


@pytest.mark.parametrize("path", STUDY_FILES, ids=lambda path: path.stem)
def test_each_example_study_is_a_valid_sweep_on_digits_comparing_normalizations(path: Path) -> None:
    study = yaml.safe_load(path.read_text())
    sweeps = [SweepRequest.model_validate(body) for body in [study["sweep"], *study.get("also", [])]]
    jobs = [job for sweep in sweeps for job in expand_sweep(sweep, CAP)]
    assert {sweep.execution for sweep in sweeps} == {"fused"}
    assert {job.spec.dataset for job in jobs} == {"digits"}  # runs out of the box, offline
    assert {"none", "batch"} <= {job.spec.normalization for job in jobs}
    for sweep in sweeps:
        assert len({job.seed for job in expand_sweep(sweep, CAP)}) >= 5  # intervals over seeds need five
    assert {job.spec.split_seed for job in jobs} == {0}  # the same validation set for every seed
    assert len(jobs) <= 50
    assert sum(job.spec.steps for job in jobs if not job.spec.stop_at_target) <= MAX_STUDY_STEPS
    heatmap = study["about"].get("heatmap", {})
    for axis in (heatmap.get("x"), heatmap.get("y")):
        assert axis is None or axis in sweeps[0].grid
    for key in ("title", "claim"):
        assert study["about"].get(key)


def test_the_faithful_fig1_study_has_the_papers_setup() -> None:
    """784-100-100-100-10 on mnist (64 inputs on digits), sigmoid, small Gaussian init, batch 60, 50,000
    steps, held-out inference-mode telemetry, BN against none."""
    study = yaml.safe_load((STUDY_FILES[0].parent / "6-fig1-faithful.yaml").read_text())
    [*jobs] = expand_sweep(SweepRequest.model_validate(study["sweep"]), CAP)
    for job in jobs:
        spec = job.spec
        assert spec.architecture.hidden == [100, 100, 100] and spec.architecture.activation == "sigmoid"
        assert spec.init == "gaussian" and spec.init_std <= 0.01
        assert (spec.batch_size, spec.steps, spec.optimizer) == (60, 50_000, "sgd")
        assert spec.telemetry_every > 0 and spec.telemetry_mode == "inference"
        assert not spec.stop_at_target
    assert {job.spec.normalization for job in jobs} == {"none", "batch"}
    assert "mnist" in (STUDY_FILES[0].parent / "6-fig1-faithful.yaml").read_text()  # how to run the paper's


def test_the_noisy_bn_study_compares_noise_bn_and_none_with_both_ics_measures() -> None:
    study = yaml.safe_load((STUDY_FILES[0].parent / "7-noisy-bn.yaml").read_text())
    bodies = [study["sweep"], *study["also"]]
    specs = [job.spec for body in bodies for job in expand_sweep(SweepRequest.model_validate(body), CAP)]
    kinds = {(spec.normalization, spec.bn_noise is not None) for spec in specs}
    assert kinds == {("none", False), ("batch", False), ("batch", True)}
    assert all(spec.telemetry_every > 0 and not spec.stop_at_target for spec in specs)
    assert len({spec.steps for spec in specs}) == 1  # every arm's ICS over the same steps


def test_the_normalizations_study_runs_every_kind_at_two_learning_rates() -> None:
    study = yaml.safe_load((STUDY_FILES[0].parent / "8-normalizations.yaml").read_text())
    specs = [job.spec for job in expand_sweep(SweepRequest.model_validate(study["sweep"]), CAP)]
    assert {spec.normalization for spec in specs} == {"none", "batch", "layer", "group"}
    assert len({spec.learning_rate for spec in specs}) == 2
    assert all(spec.architecture.activation == "sigmoid" and spec.stop_at_target for spec in specs)


def test_only_groups_of_two_or_more_fuse_and_only_when_fused_is_asked_for() -> None:
    jobs = expand_sweep(
        request(grid={"batch_norm": [True, False], "bn_implementation": ["torch", "bnlab"]}, seeds=[0, 1, 2]),
        CAP,
    )
    specs = [job.spec for job in jobs]
    # BN on with torch's layer, BN on with bnlab's, then BN off (either implementation: no BN layer at all).
    assert fused_groups(specs, "fused", max_group_size=64) == [[0, 1, 2], [3, 4, 5], [6, 7, 8, 9, 10, 11]]
    # Split to at most two: each BN group's third job is left alone, so it runs as its own task.
    assert fused_groups(specs, "fused", max_group_size=2) == [[0, 1], [3, 4], [6, 7], [8, 9], [10, 11]]
    assert fused_groups(specs, "separate", max_group_size=64) == []


@pytest.mark.parametrize(
    ("requested", "group_sizes", "used", "says"),
    [
        ("separate", [], "separate", "separate requested"),
        ("fused", [], "separate", "no two jobs can train together"),
        ("fused", [3, 3], "fused", "6 jobs in 2 fused groups of 3, 3"),
        ("fused", [3, 2], "mixed", "1 job fuses with no other and runs as its own task"),
        ("fused", [4], "mixed", "2 jobs fuse with no other and run as one task each"),
    ],
)
def test_how_a_sweep_is_executed_is_said_in_words(
    requested: str, group_sizes: list[int], used: str, says: str
) -> None:
    size = 6
    actually_used, note = how_executed(requested, group_sizes, size)
    assert actually_used == used and says in note
