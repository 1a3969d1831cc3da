"""`/v1/workers`: the worker processes that registered themselves, what hardware they have and what they
are training (`core.store.workers`)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, status

from api.dependencies import SettingsDep, StoreDep
from api.errors import DATABASE_DOWN
from api.workers.schemas import WorkerList, WorkerOut

router = APIRouter(prefix="/v1/workers", tags=["workers"])


@router.get(
    "",
    status_code=status.HTTP_200_OK,
    response_model=WorkerList,
    summary="List the workers: live ones, or with include=gone also those that stopped or went silent",
    responses=DATABASE_DOWN,
)
def list_workers(
    store: StoreDep,
    settings: SettingsDep,
    include: Annotated[
        Literal["gone"] | None,
        Query(description="`gone`: also the workers that stopped or went silent in the last day"),
    ] = None,
) -> WorkerList:
    """A worker is alive while it heartbeats within the lease time (`BNLAB_LEASE_SECONDS`); one gone
    silent longer is no longer listed unless asked for."""
    workers = store.list_workers(settings.lease_seconds, include_gone=include == "gone")
    return WorkerList(items=[WorkerOut.model_validate(worker) for worker in workers])
