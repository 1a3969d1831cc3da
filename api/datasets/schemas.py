"""Response schemas of `/v1/datasets`."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class DatasetOut(BaseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "name": "my-digits",
                    "sha256": "9f2c…",
                    "train_size": 1437,
                    "val_size": 360,
                    "input_shape": [64],
                    "num_classes": 10,
                    "created_at": "2026-12-04T18:00:00Z",
                }
            ]
        },
    )

    name: str = Field(description='a spec trains on it with "dataset": "user:<name>"')
    sha256: str = Field(description="SHA-256 of the stored arrays (an NPZ file)")
    train_size: int
    val_size: int = Field(description="0 when no validation split was given: training holds out a seeded 20%")
    input_shape: list[int] = Field(
        description="one example's shape: (features,) or (channels, height, width)"
    )
    num_classes: int
    created_at: datetime


class DatasetList(BaseModel):
    items: list[DatasetOut]
