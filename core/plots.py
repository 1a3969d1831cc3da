"""The pictures a user comes for, drawn with matplotlib's Agg backend and returned as PNG or SVG bytes:
learning curves of compared jobs with the target line, the internal-covariate-shift bands of the paper's
Fig. 1(b,c), Santurkar et al.'s (2018) gradient-based ICS per layer (their Fig. 3) and loss-landscape probes
(their Fig. 4), and a sweep's heatmap of mean final accuracy. A job is named in them by its normalization
kind (`normalization_label`), never as "BN on/off".

Figures are built as `Figure` objects on their own canvas, never through pyplot's global state, so API
threads can draw at the same time. Missing values (None: the metric was NaN or infinite) become gaps.
"""

from __future__ import annotations

import io
import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from core.sweeps import SweepHeatmap

ImageFormat = Literal["png", "svg"]
CONTENT_TYPES: dict[str, str] = {"png": "image/png", "svg": "image/svg+xml"}
DPI = 100
MISSING_CELL_COLOR = "#d9d9d9"


@dataclass(frozen=True)
class Curve:
    """One job's series in a comparison plot; a diverged job gets a cross where its loss blew up."""

    label: str
    steps: Sequence[int]
    values: Sequence[float | None]
    diverged_at_step: int | None = None


@dataclass(frozen=True)
class IcsPanel:
    """Percentiles of one unit's nonlinearity input over training (one panel of Fig. 1(b,c))."""

    title: str
    steps: Sequence[int]
    p15: Sequence[float | None]
    p50: Sequence[float | None]
    p85: Sequence[float | None]


NORMALIZATION_LABELS = {
    "none": "no normalization",
    "batch": "batch norm",
    "noisy": "noisy BN",
    "layer": "layer norm",
    "group": "group norm",
}
NORMALIZATION_ORDER = tuple(NORMALIZATION_LABELS)  # the paper's order: without normalization first


def normalization_kind(spec: Mapping[str, Any]) -> str:
    """none, batch, noisy (batch norm with `bn_noise`), layer or group; a spec stored before `normalization`
    existed says it by `batch_norm`."""
    kind = spec.get("normalization") or ("batch" if spec.get("batch_norm") else "none")
    return "noisy" if kind == "batch" and spec.get("bn_noise") else str(kind)


def normalization_label(spec: Mapping[str, Any]) -> str:
    """How a picture names a job's normalization: `no normalization`, `batch norm`, `noisy BN (m 0.5, s 1)`
    (its noise's two stds), `layer norm`, `group norm` (with its groups where the spec fixes them)."""
    kind = normalization_kind(spec)
    label = NORMALIZATION_LABELS.get(kind, kind)
    if kind == "noisy":
        noise = spec["bn_noise"]
        return f"{label} (m {noise['mean_std']:g}, s {noise['scale_std']:g})"
    return f"{label} ({spec['groups']} groups)" if kind == "group" and spec.get("groups") else label


def normalization_rank(spec: Mapping[str, Any]) -> int:
    """Where a job goes in a side-by-side picture: none, batch, noisy BN, layer, group."""
    kind = normalization_kind(spec)
    return NORMALIZATION_ORDER.index(kind) if kind in NORMALIZATION_ORDER else len(NORMALIZATION_ORDER)


def compare_curves(
    curves: Sequence[Curve], metric: str, target: float | None, image_format: ImageFormat, title: str = ""
) -> bytes:
    """Every job's curve of `metric` over steps, the target as a dashed line."""
    figure = Figure(figsize=(8, 4.8), dpi=DPI)
    axes = figure.add_subplot()
    for curve in curves:
        (line,) = axes.plot(curve.steps, _as_array(curve.values), label=curve.label, linewidth=1.4)
        if curve.diverged_at_step is not None:
            axes.axvline(curve.diverged_at_step, color=line.get_color(), linestyle=":", linewidth=1)
            axes.plot([], [], color=line.get_color(), linestyle=":", label=f"{curve.label} diverged")
    if target is not None:
        axes.axhline(target, color="black", linestyle="--", linewidth=1, label=f"target {target:g}")
    axes.set_xlabel("step")
    axes.set_ylabel(metric)
    axes.set_title(title or f"{metric} of {len(curves)} job{'s' if len(curves) != 1 else ''}")
    axes.grid(alpha=0.3)
    if curves or target is not None:
        axes.legend(fontsize="small", ncols=2 if len(curves) > 6 else 1)
    return _render(figure, image_format)


