"""Plots come back as real images: PNG bytes that decode to pixels, SVG that parses as XML."""

from __future__ import annotations

import io
import math
import xml.etree.ElementTree as ElementTree

import matplotlib.image
import numpy as np
import pytest

from core.plots import (
    CONTENT_TYPES,
    DPI,
    Curve,
    GradientIcsLayer,
    GradientIcsPanel,
    IcsPanel,
    LandscapeSeries,
    compare_curves,
    gradient_ics_panels,
    ics_bands,
    landscape_figure,
    landscape_panels,
    normalization_label,
    normalization_rank,
    sweep_heatmap,
)
from core.sweeps import SweepHeatmap

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SVG_NAMESPACE = "{http://www.w3.org/2000/svg}"


def decode_png(data: bytes) -> np.ndarray:
    assert data.startswith(PNG_SIGNATURE)
    pixels = matplotlib.image.imread(io.BytesIO(data), format="png")
    assert isinstance(pixels, np.ndarray)
    return pixels


def svg_text(data: bytes) -> str:
    root = ElementTree.fromstring(data)
    assert root.tag == f"{SVG_NAMESPACE}svg"
    return data.decode()


CURVES = [
    Curve("no BN", [0, 10, 20, 30], [0.1, 0.3, 0.45, 0.5]),
    Curve("BN", [0, 10, 20, 30], [0.1, 0.7, 0.92, 0.95]),
    Curve("BN lr 10", [0, 10, 20, 30], [0.1, 0.2, None, None], diverged_at_step=20),
]
STEPS = list(range(0, 1000, 50))
PANELS = [
    IcsPanel(
        "without BN", STEPS, [-3 + 0.1 * i for i in range(20)], [0.05 * i for i in range(20)], [3.0] * 20
    ),
    IcsPanel("with BN", STEPS, [-1.0] * 20, [0.0] * 20, [1.0] * 20),
]
HEATMAP = SweepHeatmap(
    x_axis="learning_rate",
    y_axis="batch_norm",
    x_values=[0.01, 0.1, 1.0],
    y_values=[True, False],
    mean_final_accuracy=[[0.9, 0.97, 0.5], [0.3, 0.6, None]],
    diverged=[[0, 0, 1], [0, 0, 3]],
    jobs=[[3, 3, 3], [3, 3, 3]],
)


def test_content_types_cover_both_formats() -> None:
    assert CONTENT_TYPES == {"png": "image/png", "svg": "image/svg+xml"}


def test_compare_curves_png_decodes_to_an_rgba_image_of_the_figure_size() -> None:
    pixels = decode_png(compare_curves(CURVES, "val_accuracy", 0.9, "png"))
    assert pixels.shape == (int(4.8 * DPI), 8 * DPI, 4)
    assert pixels[..., :3].std() > 0  # not a blank canvas


def test_compare_curves_svg_names_every_job_and_the_target() -> None:
    text = svg_text(compare_curves(CURVES, "val_accuracy", 0.9, "svg"))
    # Matplotlib writes text as glyph paths but keeps each string in a comment.
    for label in ("no BN", "BN lr 10 diverged", "target 0.9", "val_accuracy"):
        assert label in text


def test_the_target_line_is_dashed_and_only_drawn_with_a_target() -> None:
    with_target = svg_text(compare_curves(CURVES, "val_accuracy", 0.9, "svg"))
    without_target = svg_text(compare_curves(CURVES, "val_accuracy", None, "svg"))
    assert "target 0.9" in with_target and "target" not in without_target
    assert with_target.count("stroke-dasharray") > without_target.count("stroke-dasharray")


def test_plots_of_nothing_still_render() -> None:
    decode_png(compare_curves([], "val_accuracy", None, "png"))
    decode_png(compare_curves([Curve("all nan", [0, 10], [math.nan, None])], "val_loss", None, "png"))


def test_ics_bands_put_two_jobs_side_by_side() -> None:
    one = decode_png(ics_bands(PANELS[:1], "png"))
    two = decode_png(ics_bands(PANELS, "png"))
    assert two.shape[0] == one.shape[0]
    assert two.shape[1] == pytest.approx(2 * one.shape[1], rel=0.01)
    text = svg_text(ics_bands(PANELS, "svg"))
    for label in ("without BN", "with BN", "15th percentile", "50th percentile", "85th percentile"):
        assert label in text


def test_heatmap_marks_diverged_cells_and_renders_both_formats() -> None:
    pixels = decode_png(sweep_heatmap(HEATMAP, "png"))
    assert pixels.ndim == 3 and pixels.shape[2] == 4
    text = svg_text(sweep_heatmap(HEATMAP, "svg"))
    assert "1/3 diverged" in text and "3/3 diverged" in text
    assert "0.970" in text and "learning_rate" in text


def test_heatmap_of_a_single_axis_sweep() -> None:
    one_row = SweepHeatmap("dropout", None, [0.0, 0.5], [None], [[0.9, 0.8]], [[0, 0]], [[2, 2]])
    decode_png(sweep_heatmap(one_row, "png"))
    text = svg_text(sweep_heatmap(one_row, "svg"))
    assert "dropout" in text and "null" not in text  # the single row carries no label


