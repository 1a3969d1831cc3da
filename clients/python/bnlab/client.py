"""`bnlab.Client`: submit jobs and sweeps to a bnlab service, wait for them, and read their results as
pandas DataFrames. `Job` and `Sweep` are handles on what was submitted; they re-read the service on
every call, so they are never stale.

    client = bnlab.Client(url="http://127.0.0.1:8000")
    job = client.submit(spec)
    job.wait(progress=True)
    job.metrics()               # job, name, step, value
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from bnlab import exports, frames
from bnlab.errors import BnlabError
from bnlab.transport import DEFAULT_URL, REQUEST_TIMEOUT_SECONDS, Transport

TERMINAL_STATUSES = frozenset({"succeeded", "failed", "diverged", "cancelled"})
POLL_SECONDS = 0.25
# Deleting a running job waits for its worker to stop (the service's delete_wait_seconds, 30 s by default).
DELETE_TIMEOUT_SECONDS = 120.0


class Client:
    """One bnlab service at `url` (else BNLAB_URL, else http://127.0.0.1:8000); `api_key` (else
    BNLAB_API_KEY) is sent as a bearer token when there is one. Closes its connection pool on `close()`
    or at the end of a `with` block."""

    def __init__(
        self, url: str | None = None, api_key: str | None = None, timeout: float = REQUEST_TIMEOUT_SECONDS
    ) -> None:
        url = url or os.environ.get("BNLAB_URL") or DEFAULT_URL
        api_key = api_key or os.environ.get("BNLAB_API_KEY") or None
        self.http = Transport(url, api_key, timeout)

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.http.close()

    @property
    def url(self) -> str:
        return self.http.base_url

    # -- jobs --------------------------------------------------------------------------------------------
    def submit(self, spec: Mapping[str, Any]) -> Job:
        """Submit one training job (`POST /v1/jobs`); raises ValidationError naming each bad field."""
        return Job(self, self.http.post("/v1/jobs", dict(spec)))

    def job(self, job_id: str) -> Job:
        """A handle on an existing job (raises NotFound for an unknown id)."""
        return Job(self, self.http.get(f"/v1/jobs/{job_id}"))

    def jobs(self, status: str | None = None, sweep_id: str | None = None, limit: int = 200) -> list[Job]:
        """The newest jobs first, at most `limit` (one page of `GET /v1/jobs`)."""
        page = self.http.get("/v1/jobs", {"status": status, "sweep_id": sweep_id, "limit": limit})
        return [Job(self, view) for view in page["items"]]

    def cancel(self, job_id: str) -> dict[str, Any]:
        """Cancel a job (`POST /v1/jobs/{id}/cancel`); returns its view. Conflict when it already finished."""
        view: dict[str, Any] = self.http.post(f"/v1/jobs/{job_id}/cancel")
        return view

    def metrics(
        self,
        job_ids: Iterable[str],
        names: Sequence[str] | None = None,
        spec: bool | Sequence[str] = False,
    ) -> Any:
        """Every point of the jobs' metric series as one long DataFrame (job, name, step, value; NaN
        where a value was not finite), at full resolution; `names` picks series (all by default);
        `spec=True` adds every spec field as a column, a list of dotted fields (`architecture.activation`)
        only those."""
        rows: list[tuple[str, str, int, float]] = []
        specs: dict[str, dict[str, Any]] = {}
        for job_id in dict.fromkeys(job_ids):
            rows.extend(exports.metric_points(self.http, job_id, names))
            if spec:
                specs[job_id] = frames.pick_fields(self.http.get(f"/v1/jobs/{job_id}")["spec"], spec)
        return frames.metrics_frame(rows, specs)

    def telemetry(self, job_id: str) -> Any:
        """Per hidden layer and probe step, the statistics of the nonlinearity's input (paper Fig. 1)."""
        return frames.telemetry_frame(job_id, self.http.get(f"/v1/jobs/{job_id}/telemetry"))

    def compare(
        self,
        job_ids: Sequence[str],
        metric: str | None = None,
        target: float | None = None,
        baseline: str | None = None,
    ) -> Any:
        """`GET /v1/compare` as a DataFrame: one row per job (best first) with its final and best value,
        steps and seconds to the target, speedup against the baseline, and the differing spec fields as
        `spec.<field>` columns. `comparison()` gives the whole JSON answer (series and arms too)."""
        return frames.compare_frame(self.comparison(job_ids, metric, target, baseline))

    def comparison(
        self,
        job_ids: Sequence[str],
        metric: str | None = None,
        target: float | None = None,
        baseline: str | None = None,
        arm: str | None = None,
    ) -> dict[str, Any]:
        """The JSON answer of `GET /v1/compare`."""
        params = {"ids": list(job_ids), "metric": metric, "target": target, "baseline": baseline, "arm": arm}
        answer: dict[str, Any] = self.http.get("/v1/compare", params)
        return answer

    def export(
        self,
        path: str | Path,
        job_ids: Sequence[str] = (),
        sweep_id: str | None = None,
        file_format: str = "csv",
        names: Sequence[str] | None = None,
    ) -> int:
        """Every point of the jobs' series (all series unless `names` picks some) into one CSV or Parquet
        file, `job_id,name,step,value`; with `sweep_id`, all its jobs with their grid values and seed as
        columns. Returns how many points were written."""
        return exports.export_metrics(self.http, Path(path), job_ids, sweep_id, file_format, names)

    # -- sweeps ------------------------------------------------------------------------------------------
    def submit_sweep(
        self,
        base: Mapping[str, Any],
        grid: Mapping[str, Sequence[Any]],
        seeds: Sequence[int] = (0,),
        name: str | None = None,
        execution: str = "fused",
    ) -> Sweep:
        """Submit a grid of jobs (`POST /v1/sweeps`): every combination of the `grid` values over `seeds`,
        fused into stacked models where they can be (`execution="separate"`: one task per job)."""
        body: dict[str, Any] = {
            "base": dict(base),
            "grid": {field: list(values) for field, values in grid.items()},
            "seeds": list(seeds),
            "execution": execution,
        }
        if name is not None:
            body["name"] = name
        created = self.http.post("/v1/sweeps", body)
        return Sweep(self, created["id"])

    def sweep(self, sweep_id: str) -> Sweep:
        """A handle on an existing sweep (raises NotFound for an unknown id)."""
        self.http.get(f"/v1/sweeps/{sweep_id}")
        return Sweep(self, sweep_id)

    # -- datasets ----------------------------------------------------------------------------------------
    def upload_dataset(
        self,
        name: str,
        path: str | Path,
        validation: str | Path | None = None,
        label_column: str = "label",
    ) -> dict[str, Any]:
        """Upload an NPZ (x, y; optionally x_val, y_val) or a CSV with a label column as `name`
        (`POST /v1/datasets`); specs then train on it with `"dataset": "user:<name>"`. Returns what it
        holds; raises ValidationError naming what is wrong with a bad file."""
        files = {"file": _named_bytes(path)}
        if validation is not None:
            files["validation_file"] = _named_bytes(validation)
        answer: dict[str, Any] = self.http.post_files(
            "/v1/datasets", {"name": name, "label_column": label_column}, files
        )
        return answer

    def datasets(self) -> list[dict[str, Any]]:
        """Every uploaded dataset, by name."""
        items: list[dict[str, Any]] = self.http.get("/v1/datasets")["items"]
        return items

    def delete_dataset(self, name: str) -> None:
        """Delete an uploaded dataset; Conflict while a queued or running job trains on it."""
        self.http.delete(f"/v1/datasets/{name}")


