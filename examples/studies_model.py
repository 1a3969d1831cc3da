"""What the studies script works with: a study file (`Study`), a sweep submitted for it (`Submitted`), the
service the report reads (`Service`), and the few ways of writing a figure that every section shares.

A study file holds `about` (title, claim, what to show) and `sweep`, the body of `POST /v1/sweeps`; where
the arms of a study are not one grid's product (noisy BN needs BN, so "none" cannot share its grid), `also`
lists more sweep bodies whose jobs join the same study.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from sweep_client import get_json

FIGURES = "figures"  # next to the report


@dataclass(frozen=True)
class Study:
    """One study file: what it tests and the sweeps that test it (`sweep` first, then `also`)."""

    slug: str
    about: dict[str, Any]
    sweeps: list[dict[str, Any]]

    @property
    def title(self) -> str:
        return str(self.about.get("title", self.slug))

    @property
    def sweep(self) -> dict[str, Any]:
        return self.sweeps[0]


@dataclass
class Submitted:
    """One sweep of a study on the service; `view` is `GET /v1/sweeps/{id}` once it is done."""

    study: Study
    sweep_id: str
    size: int
    view: dict[str, Any] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)


def load_studies(studies_dir: Path, names: Sequence[str]) -> list[Study]:
    """The study files in name order (`1-…` first), or only those asked for."""
    paths = sorted(studies_dir.glob("*.yaml"))
    if names:
        wanted = set(names)
        paths = [path for path in paths if path.stem in wanted]
        missing = wanted - {path.stem for path in paths}
        if missing:
            raise SystemExit(f"no such study: {', '.join(sorted(missing))} (see {studies_dir})")
    studies = []
    for path in paths:
        content = yaml.safe_load(path.read_text())
        sweeps = [content["sweep"], *content.get("also", [])]
        studies.append(Study(path.stem, content.get("about", {}), sweeps))
    return studies


@dataclass(frozen=True)
class Service:
    """The API the report reads, and the folder the report and its figures are written to."""

    client: httpx.Client
    output_dir: Path

    def get(self, path: str, **params: Any) -> Any:
        return get_json(self.client, path, **params)

    def figure(self, path: str, name: str, **params: Any) -> str:
        """Save a PNG from a plot endpoint under figures/; returns its path relative to the report."""
        response = self.client.get(path, params={**params, "format": "png"})
        response.raise_for_status()
        figures = self.output_dir / FIGURES
        figures.mkdir(parents=True, exist_ok=True)
        (figures / name).write_bytes(response.content)
        return f"{FIGURES}/{name}"

    def sweep_jobs(self, sweep_id: str) -> list[dict[str, Any]]:
        """Every job of a sweep with its spec, summary and times (one page: sweeps here are small)."""
        return list(self.get("/v1/jobs", sweep_id=sweep_id, limit=200)["items"])


def stat_text(stat: dict[str, Any] | None, digits: int = 3) -> str:
    """`0.951 [0.938, 0.964]` (mean [95% interval] over seeds), `0.951` for one seed, `—` for none."""
    if not stat or stat.get("mean", stat.get("value")) is None:
        return "—"
    middle = f"{stat.get('mean', stat.get('value')):.{digits}f}"
    interval = stat.get("ci95")
    return middle if not interval else f"{middle} [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"


def value_text(value: Any) -> str:
    """A grid value as a table cell: `on`/`off`, `3 × 100`, `mean_std=0.5, scale_std=0.5`, `null`."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, dict):
        return ", ".join(f"{key}={value_text(item)}" for key, item in value.items())
    if isinstance(value, list):
        return f"{len(value)} × {value[0]}" if value and len(set(value)) == 1 else str(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def number_text(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"
