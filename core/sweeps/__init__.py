"""Sweeps: a base spec, a grid over any spec fields and replicate seeds, expanded into job specs and
validated whole before anything is created; the jobs' outcomes aggregated per grid point over seeds; the
best setting of a tuned axis per arm; and how the jobs are executed. Torch-free.

One module each: `request` (what a user submits), `expansion` (grid × seeds → job specs), `aggregation`
(per grid point over seeds, the heatmap), `tuning` (tuned baselines), `execution` (fused groups).
"""

from core.statistics import Stat
from core.sweeps.aggregation import (
    JOB_STATUSES,
    TERMINAL_STATUSES,
    GridPointSummary,
    JobOutcome,
    SweepHeatmap,
    aggregate,
    heatmap,
    status_counts,
)
from core.sweeps.execution import ExecutionUsed, fused_groups, how_executed
from core.sweeps.expansion import (
    NESTED_FIELDS,
    SweepJob,
    SweepValidationError,
    expand_sweep,
    point_label,
    value_at,
)
from core.sweeps.request import MAX_AXIS_VALUES, MAX_GRID_AXES, MAX_SEEDS, Execution, SweepRequest
from core.sweeps.tuning import CRITERION, TunedArm, TunedComparison, TuningError, tuned_comparison

__all__ = [
    "CRITERION",
    "JOB_STATUSES",
    "MAX_AXIS_VALUES",
    "MAX_GRID_AXES",
    "MAX_SEEDS",
    "NESTED_FIELDS",
    "TERMINAL_STATUSES",
    "Execution",
    "ExecutionUsed",
    "GridPointSummary",
    "JobOutcome",
    "Stat",
    "SweepHeatmap",
    "SweepJob",
    "SweepRequest",
    "SweepValidationError",
    "TunedArm",
    "TunedComparison",
    "TuningError",
    "aggregate",
    "expand_sweep",
    "fused_groups",
    "heatmap",
    "how_executed",
    "point_label",
    "status_counts",
    "tuned_comparison",
    "value_at",
]
