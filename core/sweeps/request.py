"""What a user submits as a sweep: a base spec, a grid over any spec fields, replicate seeds, and how
to execute it (fused or separate). Torch-free.

Grid axes name spec fields; a dotted path reaches into the architecture (`architecture.activation`,
`architecture.hidden`) or noisy BN's parameters (`bn_noise.scale_std`), and `architecture` or `bn_noise`
itself may be an axis whose values are whole objects (`bn_noise: [null, {...}]`: without and with noise).
`normalization` and `batch_norm` say one thing two ways: an axis over either sets both.
Seeds are not a grid axis: they are the replicates every grid point is run with.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, StringConstraints

from core.spec import MAX_NAME_LENGTH, JobSpec, StrictModel

MAX_GRID_AXES = 8
MAX_AXIS_VALUES = 256  # the sweep size cap (settings.max_sweep_size) bounds the whole product anyway
MAX_SEEDS = 256
Execution = Literal["fused", "separate"]

AxisName = Annotated[str, StringConstraints(pattern=r"^[a-z_]+(\.[a-z_]+)?$", max_length=64)]
Seed = Annotated[int, Field(ge=0, le=2**31 - 1)]


class SweepRequest(StrictModel):
    """What a user submits: every grid point × every seed becomes one job."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {
                    "name": "lr-x-bn",
                    "base": {
                        "architecture": {"kind": "mlp", "hidden": [100, 100, 100], "activation": "sigmoid"},
                        "batch_norm": True,
                        "learning_rate": 0.1,
                        "dropout": 0.0,
                        "steps": 500,
                        "eval_every": 10,
                        "target_accuracy": 0.9,
                    },
                    "grid": {"learning_rate": [0.01, 0.1, 1.0], "batch_norm": [True, False]},
                    "seeds": [0, 1, 2],
                    "execution": "fused",
                }
            ]
        },
    )

    name: str = Field("", max_length=MAX_NAME_LENGTH)
    base: JobSpec = Field(description="the spec every grid point starts from")
    grid: dict[AxisName, list[Any]] = Field(
        default_factory=dict,
        max_length=MAX_GRID_AXES,
        description="spec field (dotted into `architecture` or `bn_noise`) → the values it takes; the sweep "
        "is the product",
    )
    seeds: list[Seed] | None = Field(
        None,
        min_length=1,
        max_length=MAX_SEEDS,
        description="replicate seeds run at every grid point; default: the base spec's seed",
    )
    execution: Execution = Field(
        "fused",
        description="fused: one task trains a group of grid points as stacked models; separate: a task a job",
    )

    def replicate_seeds(self) -> list[int]:
        return list(self.seeds) if self.seeds is not None else [self.base.seed]

    def size(self) -> int:
        """How many jobs the sweep creates, computed without expanding it."""
        return math.prod(len(values) for values in self.grid.values()) * len(self.replicate_seeds())
