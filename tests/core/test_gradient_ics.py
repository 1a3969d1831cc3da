"""Santurkar's gradient-based ICS summarised per hidden layer over a run (torch-free): medians over the
probe steps that measured both figures, in layer order, and as flat table columns."""

from __future__ import annotations

import math

import pytest

from core.gradient_ics import LayerICS, ics_columns, ics_summary, layer_ics


def test_the_medians_are_over_the_steps_where_both_figures_are_finite() -> None:
    changes = [None, 0.4, math.nan, 0.1, 0.3, 0.2]
    cosines = [None, 0.6, 0.9, math.inf, 0.8, 0.7]
    # Steps 2 and 3 lose one figure each: the medians are over 0.4, 0.3, 0.2 and 0.6, 0.8, 0.7.
    assert layer_ics(1, changes, cosines) == LayerICS(1, 3, 0.3, 0.7)
    assert layer_ics(2, [0.5, 0.1], [0.2, 0.4]) == LayerICS(2, 2, pytest.approx(0.3), pytest.approx(0.3))


def test_a_layer_never_measured_has_no_medians_and_layers_come_in_order() -> None:
    summary = ics_summary([(2, [None], [None]), (0, [0.0, 0.0], [1.0, 1.0])])
    assert summary == [LayerICS(0, 2, 0.0, 1.0), LayerICS(2, 0, None, None)]
    assert ics_columns(summary) == {
        "ics.layer0.median_gradient_change": 0.0,
        "ics.layer0.median_gradient_cosine": 1.0,
        "ics.layer0.probes": 2,
        "ics.layer2.median_gradient_change": None,
        "ics.layer2.median_gradient_cosine": None,
        "ics.layer2.probes": 0,
    }
    assert ics_columns(None) == {} and ics_summary([]) == []
