"""Santurkar et al.'s gradient-based internal covariate shift, summarised per hidden layer over a run, for
comparisons. Pure and torch-free (the training core measures it: `core.ml.ics`).

At each telemetry step the core stores, per hidden layer, ‖G − G′‖₂ (`ics_gradient_change`) and cos(G, G′)
(`ics_gradient_cosine`), G being the layer's weight gradient and G′ the same gradient once the layers before
it took their step. Santurkar et al. (2018, Fig. 5) read a network as having *more* ICS where ‖G − G′‖₂ is
larger and cos(G, G′) further below 1. A run is summarised per layer by the medians over its probe steps:
robust to the first steps' large gradients and to a few spikes, and a single pass over stored values.

Conventions:
- a probe step counts where both figures are finite (the store keeps NaN and inf as NULL; a job stored
  before the measure existed has NULL in both); `probes` says how many there were;
- the first hidden layer has nothing before it: its change is 0 and its cosine 1 at every probe;
- a job without telemetry (`telemetry_every` 0) has no summary at all (None), one with telemetry but no
  measured probe yet has its layers with `probes` 0 and None medians.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from core.results import finite_or_none

# One hidden layer's stored figures over the probe steps: (layer, changes, cosines), parallel lists.
LayerFigures = tuple[int, Sequence[float | None], Sequence[float | None]]


@dataclass(frozen=True)
class LayerICS:
    """One hidden layer's gradient-based ICS over a run: medians over the `probes` steps that measured it."""

    layer: int
    probes: int
    median_gradient_change: float | None
    median_gradient_cosine: float | None


def layer_ics(layer: int, changes: Sequence[float | None], cosines: Sequence[float | None]) -> LayerICS:
    """The medians of ‖G − G′‖₂ and cos(G, G′) over the probe steps where both are finite numbers."""
    pairs = [
        (change, cosine)
        for raw_change, raw_cosine in zip(changes, cosines, strict=True)
        if (change := finite_or_none(raw_change)) is not None
        and (cosine := finite_or_none(raw_cosine)) is not None
    ]
    if not pairs:
        return LayerICS(layer, 0, None, None)
    return LayerICS(
        layer,
        len(pairs),
        statistics.median(change for change, _ in pairs),
        statistics.median(cosine for _, cosine in pairs),
    )


def ics_summary(layers: Iterable[LayerFigures]) -> list[LayerICS]:
    """Every hidden layer's summary, in layer order."""
    return sorted((layer_ics(*figures) for figures in layers), key=lambda summary: summary.layer)


def ics_columns(summary: Sequence[LayerICS] | None) -> dict[str, float | int | None]:
    """A summary as flat table columns (a CSV export's): `ics.layer<N>.median_gradient_change`,
    `….median_gradient_cosine` and `….probes`, N the API's 0-based layer index; none without telemetry."""
    columns: dict[str, float | int | None] = {}
    for layer in summary or ():
        prefix = f"ics.layer{layer.layer}"
        columns[f"{prefix}.median_gradient_change"] = layer.median_gradient_change
        columns[f"{prefix}.median_gradient_cosine"] = layer.median_gradient_cosine
        columns[f"{prefix}.probes"] = layer.probes
    return columns
