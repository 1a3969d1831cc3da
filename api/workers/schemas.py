"""Response schemas of `GET /v1/workers` (DESIGN: Contract additions, Workers)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.schemas import ResponseModel


class WorkerDeviceOut(ResponseModel):
    kind: Literal["cpu", "cuda"]
    name: str = Field(description="the GPU's name, or the CPU's model")
    count: int = Field(description="GPUs visible to the worker (cuda), or logical CPUs of its machine (cpu)")
    memory_mb: int | None = Field(description="one GPU's memory, or the machine's; null when unknown")
    threads: int = Field(description="torch's thread count in the worker (BNLAB_TORCH_THREADS)")


class WorkerTrainingOut(ResponseModel):
    job_ids: list[str] = Field(description="the job, or every job of the fused group, being trained")
    group_id: str | None = Field(None, description="the fused group's id; null for a job trained alone")


class WorkerOut(ResponseModel):
    model_config = ConfigDict(
        from_attributes=True,
        json_schema_extra={
            "examples": [
                {
                    "id": "9b1c4e2f0a3d4b5c8e7f6a5b4c3d2e1f",
                    "name": "celery@gpu-node-1",
                    "host": "gpu-node-1",
                    "pid": 7,
                    "queues": ["default", "gpu"],
                    "device": {
                        "kind": "cuda",
                        "name": "NVIDIA H200",
                        "count": 1,
                        "memory_mb": 143771,
                        "threads": 1,
                    },
                    "training": {"job_ids": ["3f6c8e1a9b2d4c7e8f0a1b2c3d4e5f60"], "group_id": None},
                    "started_at": "2025-01-01T12:00:00Z",
                    "last_seen": "2025-01-01T12:05:00Z",
                    "alive": True,
                }
            ]
        },
    )

    id: str = Field(description="UUID4 hex, new at each start of the worker process")
    name: str = Field(description="Celery's node name, as the worker's log says it")
    host: str
    pid: int = Field(description="the worker's main process on its host")
    queues: list[str] = Field(description="the queues it consumes: default plus cpu or gpu")
    device: WorkerDeviceOut
    training: WorkerTrainingOut | None = Field(description="what its pool trains now; null when idle")
    started_at: datetime
    last_seen: datetime = Field(description="its last heartbeat")
    alive: bool = Field(description="seen within the lease time and not stopped")


class WorkerList(BaseModel):
    items: list[WorkerOut] = Field(description="live workers first, then (with include=gone) the others")