def ics_bands(panels: Sequence[IcsPanel], image_format: ImageFormat) -> bytes:
    """The paper's Fig. 1(b,c): a last-hidden-layer unit's input distribution over training as its 15th,
    50th and 85th percentiles, one panel per job side by side in the order given (without normalization
    first, as the paper)."""
    figure = Figure(figsize=(5.2 * max(len(panels), 1), 4.2), dpi=DPI)
    for index, panel in enumerate(panels):
        axes = figure.add_subplot(1, len(panels), index + 1)
        low, middle, high = _as_array(panel.p15), _as_array(panel.p50), _as_array(panel.p85)
        axes.fill_between(panel.steps, low, high, color="tab:blue", alpha=0.2, linewidth=0)
        axes.plot(panel.steps, high, color="tab:blue", linewidth=1, label="85th percentile")
        axes.plot(panel.steps, middle, color="black", linewidth=1.4, label="50th percentile")
        axes.plot(panel.steps, low, color="tab:blue", linewidth=1, linestyle="--", label="15th percentile")
        axes.set_title(panel.title, fontsize="medium")
        axes.set_xlabel("step")
        axes.grid(alpha=0.3)
        if index == 0:
            axes.set_ylabel("input to the unit's nonlinearity")
            axes.legend(fontsize="small")
    return _render(figure, image_format)


@dataclass(frozen=True)
class GradientIcsLayer:
    """Santurkar et al.'s gradient-based ICS of one hidden layer over training: ‖G − G′‖₂ and cos(G, G′),
    G′ being the layer's weight gradient once the layers before it took their step."""

    layer: int
    steps: Sequence[int]
    change: Sequence[float | None]
    cosine: Sequence[float | None]


@dataclass(frozen=True)
class GradientIcsPanel:
    """One job's column of the gradient-ICS picture: every hidden layer's measure."""

    title: str
    layers: Sequence[GradientIcsLayer]


def gradient_ics_panels(panels: Sequence[GradientIcsPanel], image_format: ImageFormat) -> bytes:
    """Santurkar et al.'s Fig. 3 per job, side by side: ‖G − G′‖₂ above (logarithmic where it can be),
    cos(G, G′) below, one line per hidden layer; each row shares its y axis, so the jobs read against each
    other. The first hidden layer is left out where there are others: nothing precedes it, so its change is
    0 and its cosine 1 by definition."""
    columns = max(len(panels), 1)
    figure = Figure(figsize=(5.2 * columns, 6.4), dpi=DPI)  # as wide a column as the Fig. 1 bands: titles fit
    grid = figure.subplots(2, columns, sharex="col", sharey="row", squeeze=False)
    for index, panel in enumerate(panels):
        change_axes, cosine_axes = grid[0][index], grid[1][index]
        shown = [layer for layer in panel.layers if layer.layer > 0] or list(panel.layers)
        for layer in shown:
            label = f"layer {layer.layer}"
            change_axes.plot(layer.steps, _as_array(layer.change), linewidth=1.2, label=label)
            cosine_axes.plot(layer.steps, _as_array(layer.cosine), linewidth=1.2, label=label)
        change_axes.set_title(panel.title, fontsize="medium")
        cosine_axes.set_xlabel("step")
        for axes in (change_axes, cosine_axes):
            axes.grid(alpha=0.3)
        if index == 0:
            change_axes.set_ylabel("‖G − G′‖₂")
            cosine_axes.set_ylabel("cos(G, G′)")
            if shown:
                change_axes.legend(fontsize="small")
    first_row = grid[0][0]
    if panels and all(_only_positive_values(axes) for axes in grid[0]):
        first_row.set_yscale("log")  # shared: every panel of the row
    return _render(figure, image_format)


