"""Divergence is a result, not an error: the job ends `diverged` at the step its loss stopped being a
number, is never retried, its NaNs read as JSON null, and they never sort above a real number."""

from __future__ import annotations

import math
import re
import time

import pytest

from tests.fixtures.worker import RunningWorker
from tests.reliability.conftest import api_for, uninterrupted_run, wait_until

pytestmark = pytest.mark.service

# Plain SGD at the largest allowed learning rate, no BN: the loss blows up within a few dozen steps.
# Evaluated at every step, so the evaluation just before the blow-up already sees a NaN validation loss.
DIVERGING_SPEC = {
    "architecture": {"kind": "mlp", "hidden": [64, 64], "activation": "relu"},
    "batch_norm": False,
    "learning_rate": 100.0,
    "dropout": 0.0,
    "name": "plain-lr-100",
    "batch_size": 32,
    "steps": 100,
    "eval_every": 1,
    "device": "cpu",
    # With the counter-based sampler's batches, seed 4 reads NaN validation losses at steps 25-27 and
    # diverges at 31 (seed 0 diverges at 71 with every evaluation still finite).
    "seed": 4,
}
# The same net and learning rate with batch norm trains through (the paper's claim, at its extreme).
BN_TWIN_SPEC = {**DIVERGING_SPEC, "batch_norm": True, "name": "bn-lr-100"}


def test_a_diverged_job_ends_diverged_at_its_step_is_not_retried_and_its_nans_read_as_null(
    postgres_redis_worker: RunningWorker,
) -> None:
    worker = postgres_redis_worker
    reference, reference_series = uninterrupted_run(DIVERGING_SPEC)
    assert reference.outcome == "diverged" and reference.summary.diverged_at_step is not None
    reference_steps, reference_val_loss = reference_series["val_loss"]
    nan_steps = [
        step for step, value in zip(reference_steps, reference_val_loss, strict=True) if math.isnan(value)
    ]
    assert nan_steps, "the reference run should report a NaN validation loss"
    highest_real_val_loss = max(value for value in reference_val_loss if math.isfinite(value))
    twin_reference, _ = uninterrupted_run(BN_TWIN_SPEC)
    assert twin_reference.outcome == "succeeded"

    with api_for(worker) as client:
        diverged_id = client.post("/v1/jobs", json=DIVERGING_SPEC).json()["id"]
        twin_id = client.post("/v1/jobs", json=BN_TWIN_SPEC).json()["id"]
        wait_until(
            lambda: all(
                client.get(f"/v1/jobs/{job}").json()["finished_at"] for job in (diverged_id, twin_id)
            ),
            60,
            "both jobs to end",
            worker.log,
        )
        # Long enough for a lost job to be found and delivered again: a diverged one must not be.
        time.sleep(worker.settings.lease_seconds + 2 * worker.settings.republish_seconds)
        diverged = client.get(f"/v1/jobs/{diverged_id}").json()
        val_loss = client.get(f"/v1/jobs/{diverged_id}/metrics", params={"name": "val_loss"}).json()
        squeezed = client.get(f"/v1/jobs/{diverged_id}/metrics", params={"name": "val_loss", "max_points": 4})
        compared = client.get(
            "/v1/compare",
            params={"ids": [diverged_id, twin_id], "metric": "val_loss", "baseline": diverged_id},
        ).json()
        listed = client.get("/v1/jobs", params={"status": "diverged"}).json()["items"]

    assert (diverged["status"], diverged["error"], diverged["attempts"]) == ("diverged", None, 1)
    # The worker's log says what became of each job, Celery's line for its task included.
    log = worker.log()
    assert re.search(rf"WARNING/\S+\] job {diverged_id}: diverged$", log, re.MULTILINE), log[-3000:]
    assert re.search(rf"INFO/\S+\] job {twin_id}: succeeded$", log, re.MULTILINE)
    assert re.search(rf"succeeded in [0-9.]+s: 'job {diverged_id}: diverged'", log)
    assert diverged["summary"]["diverged_at_step"] == reference.summary.diverged_at_step
    assert diverged_id in [job["id"] for job in listed]

    series = val_loss["series"]["val_loss"]
    values_by_step = dict(zip(series["steps"], series["values"], strict=True))
    assert all(values_by_step[step] is None for step in nan_steps)  # JSON null, never NaN
    # Downsampled to one bucket (first, last, lowest, highest): the highest is a real number.
    assert highest_real_val_loss in squeezed.json()["series"]["val_loss"]["values"]

    rows = compared["jobs"]
    assert [row["id"] for row in rows] == [twin_id, diverged_id]  # the diverged job sorts last
    assert (rows[0]["status"], rows[1]["status"]) == ("succeeded", "diverged")
    assert rows[1]["final"] is None and isinstance(rows[0]["final"], float)
    assert rows[1]["diverged_at_step"] == reference.summary.diverged_at_step
