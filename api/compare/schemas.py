"""Response schemas of `/v1/compare`, shaped as DESIGN.md shows them. NaN and inf never reach JSON: they
become null.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from api.jobs.schemas import JobStatus
from api.schemas import FiniteFloat, ResponseModel, Series
from api.statistics_schemas import TunedOut


class LandscapeRatioOut(ResponseModel):
    """One loss-landscape quantity of a job against the baseline's, over their shared probe steps."""

    geometric_mean_ratio: FiniteFloat = Field(
        description="exp(mean(log(job / baseline))) over the paired probe steps; below 1: smoother"
    )
    smoother_fraction: FiniteFloat = Field(description="share of those steps where this job's value is lower")
    probes: int = Field(description="paired probe steps (both values finite and positive)")


class LayerICSOut(ResponseModel):
    """One hidden layer's gradient-based ICS over the job's run (Santurkar et al. 2018)."""

    layer: int = Field(description="the hidden layer, 0-based as in /v1/jobs/{id}/telemetry")
    probes: int = Field(description="telemetry steps where both figures were measured (finite)")
    median_gradient_change: FiniteFloat = Field(
        description="median over those steps of ‖G − G′‖₂, G′ the layer's weight gradient once the layers "
        "before it took their step (0 for the first layer); larger: more ICS; null without probes"
    )
    median_gradient_cosine: FiniteFloat = Field(
        description="median of cos(G, G′); further below 1: more ICS; null without probes"
    )


class CompareRowOut(ResponseModel):
    """One compared job: what sets it apart and how far it got."""

    id: str
    name: str
    status: JobStatus
    spec_diff: dict[str, Any] = Field(
        description="spec fields (dotted into `architecture`) whose values differ between the compared jobs"
    )
    eval_every: int = Field(description="steps_to_target is resolved to this many steps")
    steps: int = Field(description="the job's step budget")
    final: FiniteFloat = Field(description="the metric's last recorded value")
    best: FiniteFloat = Field(description="highest accuracy / lowest loss recorded")
    steps_to_target: int | None = Field(description="first evaluated step meeting the target; null if never")
    seconds_to_target: FiniteFloat = None
    speedup_vs_baseline: FiniteFloat = Field(
        None, description="the baseline's steps to target ÷ this job's; null when this job never got there"
    )
    speedup_is_lower_bound: bool = Field(
        False,
        description="the baseline never got there: its step budget was used, the true speedup is larger",
    )
    diverged_at_step: int | None = None
    landscape: dict[str, LandscapeRatioOut] | None = Field(
        None,
        description="per landscape quantity (loss_range, gradient_predictiveness, beta_smoothness, "
        "relative_gradient_change; lower is smoother), this job against the baseline; null unless both "
        "were run with landscape_every > 0",
    )
    ics: list[LayerICSOut] | None = Field(
        None,
        description="per hidden layer, this job's gradient-based ICS summarised over its run (medians over "
        "its telemetry steps); null unless the job was run with telemetry_every > 0",
    )


class CompareOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "metric": "val_accuracy",
                    "target": 0.9,
                    "baseline": "0a1b2c3d4e5f40718293a4b5c6d7e8f9",
                    "jobs": [
                        {
                            "id": "3f6c8e1a9b2d4c7e8f0a1b2c3d4e5f60",
                            "name": "bn-sigmoid",
                            "status": "succeeded",
                            "spec_diff": {"batch_norm": True},
                            "eval_every": 10,
                            "steps": 2000,
                            "final": 0.97,
                            "best": 0.975,
                            "steps_to_target": 70,
                            "seconds_to_target": 0.2,
                            "speedup_vs_baseline": 28.6,
                            "speedup_is_lower_bound": True,
                            "diverged_at_step": None,
                            "ics": [
                                {
                                    "layer": 0,
                                    "probes": 20,
                                    "median_gradient_change": 0.0,
                                    "median_gradient_cosine": 1.0,
                                },
                                {
                                    "layer": 1,
                                    "probes": 20,
                                    "median_gradient_change": 0.0021,
                                    "median_gradient_cosine": 0.97,
                                },
                            ],
                        }
                    ],
                    "series": {"3f6c8e1a9b2d4c7e8f0a1b2c3d4e5f60": {"steps": [0, 10], "values": [0.1, 0.6]}},
                }
            ]
        }
    )

    metric: str
    target: float | None = Field(description="the target the steps are counted to (null: none)")
    baseline: str = Field(description="the job the speedups are relative to")
    jobs: list[CompareRowOut] = Field(
        description="finished jobs first, then running, cancelled, diverged, failed"
    )
    series: dict[str, Series] = Field(
        description="per job, the metric over steps, downsampled keeping ends, extremes, the target crossing"
    )
    arms: TunedOut | None = Field(
        None,
        description="with `arm` in the query: the jobs grouped by that field, each arm compared with the "
        "baseline job's over matched seeds (its final value as `final_accuracy`); null otherwise",
    )
