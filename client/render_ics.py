"""The gradient-based ICS part of `bnlab compare`: per job and hidden layer, the medians over the job's
telemetry steps of Santurkar et al.'s ‖G − G′‖₂ and cos(G, G′), as the service summarises them."""

from __future__ import annotations

from typing import Any

from rich.table import Table

from client.render import number, visible_strings


def has_ics(comparison: dict[str, Any]) -> bool:
    """Whether any compared job was run with telemetry and measured something."""
    return any(row.get("ics") for row in comparison.get("jobs", []))


def ics_table(comparison: dict[str, Any]) -> Table:
    """One line per job and hidden layer (jobs without telemetry are left out)."""
    comparison = visible_strings(comparison)
    table = Table(
        title="gradient-based ICS: medians over each job's telemetry steps (more shift: larger ‖G − G′‖₂, "
        "lower cosine)",
        show_edge=False,
        header_style="bold",
    )
    table.add_column("job", min_width=17)
    for header in ("layer", "‖G − G′‖₂", "cos(G, G′)", "probes"):
        table.add_column(header, justify="right", no_wrap=True)
    for row in comparison.get("jobs", []):
        identifier = str(row.get("id"))
        label = " ".join(part for part in (identifier[:8], row.get("name")) if part)
        for layer in row.get("ics") or []:
            table.add_row(
                label,
                number(layer.get("layer", 0) + 1),
                number(layer.get("median_gradient_change"), digits=3),
                number(layer.get("median_gradient_cosine"), digits=4),
                number(layer.get("probes")),
            )
            label = ""
    return table
