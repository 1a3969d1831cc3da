"""Pictures, each as PNG or SVG (`format=`): compared learning curves with the target line; a job's
internal-covariate-shift bands (paper Fig. 1(b,c)), gradient-based ICS and loss landscape (Santurkar et al.
2018, Figs. 3 and 4), each beside the jobs named by `compare_with`; and a sweep's heatmap of mean final
accuracy. Jobs are named by their normalization kind (none, batch, noisy BN, layer, group), drawn in that
order.

Drawing is CPU work in a plain `def` route, so it runs in FastAPI's thread pool and never blocks the loop.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from pydantic import StringConstraints

from api.compare.loading import ComparisonDep, load_jobs
from api.dependencies import JobDep, StoreDep
from api.errors import DATABASE_DOWN, query_error
from api.schemas import ErrorOut
from api.sweeps.service import get_sweep_or_404, sweep_outcomes
from core.plots import (
    CONTENT_TYPES,
    Curve,
    GradientIcsLayer,
    GradientIcsPanel,
    IcsPanel,
    LandscapeSeries,
    compare_curves,
    gradient_ics_panels,
    ics_bands,
    landscape_panels,
    normalization_label,
    normalization_rank,
    sweep_heatmap,
)
from core.store import JobView, LandscapeView, StoreInterface
from core.sweeps import heatmap

router = APIRouter(prefix="/v1", tags=["plots"])

ImageFormatQuery = Annotated[Literal["png", "svg"], Query(alias="format", description="png or svg")]
IMAGE: dict[int | str, dict[str, Any]] = {
    200: {
        "content": {content_type: {} for content_type in CONTENT_TYPES.values()},
        "description": "the image, PNG or SVG as asked",
    },
    **DATABASE_DOWN,
}
LABEL_LENGTH = 60
MAX_COMPARED = 5  # jobs beside the one in the path: six panels side by side at most


def job_plot_route(path: str, summary: str, recorded: str) -> Any:
    """The route decorator of a job's picture at `/jobs/{job_id}/plots/<path>`: PNG or SVG, a 404 when the
    job does not exist or recorded no `recorded`."""
    return router.get(
        f"/jobs/{{job_id}}/plots/{path}",
        response_class=Response,
        summary=summary,
        responses={
            **IMAGE,
            404: {"model": ErrorOut, "description": f"no such job, or it recorded no {recorded}"},
        },
    )


def compare_with_query(description: str) -> Any:
    return Query(max_length=MAX_COMPARED, description=f"{description} (repeatable, at most {MAX_COMPARED})")


JobIdText = Annotated[str, StringConstraints(max_length=64)]
CompareWith = Annotated[
    list[JobIdText] | None,
    compare_with_query("jobs drawn beside it, ordered by normalization: none, batch, noisy BN, layer, group"),
]


def by_normalization(store: StoreInterface, job: JobView, compare_with: list[str] | None) -> list[JobView]:
    """The job and those to draw beside it, ordered by normalization kind — none first, as the paper draws
    no BN left of BN — and otherwise as asked."""
    jobs = [job] if not compare_with else load_jobs(store, [job.id, *compare_with])
    return sorted(jobs, key=lambda shown: normalization_rank(shown.spec))


def image_response(content: bytes, image_format: str) -> Response:
    return Response(content=content, media_type=CONTENT_TYPES[image_format])


def nothing_recorded(job: JobView, what: str, interval_field: str) -> HTTPException:
    """The 404 of a picture of `what` the job has not recorded: its spec turned it off (`interval_field`
    is 0), or no probe step has come yet."""
    reason = f"its {interval_field} is 0" if not job.spec.get(interval_field) else "none recorded yet"
    return HTTPException(status.HTTP_404_NOT_FOUND, detail=f"job {job.id} has no {what} ({reason})")


@router.get(
    "/compare/plot",
    response_class=Response,
    summary="Learning curves of compared jobs with the target as a dashed line",
    responses={**IMAGE, 404: {"model": ErrorOut, "description": "one or more ids name no job"}},
)
def compare_plot(comparison: ComparisonDep, image_format: ImageFormatQuery = "png") -> Response:
    curves = []
    for row in comparison.rows:
        # A named job reads by its name (a sweep names each job by its grid point), others by what differs.
        difference = ", ".join(f"{field}={value}" for field, value in row.spec_diff.items())
        label = row.name or (f"{row.id[:8]} ({difference})" if difference else row.id[:8])
        series = comparison.series[row.id]
        curves.append(Curve(_shorten(label), series.steps, series.values, row.diverged_at_step))
    image = compare_curves(curves, comparison.metric, comparison.target, image_format)
    return image_response(image, image_format)


@job_plot_route(
    "ics", "Internal covariate shift: a last-hidden-layer unit's input percentiles over training", "telemetry"
)
def ics_plot(
    job: JobDep,
    store: StoreDep,
    compare_with: CompareWith = None,
    image_format: ImageFormatQuery = "png",
) -> Response:
    """The paper's Fig. 1(b,c): the 15th, 50th and 85th percentiles of one fixed unit's input to its
    nonlinearity in the last hidden layer, over training, a panel per job (without normalization left, as
    in Fig. 1). Needs jobs run with `telemetry_every` > 0."""
    jobs = by_normalization(store, job, compare_with)
    return image_response(ics_bands([_ics_panel(store, shown) for shown in jobs], image_format), image_format)


def _ics_panel(store: StoreInterface, job: JobView) -> IcsPanel:
    layers = store.read_telemetry(job.id)
    if not layers:
        raise nothing_recorded(job, "telemetry", "telemetry_every")
    last = max(layers, key=lambda layer: layer.layer)
    title = _shorten(f"{_panel_name(job)}, layer {last.layer}")
    return IcsPanel(title, last.steps, last.unit_p15, last.unit_p50, last.unit_p85)


@job_plot_route(
    "ics-gradient",
    "Gradient-based internal covariate shift per layer over training (Santurkar Fig. 3)",
    "gradient-based ICS",
)
def ics_gradient_plot(
    job: JobDep,
    store: StoreDep,
    compare_with: CompareWith = None,
    image_format: ImageFormatQuery = "png",
) -> Response:
    """Santurkar et al.'s measure of internal covariate shift: for each hidden layer, how much its weight
    gradient G changes once the layers before it have taken their step (G′) — ‖G − G′‖₂ above, cos(G, G′)
    below — over training, a column per job (without normalization first). The first hidden layer is left
    out beside deeper ones (nothing precedes it). Needs jobs run with `telemetry_every` > 0."""
    jobs = by_normalization(store, job, compare_with)
    panels = [_gradient_ics_panel(store, shown) for shown in jobs]
    return image_response(gradient_ics_panels(panels, image_format), image_format)


def _gradient_ics_panel(store: StoreInterface, job: JobView) -> GradientIcsPanel:
    layers = store.read_telemetry(job.id)
    if not layers:
        raise nothing_recorded(job, "gradient-based ICS", "telemetry_every")
    if all(value is None for layer in layers for value in layer.ics_gradient_change):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail=f"job {job.id} has no gradient-based ICS (its telemetry was recorded without it)",
        )
    title = _shorten(_panel_name(job))
    shown = [
        GradientIcsLayer(layer.layer, layer.steps, layer.ics_gradient_change, layer.ics_gradient_cosine)
        for layer in sorted(layers, key=lambda layer: layer.layer)
    ]
    return GradientIcsPanel(title, shown)


@job_plot_route(
    "landscape",
    "Loss landscape, gradient predictiveness and β-smoothness over training (Santurkar Fig. 4)",
    "landscape probes",
)
def landscape_plot(
    job: JobDep,
    store: StoreDep,
    compare_with: CompareWith = None,
    image_format: ImageFormatQuery = "png",
) -> Response:
    """Three panels side by side, as in Santurkar et al.'s Fig. 4: (a) the band of losses over the step
    sizes probed along the gradient at each probe step, (b) gradient predictiveness, (c) effective
    β-smoothness; lower is smoother. Needs jobs run with `landscape_every` > 0."""
    series = [_landscape_series(store, shown) for shown in by_normalization(store, job, compare_with)]
    return image_response(landscape_panels(series, image_format), image_format)


def _landscape_series(store: StoreInterface, job: JobView) -> LandscapeSeries:
    probes = store.read_landscape(job.id)
    if not probes:
        raise nothing_recorded(job, "landscape probes", "landscape_every")
    return LandscapeSeries(
        label=_label(job),
        steps=[probe.step for probe in probes],
        lowest_loss=[_lowest(probe) for probe in probes],
        highest_loss=[_highest(probe) for probe in probes],
        gradient_predictiveness=[probe.gradient_predictiveness for probe in probes],
        beta_smoothness=[probe.beta_smoothness for probe in probes],
    )


def _panel_name(job: JobView) -> str:
    """A panel's title: the job's normalization and seed first (what sets it apart, never cut off), then
    its name or id."""
    return f"{normalization_label(job.spec)}, seed {job.spec.get('seed', 0)}: {job.name or job.id[:8]}"


def _label(job: JobView) -> str:
    """What sets a job apart in these pictures: normalization, activation, learning rate, seed; its name
    when short."""
    spec = job.spec
    label = (
        f"{normalization_label(spec)}, {spec['architecture']['activation']}, "
        f"lr {spec['learning_rate']:g}, seed {spec['seed']}"
    )
    return f"{label}: {job.name}" if job.name and len(label) + len(job.name) + 2 <= LABEL_LENGTH else label


def _lowest(probe: LandscapeView) -> float | None:
    finite = [loss for loss in probe.losses if loss is not None]
    return min(finite) if finite else None


def _highest(probe: LandscapeView) -> float | None:
    """None when a loss along the way was not finite: the band has no top there."""
    if not probe.losses or any(loss is None for loss in probe.losses):
        return None
    return max(loss for loss in probe.losses if loss is not None)


@router.get(
    "/sweeps/{sweep_id}/plots/heatmap",
    response_class=Response,
    summary="Mean final accuracy over two grid axes; cells where jobs diverged are marked",
    responses={
        **IMAGE,
        404: {"model": ErrorOut, "description": "no sweep with this id"},
        409: {"model": ErrorOut, "description": "the sweep has no grid axis to plot"},
    },
)
def heatmap_plot(
    store: StoreDep,
    sweep_id: Annotated[str, Path(max_length=64)],
    x: Annotated[
        str | None, Query(max_length=64, description="grid axis across (default: the first)")
    ] = None,
    y: Annotated[str | None, Query(max_length=64, description="grid axis down (default: the second)")] = None,
    image_format: ImageFormatQuery = "png",
) -> Response:
    sweep = get_sweep_or_404(store, sweep_id)
    axes = list(sweep.grid)
    if not axes:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"sweep {sweep.id} has no grid axis to plot")
    x_axis = x or axes[0]
    y_axis = y or next((axis for axis in axes if axis != x_axis), None)
    for name, axis in (("x", x_axis), ("y", y_axis)):
        if axis is not None and axis not in axes:
            raise query_error(name, axis, f"not a grid axis of this sweep (axes: {', '.join(axes)})")
    if x_axis == y_axis:
        raise query_error("y", y_axis, "must differ from x")
    cells = heatmap(sweep_outcomes(store, sweep.id), x_axis, y_axis)
    title = _shorten(f"{sweep.name or sweep.id[:8]}: mean final accuracy over seeds")
    return image_response(sweep_heatmap(cells, image_format, title), image_format)


def _shorten(text: str) -> str:
    return text if len(text) <= LABEL_LENGTH else text[: LABEL_LENGTH - 1] + "…"