class Job:
    """A submitted job. `view` is its last-read JSON (`GET /v1/jobs/{id}`); `refresh()` re-reads it."""

    def __init__(self, client: Client, view: Mapping[str, Any]) -> None:
        self.client = client
        self.view = dict(view)

    def __repr__(self) -> str:
        return f"Job({self.id!r}, status={self.status!r})"

    @property
    def id(self) -> str:
        return str(self.view["id"])

    @property
    def status(self) -> str:
        return str(self.view["status"])

    @property
    def summary(self) -> dict[str, Any] | None:
        summary: dict[str, Any] | None = self.view.get("summary")
        return summary

    def refresh(self) -> Job:
        self.view = self.client.http.get(f"/v1/jobs/{self.id}")
        return self

    def wait(self, progress: bool = False, timeout: float | None = None, out: TextIO | None = None) -> Job:
        """Blocks until the job finished (succeeded, failed, diverged or cancelled) and returns it; with
        `progress`, one line that updates in place shows the step and status. Raises BnlabError after
        `timeout` seconds."""
        out = out or sys.stderr
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.refresh().status not in TERMINAL_STATUSES:
            if progress:
                out.write(f"\r{self._progress_line()}")
                out.flush()
            if deadline is not None and time.monotonic() > deadline:
                raise BnlabError(f"Job {self.id} is still {self.status} after {timeout} s.")
            time.sleep(POLL_SECONDS)
        if progress:
            out.write(f"\r{self._progress_line()}\n")
            out.flush()
        return self

    def _progress_line(self) -> str:
        step = (self.view.get("progress") or {}).get("step", 0)
        steps = (self.view.get("progress") or {}).get("steps") or self.view["spec"].get("steps", "?")
        return f"job {self.id[:8]} {self.status:<9} step {step}/{steps}"

    def metrics(self, names: Sequence[str] | None = None, spec: bool | Sequence[str] = False) -> Any:
        """This job's series as a long DataFrame (job, name, step, value); see `Client.metrics`."""
        return self.client.metrics([self.id], names, spec)

    def telemetry(self) -> Any:
        """See `Client.telemetry`."""
        return self.client.telemetry(self.id)

    def cancel(self) -> Job:
        self.view = self.client.cancel(self.id)
        return self

    def tag(self, *tags: str, remove: Iterable[str] = (), note: str | None = None) -> Job:
        """Add `tags` (and take off `remove`), and replace the note when one is given."""
        self.view = self.client.http.patch(
            f"/v1/jobs/{self.id}", _labels(self.refresh().view, tags, remove, note)
        )
        return self

    def archive(self, archived: bool = True) -> Job:
        """Leave the job out of lists unless asked for (`archived=False` brings it back)."""
        self.view = self.client.http.patch(f"/v1/jobs/{self.id}", {"archived": archived})
        return self

    def delete(self) -> None:
        """Delete the job and everything recorded of it; a running one is cancelled and stopped first."""
        self.client.http.delete(f"/v1/jobs/{self.id}", timeout=DELETE_TIMEOUT_SECONDS)