def _only_positive_values(axes: Axes) -> bool:
    """Whether everything drawn on `axes` is positive where finite, with something to draw (a log scale
    would drop the rest)."""
    values = [
        value
        for line in axes.get_lines()
        for value in np.asarray(line.get_ydata(), dtype=float)
        if np.isfinite(value)
    ]
    return bool(values) and min(values) > 0


@dataclass(frozen=True)
class LandscapeSeries:
    """One job's loss-landscape probes over training: per probe step, the lowest and highest loss along the
    gradient (the band), gradient predictiveness and effective β-smoothness."""

    label: str
    steps: Sequence[int]
    lowest_loss: Sequence[float | None]
    highest_loss: Sequence[float | None]
    gradient_predictiveness: Sequence[float | None]
    beta_smoothness: Sequence[float | None]


LANDSCAPE_COLORS = ("tab:red", "tab:blue", "tab:green", "tab:purple")


LANDSCAPE_LEGEND_COLUMNS = 2  # job names can be long: two to a row keeps the legend within the figure
LEGEND_ROW_FRACTION = 0.055  # of the landscape figure's height, per row of legend entries


def landscape_panels(jobs: Sequence[LandscapeSeries], image_format: ImageFormat) -> bytes:
    """Santurkar et al.'s Fig. 4 in three panels side by side — (a) the band of losses over the step sizes
    probed along the gradient, (b) gradient predictiveness, (c) effective β-smoothness — with every job
    drawn in each (in the order given: without normalization first). Lower is smoother; the y axes are
    logarithmic, because BN and no-BN figures often lie orders of magnitude apart."""
    return _render(landscape_figure(jobs), image_format, laid_out=True)


def landscape_figure(jobs: Sequence[LandscapeSeries]) -> Figure:
    """The three panels of `landscape_panels`, laid out. The legend is the figure's, below the panels, with
    its rows left free by the layout: a legend inside an axes counts in that axes' size, and long job names
    squeezed its panel."""
    figure = Figure(figsize=(15, 4.8), dpi=DPI)
    FigureCanvasAgg(figure)
    loss_axes, predictiveness_axes, beta_axes = (figure.add_subplot(1, 3, index + 1) for index in range(3))
    for job, color in zip(jobs, itertools.cycle(LANDSCAPE_COLORS)):
        low, high = _as_array(job.lowest_loss), _as_array(job.highest_loss)
        loss_axes.fill_between(job.steps, low, high, color=color, alpha=0.3, linewidth=0, label=job.label)
        loss_axes.plot(job.steps, low, color=color, linewidth=0.8)
        loss_axes.plot(job.steps, high, color=color, linewidth=0.8)
        predictiveness_axes.plot(
            job.steps, _as_array(job.gradient_predictiveness), color=color, marker=".", label=job.label
        )
        beta_axes.plot(job.steps, _as_array(job.beta_smoothness), color=color, marker=".", label=job.label)
    titles = (
        ("(a) loss landscape", "loss along the gradient (min to max over η)"),
        ("(b) gradient predictiveness", "max over η of ‖∇L(w − ηg) − g‖"),
        ("(c) effective β-smoothness", "max over η of ‖∇L(w − ηg) − g‖ / (η‖g‖)"),
    )
    for axes, (title, label) in zip((loss_axes, predictiveness_axes, beta_axes), titles, strict=True):
        axes.set_title(title)
        axes.set_xlabel("step")
        axes.set_ylabel(label)
        axes.grid(alpha=0.3)
        if _has_positive_values(axes):
            axes.set_yscale("log")
    legend_rows = 0
    if jobs:
        # Below the panels: inside them it would hide a band wherever it sat.
        columns = min(len(jobs), LANDSCAPE_LEGEND_COLUMNS)
        handles, labels = loss_axes.get_legend_handles_labels()
        figure.legend(handles, labels, fontsize="small", loc="lower center", ncols=columns, frameon=False)
        legend_rows = math.ceil(len(jobs) / columns)
    figure.tight_layout(rect=(0.0, LEGEND_ROW_FRACTION * legend_rows, 1.0, 1.0))
    return figure


