"""The sweep that the sweep benchmarks time, as plain JSON-ready specs (no torch, no bnlab import): the
paper's digits MLP with BN (3x100 sigmoid, batch 60, SGD, evaluated every 50 steps, no checkpoints) over
four learning rates and a number of seeds. DESIGN.md's "Facts measured" times 4 x 4 of it, 2,000 steps
each, with Ray Tune, a plain loop and `multiprocessing.Pool`.
"""

from __future__ import annotations

from typing import Any

LEARNING_RATES = (0.03, 0.1, 0.3, 1.0)
EVAL_EVERY = 50


def paper_mlp_spec(learning_rate: float, seed: int, steps: int, device: str) -> dict[str, Any]:
    """One job of the sweep (evaluated at its last step too when `steps` is below `EVAL_EVERY`)."""
    return {
        "architecture": {"kind": "mlp", "hidden": [100, 100, 100], "activation": "sigmoid"},
        "batch_norm": True,
        "learning_rate": learning_rate,
        "dropout": 0.0,
        "batch_size": 60,
        "steps": steps,
        "eval_every": min(EVAL_EVERY, steps),
        "checkpoint_every": 0,
        "seed": seed,
        "device": device,
    }