class Sweep:
    """A submitted sweep; `view` is read from `GET /v1/sweeps/{id}` on each call."""

    def __init__(self, client: Client, sweep_id: str) -> None:
        self.client = client
        self.id = sweep_id

    def __repr__(self) -> str:
        return f"Sweep({self.id!r})"

    @property
    def view(self) -> dict[str, Any]:
        view: dict[str, Any] = self.client.http.get(f"/v1/sweeps/{self.id}")
        return view

    @property
    def jobs(self) -> list[Job]:
        return [self.client.job(job_id) for job_id in self.view["job_ids"]]

    def wait(self, progress: bool = False, timeout: float | None = None, out: TextIO | None = None) -> Sweep:
        """Blocks until every job of the sweep finished; with `progress`, a line of done/total."""
        out = out or sys.stderr
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            view = self.view
            if progress:
                out.write(f"\rsweep {self.id[:8]} {view['done']}/{view['size']} jobs done")
                out.flush()
            if view["done"] >= view["size"]:
                break
            if deadline is not None and time.monotonic() > deadline:
                raise BnlabError(
                    f"Sweep {self.id} has {view['done']} of {view['size']} jobs done after {timeout} s."
                )
            time.sleep(POLL_SECONDS)
        if progress:
            out.write("\n")
        return self

    def table(self) -> Any:
        """One row per grid point: its grid values, job counts, and each aggregate over its seeds
        (final_accuracy, best_accuracy, steps_to_target) as n, mean, std, ci_low, ci_high, ci_method."""
        return frames.sweep_frame(self.view)

    def metrics(self, names: Sequence[str] | None = None) -> Any:
        """Every job's series as one long DataFrame with the job's grid values and seed as columns."""
        view = self.view
        fields = [*view["grid"], "seed"]
        return self.client.metrics(view["job_ids"], names, spec=fields)

    def export(self, path: str | Path, file_format: str = "csv", names: Sequence[str] | None = None) -> int:
        """Every job's points in one file with the grid values and seed as columns; see `Client.export`."""
        return self.client.export(path, sweep_id=self.id, file_format=file_format, names=names)

    def cancel(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.client.http.post(f"/v1/sweeps/{self.id}/cancel")
        return answer

    def tag(self, *tags: str, remove: Iterable[str] = (), note: str | None = None) -> dict[str, Any]:
        """As `Job.tag`, for the sweep (its jobs keep their own tags); returns its view."""
        answer: dict[str, Any] = self.client.http.patch(
            f"/v1/sweeps/{self.id}", _labels(self.view, tags, remove, note)
        )
        return answer

    def archive(self, archived: bool = True) -> dict[str, Any]:
        """Leave the sweep and its jobs out of lists unless asked for; returns its view."""
        answer: dict[str, Any] = self.client.http.patch(f"/v1/sweeps/{self.id}", {"archived": archived})
        return answer

    def delete(self) -> None:
        """Delete the sweep with all its jobs and their data; running jobs are cancelled and stopped first."""
        self.client.http.delete(f"/v1/sweeps/{self.id}", timeout=DELETE_TIMEOUT_SECONDS)


def _labels(
    view: Mapping[str, Any], tags: Iterable[str], remove: Iterable[str], note: str | None
) -> dict[str, Any]:
    """The PATCH body that adds `tags` to a job's or sweep's, takes `remove` off and sets `note`."""
    taken_off = set(remove)
    wanted = [name for name in dict.fromkeys([*(view.get("tags") or []), *tags]) if name not in taken_off]
    return {"tags": wanted} | ({} if note is None else {"note": note})


def _named_bytes(path: str | Path) -> tuple[str, bytes]:
    path = Path(path)
    return path.name, path.read_bytes()
