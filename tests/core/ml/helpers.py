"""Helpers shared by the training-core tests: spec building and an independent replay of a run."""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from core.ml.data import load_dataset
from core.ml.nets import build_model
from core.ml.sampling import BatchSampler
from core.ml.training import build_optimizer
from core.settings import Settings
from core.spec import JobSpec

SMALL_MLP: dict[str, Any] = {
    "architecture": {"kind": "mlp", "hidden": [32, 32], "activation": "sigmoid"},
    "batch_norm": True,
    "learning_rate": 0.1,
    "dropout": 0.0,
    "batch_size": 32,
    "steps": 60,
    "eval_every": 20,
    "checkpoint_every": 0,
}


def make_spec(**changes: Any) -> JobSpec:
    return JobSpec.model_validate({**SMALL_MLP, **changes})


def replay_losses(spec: JobSpec, settings: Settings, steps: int) -> list[float]:
    """The per-step training losses of `spec`, from a plain PyTorch loop on the same batches.

    Written independently of the training loop (only the building blocks are shared), so a test can check
    what the loop reports against what training actually computed.
    """
    torch.set_num_threads(settings.torch_threads)
    data = load_dataset(spec.dataset, spec.seed, "cpu", settings)
    model = build_model(spec, data.input_shape, data.num_classes)
    optimizer = build_optimizer(spec, model)
    sampler = BatchSampler(len(data.train_y), spec.batch_size, spec.seed, "cpu")
    losses = []
    for _ in range(steps):
        indices = sampler.next()
        loss = F.cross_entropy(model(data.train_x[indices]), data.train_y[indices])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses
