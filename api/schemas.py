"""The pieces every resource's response schemas are built from, and the health probes' two small answers;
each other resource's own shapes sit beside its router (`api/jobs/schemas.py`, `api/sweeps/schemas.py`, ...).

Non-finite floats (a diverged loss) become `null` here, so NaN and inf never reach JSON.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


FiniteFloat = Annotated[float | None, BeforeValidator(_finite_or_none)]


class ResponseModel(BaseModel):
    """A response built from the store's plain objects by attribute."""

    model_config = ConfigDict(from_attributes=True)


class Series(BaseModel):
    steps: list[int]
    values: list[FiniteFloat] = Field(description="null where the value was NaN or infinite")


class ErrorOut(BaseModel):
    """Every 4xx/5xx answer other than 422 carries one human-readable `detail`."""

    detail: str


class HealthOut(BaseModel):
    status: Literal["ok"] = "ok"


class ReadinessOut(BaseModel):
    status: Literal["ready", "unavailable"]
    database: Literal["ok", "unavailable", "not migrated"]
    broker: Literal["ok", "unavailable"]
