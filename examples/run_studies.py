"""Run the paper-claim studies in `examples/studies/` through bnlab's HTTP API and write a Markdown report.

Each study file holds `about` (title, the claim under test, which axes to plot) and `sweep` (the body of
`POST /v1/sweeps`). The script submits every study, waits with a progress bar per study, then writes
`REPORT.md` into `--output-dir` (by default a new folder under `var/reports/`, so the tracked
`examples/REPORT.md` changes only when asked: `--output-dir examples`) with one table per study (grid points
aggregated over seeds) and PNG figures fetched from the plot endpoints into `figures/` beside it. While it
waits it prints a line whenever a study moves on; a service that is not there is one line, not a traceback.

    python examples/run_studies.py --url http://127.0.0.1:8000            # all four studies
    python examples/run_studies.py --study 1-bn-vs-no-bn --study 3-dropout  # a subset
    python examples/run_studies.py --output-dir examples                  # regenerate examples/REPORT.md
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

EXAMPLES_DIR = Path(__file__).resolve().parent
STUDIES_DIR = EXAMPLES_DIR / "studies"
REPORT = "REPORT.md"
FIGURES = "figures"  # next to the report
TERMINAL_STATUSES = ("succeeded", "failed", "diverged", "cancelled")
POLL_SECONDS = 2.0
EXIT_SERVICE_ERROR = 1

console = Console(stderr=True, soft_wrap=True)  # a line stays one line in a log


@dataclass(frozen=True)
class Study:
    """One study file: what it tests and the sweep that tests it."""

    slug: str
    about: dict[str, Any]
    sweep: dict[str, Any]

    @property
    def title(self) -> str:
        return str(self.about.get("title", self.slug))


@dataclass
class Submitted:
    study: Study
    sweep_id: str
    size: int
    view: dict[str, Any]


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
        studies.append(Study(path.stem, content.get("about", {}), content["sweep"]))
    return studies


def submit(client: httpx.Client, study: Study) -> Submitted:
    response = client.post("/v1/sweeps", json=study.sweep)
    if response.status_code != 201:
        raise SystemExit(
            f"{study.slug}: the service refused the sweep ({response.status_code}): {response.text}"
        )
    created = response.json()
    return Submitted(study, created["id"], created["size"], {})


def wait_for(client: httpx.Client, submitted: list[Submitted], timeout_seconds: float) -> None:
    """Poll every sweep until all its jobs are finished, one progress bar per study."""
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[states]}"),
    )
    deadline = time.monotonic() + timeout_seconds
    with Progress(*columns, TimeElapsedColumn(), console=console) as progress:
        bars = {
            item.sweep_id: progress.add_task(item.study.slug, total=item.size, states="")
            for item in submitted
        }
        pending = list(submitted)
        printed: dict[str, str] = {}
        while pending:
            for item in list(pending):
                item.view = _get(client, f"/v1/sweeps/{item.sweep_id}")
                counts = item.view["status_counts"]
                done = sum(counts.get(status, 0) for status in TERMINAL_STATUSES)
                states = " ".join(f"{status} {count}" for status, count in counts.items() if count)
                progress.update(bars[item.sweep_id], completed=done, states=states)
                line = progress_line(item.study.slug, item.size, done, item.view.get("progress"))
                if line != printed.get(item.sweep_id):  # a line when it moves on, readable in a log too
                    progress.console.print(line, highlight=False)
                    printed[item.sweep_id] = line
                if done >= item.size:
                    pending.remove(item)
            if pending and time.monotonic() > deadline:
                raise SystemExit(f"gave up after {timeout_seconds:.0f} s; still running: {_slugs(pending)}")
            if pending:
                time.sleep(POLL_SECONDS)


def progress_line(slug: str, size: int, done: int, progress: dict[str, Any] | None) -> str:
    """`1-bn-vs-no-bn: 2/6 jobs done, 41% of the steps, about 12 s left` (the sweep's `progress`)."""
    line = f"{slug}: {done}/{size} jobs done"
    if progress and progress.get("steps_total"):
        line += f", {100 * progress['steps_done'] // progress['steps_total']}% of the steps"
        if progress.get("eta_seconds") and done < size:
            line += f", about {progress['eta_seconds']:.0f} s left"
    return line


def unreachable(url: str, error: httpx.TransportError) -> str:
    reason = " ".join(str(error).split()) or type(error).__name__
    return (
        f"error: cannot reach the bnlab service at {url} ({reason}); start it with `make run`, or pass --url"
    )


def default_output_dir() -> Path:
    """A new folder per run under var/reports/ (relative to where the script runs)."""
    return Path("var") / "reports" / f"studies-{time.strftime('%Y%m%d-%H%M%S')}"


def _slugs(items: list[Submitted]) -> str:
    return ", ".join(item.study.slug for item in items)


def _get(client: httpx.Client, path: str, **params: Any) -> Any:
    response = client.get(path, params=params)
    response.raise_for_status()
    return response.json()


@dataclass(frozen=True)
class Service:
    """The API the report reads, and the folder the report and its figures are written to."""

    client: httpx.Client
    output_dir: Path

    def get(self, path: str, **params: Any) -> Any:
        return _get(self.client, path, **params)

    def figure(self, path: str, name: str, **params: Any) -> str:
        """Save a PNG from a plot endpoint under figures/; returns its path relative to the report."""
        response = self.client.get(path, params={**params, "format": "png"})
        response.raise_for_status()
        figures = self.output_dir / FIGURES
        figures.mkdir(parents=True, exist_ok=True)
        (figures / name).write_bytes(response.content)
        return f"{FIGURES}/{name}"


# --- the report -------------------------------------------------------------------------------------


def stat_text(stat: dict[str, Any] | None, digits: int = 3) -> str:
    """`0.951 [0.938, 0.964]` (mean [95% interval] over seeds), `0.951` for one seed, `—` for none."""
    if not stat or stat.get("mean", stat.get("value")) is None:
        return "—"
    middle = f"{stat.get('mean', stat.get('value')):.{digits}f}"
    interval = stat.get("ci95")
    return middle if not interval else f"{middle} [{interval[0]:.{digits}f}, {interval[1]:.{digits}f}]"


def value_text(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return f"{len(value)} × {value[0]}" if value and len(set(value)) == 1 else str(value)
    return f"{value:g}" if isinstance(value, float) else str(value)


def points_table(view: dict[str, Any]) -> list[str]:
    """One row per grid point: its values, how its seeds ended, and the figures aggregated over them."""
    axes = list(view["grid"])
    header = [*axes, "jobs", "diverged", "final val acc", "best val acc", "steps to target", "reached"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for row in view["points"]:
        cells = [value_text(row["point"][axis]) for axis in axes]
        cells += [
            str(len(row["job_ids"])),
            str(row["diverged"]),
            stat_text(row["final_accuracy"]),
            stat_text(row["best_accuracy"]),
            stat_text(row["steps_to_target"], digits=0),
            f"{row['reached_target']}/{len(row['job_ids'])}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def jobs_at(view: dict[str, Any], axis: str, value: Any) -> list[str]:
    """Job ids of every grid point whose `axis` has `value`, in seed order."""
    return [job_id for row in view["points"] if row["point"].get(axis) == value for job_id in row["job_ids"]]


def comparison_section(service: Service, item: Submitted) -> list[str]:
    """Seed by seed, the study's two settings side by side: steps to target and the speedup."""
    settings = item.study.about["compare"]
    axis, baseline_value = settings["by"], settings["baseline"]
    baselines = jobs_at(item.view, axis, baseline_value)
    others = [job_id for job_id in item.view["job_ids"] if job_id not in baselines]
    lines = [
        f"Seed by seed against the `{axis}={value_text(baseline_value)}` run of the same seed "
        f"(target {settings['target']} on {settings['metric']}; `≥` marks a lower bound: the baseline "
        "never got there, so its whole step budget is used):",
        "",
        "| seed | job | steps to target | seconds to target | speedup | final | best |",
        "|---|---|---|---|---|---|---|",
    ]
    figure = ""
    for seed_index, (baseline, other) in enumerate(zip(baselines, others, strict=False)):
        params = {
            "ids": [baseline, other],
            "baseline": baseline,
            "metric": settings["metric"],
            "target": settings["target"],
            "max_points": 500,
        }
        comparison = service.get("/v1/compare", **params)
        for row in sorted(comparison["jobs"], key=lambda job: job["id"] != baseline):
            diff = ", ".join(f"{field}={value_text(value)}" for field, value in row["spec_diff"].items())
            speedup = row.get("speedup_vs_baseline")
            speedup_text = (
                "—"
                if speedup is None
                else f"{'≥ ' if row.get('speedup_is_lower_bound') else ''}{speedup:.1f}×"
            )
            lines.append(
                f"| {seed_index} | {diff} | {row['steps_to_target'] or 'never'} | "
                f"{_number(row.get('seconds_to_target'), 2)} | {speedup_text} | "
                f"{_number(row['final'], 3)} | {_number(row['best'], 3)} |"
            )
        if seed_index == 0:
            name = f"{item.study.slug}-curves.png"
            figure = service.figure("/v1/compare/plot", name, **params)
    return [*lines, "", f"![learning curves, seed 0]({figure})", ""] if figure else lines


def arms_table(tuned: dict[str, Any]) -> list[str]:
    """Arms as the service compares them (a sweep's `tuned`, a comparison's `arms`): a row per arm with its
    chosen setting, figures with intervals, speedup and difference against the baseline arm, then the
    verdicts those intervals allow."""
    lines = [
        "| arm | chosen | seeds | final val acc | steps to target | speedup | final − baseline |",
        "|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for arm in tuned["arms"]:
        label = f"{tuned['arm']}={value_text(arm['value'])}"
        chosen = ", ".join(f"{axis}={value_text(value)}" for axis, value in arm["chosen"].items()) or "—"
        speedup, difference = arm["speedup_vs_baseline"], arm["final_accuracy_vs_baseline"]
        bound = "≥ " if speedup and speedup["is_lower_bound"] else ""
        lines.append(
            f"| {label} | {chosen} (by {arm['chosen_by'].replace('_', ' ')}) | {len(arm['seeds'])} | "
            f"{stat_text(arm['final_accuracy'])} | {stat_text(arm['steps_to_target'], digits=0)} | "
            f"{bound + stat_text(speedup['estimate'], digits=1) + '×' if speedup else '—'} | "
            f"{stat_text(difference['difference']) if difference else '—'} |"
        )
        if speedup:
            verdicts.append(f"- {label}, steps to target: {speedup['verdict']}.")
        if difference:
            verdicts.append(f"- {label}, final accuracy: {difference['verdict']}.")
    return [*lines, "", *verdicts, ""]


def tuned_section(service: Service, item: Submitted) -> list[str]:
    """The arms compared at their tuned best (`GET /v1/sweeps/{id}?arm=…&tune=…`)."""
    settings = item.study.about["tuned"]
    params: dict[str, Any] = {"arm": settings["arm"], "tune": settings.get("tune", [])}
    if "baseline" in settings:
        params["baseline"] = json.dumps(settings["baseline"])  # a JSON value of the arm, e.g. false
    tuned = service.get(f"/v1/sweeps/{item.sweep_id}", **params)["tuned"]
    tuned_axes = ", ".join(tuned["tune"]) or "setting"
    return [
        f"Each `{tuned['arm']}` arm at its best {tuned_axes} ({tuned['criterion']}), "
        f"against `{tuned['arm']}={value_text(tuned['baseline'])}`:",
        "",
        *arms_table(tuned),
    ]


def arms_section(service: Service, item: Submitted) -> list[str]:
    """For each value of the `by` axis, its jobs compared as arms of `arm` against the `baseline` arm over
    matched seeds (`GET /v1/compare?arm=…`): does dropout change BN's accuracy, does BN help at each depth."""
    settings = item.study.about["arms"]
    arm, by, baseline = settings["arm"], settings["by"], settings["baseline"]
    lines = []
    for by_value in item.study.sweep["grid"][by]:
        points = [point for point in item.view["points"] if point["point"][by] == by_value]
        ids = [job_id for point in points for job_id in point["job_ids"]]
        baseline_id = next(
            job_id for point in points if point["point"][arm] == baseline for job_id in point["job_ids"]
        )
        arms = service.get("/v1/compare", ids=ids, baseline=baseline_id, arm=arm, max_points=10)["arms"]
        lines += [
            f"At `{by}={value_text(by_value)}`, each `{arm}` against `{arm}={value_text(baseline)}`, "
            "seed by seed:",
            "",
            *arms_table(arms),
        ]
    return lines


def ics_section(service: Service, item: Submitted) -> list[str]:
    """The paper's Fig. 1(b,c): a last-layer sigmoid's input percentiles, without and with BN (seed 0)."""
    axis = item.study.about["ics"]["by"]
    without, with_ = jobs_at(item.view, axis, False), jobs_at(item.view, axis, True)
    if not without or not with_:
        return []
    name = f"{item.study.slug}-ics.png"
    figure = service.figure(f"/v1/jobs/{without[0]}/plots/ics", name, compare_with=with_[0])
    return [
        "Internal covariate shift (the paper's Fig. 1(b,c)): the 15th, 50th and 85th percentiles of one "
        "last-hidden-layer sigmoid's input over training, without BN (left) and with BN (right), seed 0:",
        "",
        f"![internal covariate shift]({figure})",
        "",
    ]


def setup_text(item: Submitted) -> str:
    """The sweep in one sentence: the base net and schedule, the grid, the seeds, how it was executed."""
    sweep = item.study.sweep
    base, architecture = sweep["base"], sweep["base"]["architecture"]
    grid = " and ".join(f"`{axis}` ({len(values)} values)" for axis, values in sweep["grid"].items())
    seeds = sweep.get("seeds", [base.get("seed", 0)])
    widths = value_text(architecture["hidden"])
    return (
        f"`studies/{item.study.slug}.yaml`. Base spec: {base['dataset']}, {widths} "
        f"{architecture['activation']} MLP, {base['optimizer']} at learning rate {base['learning_rate']}, "
        f"batch {base['batch_size']}, {base['steps']} steps, evaluated every {base['eval_every']}, target "
        f"{base.get('target_accuracy')}. The grid sets {grid}; seeds {seeds}: {item.size} jobs "
        f"({item.view['execution']['note']})."
    )


def study_section(service: Service, item: Submitted) -> list[str]:
    about = item.study.about
    lines = [
        f"## {item.study.title}",
        "",
        f"**Claim.** {about.get('claim', '').strip()}",
        "",
        f"**Setup.** {setup_text(item)}",
        "",
        *points_table(item.view),
        "",
        "Steps to target are resolved to the evaluation interval; means are over the seeds that have the "
        "figure (a diverged run has no final accuracy, a run that never got there no steps).",
        "",
    ]
    heatmap = about.get("heatmap")
    if heatmap:
        params = {"x": heatmap["x"], **({"y": heatmap["y"]} if heatmap.get("y") else {})}
        figure = service.figure(
            f"/v1/sweeps/{item.sweep_id}/plots/heatmap", f"{item.study.slug}-heatmap.png", **params
        )
        lines += [f"![mean final accuracy]({figure})", ""]
    if "tuned" in about:
        lines += tuned_section(service, item)
    if "arms" in about:
        lines += arms_section(service, item)
    if "compare" in about:
        lines += comparison_section(service, item)
    if "ics" in about:
        lines += ics_section(service, item)
    return lines


def _number(value: float | None, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def write_report(service: Service, submitted: list[Submitted], url: str, elapsed_seconds: float) -> Path:
    lines = [
        "# What bnlab shows about batch normalization",
        "",
        "Generated by `python examples/run_studies.py` against a bnlab service; every figure below was "
        f"measured by that run ({sum(item.size for item in submitted)} jobs in {elapsed_seconds:.0f} s). "
        "Regenerate with `make run` in one terminal and `.venv/bin/python examples/run_studies.py "
        "--url http://127.0.0.1:8000` in another.",
        "",
        "Every figure over seeds reads `mean [low, high]`: the mean over the seeds that have the figure and "
        "its 95% confidence interval (Student t, n − 1 degrees of freedom; none for a single seed). A "
        "speedup of one arm over another is a ratio of mean steps to target with a 95% percentile-bootstrap "
        "interval over paired seeds, `≥` where the baseline never reached the target (its steps run were "
        "used). A verdict is stated only where its interval excludes no difference; otherwise the report "
        "says `no detectable difference at n = …`.",
        "",
    ]
    for item in submitted:
        lines += study_section(service, item)
    report = service.output_dir / REPORT
    report.write_text("\n".join(lines))
    console.print(f"wrote {report} (served by {url})")
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the bnlab API")
    parser.add_argument("--study", action="append", default=[], help="a study file's name (repeatable)")
    parser.add_argument("--api-key", default=None, help="sent as a bearer token when the API requires one")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds to wait for all studies")
    parser.add_argument("--studies-dir", type=Path, default=STUDIES_DIR, help="where the study files are")
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help=f"where {REPORT} and figures/ are written (default: a new folder under var/reports/; "
        "`examples` regenerates the tracked report)",
    )
    arguments = parser.parse_args(argv)

    headers = {"Authorization": f"Bearer {arguments.api_key}"} if arguments.api_key else {}
    studies = load_studies(arguments.studies_dir, arguments.study)
    output_dir = arguments.output_dir or default_output_dir()
    started = time.monotonic()
    try:
        with httpx.Client(base_url=arguments.url, headers=headers, timeout=60.0) as client:
            submitted = [submit(client, study) for study in studies]
            for item in submitted:
                console.print(f"submitted {item.study.slug}: sweep {item.sweep_id}, {item.size} jobs")
            wait_for(client, submitted, arguments.timeout)
            output_dir.mkdir(parents=True, exist_ok=True)
            write_report(Service(client, output_dir), submitted, arguments.url, time.monotonic() - started)
    except httpx.TransportError as error:
        console.print(unreachable(arguments.url, error), highlight=False)
        return EXIT_SERVICE_ERROR
    except httpx.HTTPStatusError as error:
        console.print(
            f"error: {error.request.method} {error.request.url.path} answered "
            f"{error.response.status_code}: {error.response.text[:200]}",
            highlight=False,
        )
        return EXIT_SERVICE_ERROR
    return 0


if __name__ == "__main__":
    sys.exit(main())