def test_list_valued_axes_get_short_labels() -> None:
    depth = SweepHeatmap(
        "architecture.hidden",
        None,
        [[100] * 2, [100] * 6, [50, 10]],
        [None],
        [[0.9, 0.8, 0.7]],
        [[0, 0, 0]],
        [[1, 1, 1]],
    )
    text = svg_text(sweep_heatmap(depth, "svg"))
    assert "2×100" in text and "6×100" in text and "[50,10]" in text


def test_same_data_gives_the_same_png_bytes() -> None:
    assert sweep_heatmap(HEATMAP, "png") == sweep_heatmap(HEATMAP, "png")
    assert compare_curves(CURVES, "val_accuracy", 0.9, "png") == compare_curves(
        CURVES, "val_accuracy", 0.9, "png"
    )


def landscape_series(label: str, scale: float) -> LandscapeSeries:
    steps = [0, 50, 100, 150]
    return LandscapeSeries(
        label=label,
        steps=steps,
        lowest_loss=[scale * 0.5, scale * 0.4, scale * 0.3, scale * 0.2],
        highest_loss=[scale * 2.0, scale * 1.5, scale * 1.2, scale * 1.0],
        gradient_predictiveness=[scale, scale * 0.8, scale * 0.6, scale * 0.5],
        beta_smoothness=[scale * 3, scale * 2, scale * 2, scale],
    )


def test_landscape_panels_keep_their_width_whatever_the_job_names() -> None:
    long_names = [
        landscape_series(
            "digits sigmoid 3x100 without batch norm, learning rate 0.5, seed 0 (ab12cd34)", 10.0
        ),
        landscape_series("digits sigmoid 3x100 with batch norm, learning rate 0.5, seed 0 (ef56ab78)", 1.0),
        landscape_series("digits relu 3x100 with batch norm, learning rate 1.0, seed 1 (0123abcd)", 2.0),
    ]
    widths = {
        name: [axes.get_position().width for axes in landscape_figure(series).axes]
        for name, series in {"short": [landscape_series("BN", 1.0)], "long": long_names}.items()
    }
    for width in widths["long"]:
        assert width == pytest.approx(widths["long"][0], rel=0.05), "the three panels are alike"
        assert width == pytest.approx(widths["short"][0], rel=0.1), "long names do not squeeze a panel"
    figure = landscape_figure(long_names)
    [legend] = figure.legends
    legend_box = legend.get_window_extent()
    assert legend_box.x0 >= 0 and legend_box.x1 <= figure.bbox.width, "the legend fits in the figure"
    panels_bottom = min(axes.get_tightbbox().y0 for axes in figure.axes)
    assert legend_box.y1 <= panels_bottom + 1, "the legend sits below the panels, over none of them"
    assert decode_png(landscape_panels(long_names, "png")).shape[:2] == (round(4.8 * DPI), 15 * DPI)


def gradient_panel(title: str, change: float) -> GradientIcsPanel:
    steps = list(range(0, 200, 20))
    layers = [
        GradientIcsLayer(layer, steps, [layer * change] * 10, [1 - layer * change / 10] * 10)
        for layer in range(3)
    ]
    return GradientIcsPanel(title, layers)


def test_gradient_ics_panels_put_a_column_per_job_and_scale_the_change_logarithmically() -> None:
    one = decode_png(gradient_ics_panels([gradient_panel("no normalization", 1.0)], "png"))
    three = decode_png(gradient_ics_panels([gradient_panel(name, 0.1) for name in ("a", "b", "c")], "png"))
    assert three.shape[0] == one.shape[0]
    assert three.shape[1] == pytest.approx(3 * one.shape[1], rel=0.01)
    text = svg_text(gradient_ics_panels([gradient_panel("batch norm", 0.01)], "svg"))
    assert "layer 1" in text and "layer 2" in text and "layer 0" not in text
    assert "10^{-2}" in text  # a logarithmic axis: its ticks are powers of ten
    decode_png(gradient_ics_panels([], "png"))  # nothing to draw still renders


@pytest.mark.parametrize(
    ("spec", "label"),
    [
        ({"normalization": "none", "batch_norm": False}, "no normalization"),
        ({"batch_norm": False}, "no normalization"),  # stored before `normalization`
        ({"batch_norm": True}, "batch norm"),
        (
            {"normalization": "batch", "bn_noise": {"mean_std": 0.5, "scale_std": 1.0}},
            "noisy BN (m 0.5, s 1)",
        ),
        ({"normalization": "layer"}, "layer norm"),
        ({"normalization": "group", "groups": None}, "group norm"),
        ({"normalization": "group", "groups": 4}, "group norm (4 groups)"),
    ],
)
def test_a_job_is_named_by_its_normalization_kind(spec: dict, label: str) -> None:
    assert normalization_label(spec) == label


def test_jobs_are_ordered_none_batch_noisy_layer_group() -> None:
    specs = [
        {"normalization": "group"},
        {"normalization": "layer"},
        {"normalization": "batch", "bn_noise": {"mean_std": 1.0, "scale_std": 1.0}},
        {"batch_norm": True},
        {"normalization": "none"},
    ]
    assert [normalization_rank(spec) for spec in specs] == [4, 3, 2, 1, 0]