def _has_positive_values(axes: Axes) -> bool:
    """Whether anything drawn on `axes` has a finite positive y value (a log scale needs one)."""
    data_limits = axes.dataLim
    return bool(np.isfinite(data_limits.y1) and data_limits.y1 > 0)


def sweep_heatmap(heatmap: SweepHeatmap, image_format: ImageFormat, title: str = "") -> bytes:
    """Mean final accuracy per cell of two grid axes; cells where jobs diverged are hatched and say how
    many, cells without any final accuracy are grey."""
    rows, columns = len(heatmap.y_values), len(heatmap.x_values)
    figure = Figure(figsize=(max(4.5, 1.3 * columns + 2.5), max(2.6, 0.8 * rows + 1.8)), dpi=DPI)
    axes = figure.add_subplot()
    means = np.array(
        [[math.nan if value is None else value for value in row] for row in heatmap.mean_final_accuracy],
        dtype=float,
    ).reshape(rows, columns)
    axes.set_facecolor(MISSING_CELL_COLOR)
    image = axes.imshow(np.ma.masked_invalid(means), cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    figure.colorbar(image, ax=axes, label="mean final val_accuracy")
    for row in range(rows):
        for column in range(columns):
            _annotate_cell(axes, row, column, heatmap, means[row, column])
    axes.set_xticks(range(columns), [_tick(value) for value in heatmap.x_values])
    axes.set_xlabel(heatmap.x_axis)
    if heatmap.y_axis is None:
        axes.set_yticks([])  # one row: nothing to label
    else:
        axes.set_yticks(range(rows), [_tick(value) for value in heatmap.y_values])
        axes.set_ylabel(heatmap.y_axis)
    axes.set_title(title or "mean final accuracy over seeds")
    return _render(figure, image_format)


def _annotate_cell(axes: Axes, row: int, column: int, heatmap: SweepHeatmap, mean: float) -> None:
    diverged, jobs = heatmap.diverged[row][column], heatmap.jobs[row][column]
    lines = [] if math.isnan(mean) else [f"{mean:.3f}"]
    if diverged:
        lines.append(f"✕ {diverged}/{jobs} diverged")
        axes.add_patch(_hatch(row, column))
    elif jobs == 0:
        lines.append("no jobs")
    elif math.isnan(mean):
        lines.append("no result yet")
    # Light text on the dark end of viridis, dark text elsewhere.
    color = "white" if not math.isnan(mean) and mean < 0.6 else "black"
    axes.text(column, row, "\n".join(lines), ha="center", va="center", fontsize="small", color=color)


def _hatch(row: int, column: int) -> Rectangle:
    corner = (column - 0.5, row - 0.5)
    return Rectangle(corner, 1, 1, fill=False, hatch="xx", edgecolor="tab:red", linewidth=0)


def _tick(value: Any) -> str:
    """A grid value as a short axis label; a list of equal widths reads `4×100`."""
    if isinstance(value, list) and value and all(item == value[0] for item in value):
        return f"{len(value)}×{_tick(value[0])}"
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= 24 else text[:21] + "…"


def _as_array(values: Sequence[float | None]) -> np.ndarray:
    """Values as floats with NaN for the missing ones, which matplotlib leaves as gaps."""
    return np.array([math.nan if value is None else value for value in values], dtype=float)


def _render(figure: Figure, image_format: ImageFormat, laid_out: bool = False) -> bytes:
    """The figure's bytes; laid out tightly first unless `laid_out` says it already is."""
    if not laid_out:
        FigureCanvasAgg(figure)
        figure.tight_layout()
    buffer = io.BytesIO()
    # No creation date or software stamp in the file: the same data gives the same PNG bytes.
    metadata = {"Date": None} if image_format == "svg" else {"Software": None}
    figure.savefig(buffer, format=image_format, metadata=metadata)
    return buffer.getvalue()
