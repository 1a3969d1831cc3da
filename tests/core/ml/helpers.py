"""Helpers shared by the training-core tests: spec building and an independent replay of a run."""

from __future__ import annotations

import io
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

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
    "device": "cpu",  # these tests assert the CPU's behaviour (bit-exactness) on any machine
}


def make_spec(**changes: Any) -> JobSpec:
    return JobSpec.model_validate({**SMALL_MLP, **changes})


def net_state(blob: bytes, spec: JobSpec, input_shape: tuple[int, ...], row: int = 0) -> dict[str, Tensor]:
    """The `state_dict` of a net of `spec` holding row `row` of a checkpoint's stacks (an MLP stack's
    parameters and BN averages are stacked tensors; a lone net of another kind saves its own state)."""
    stack = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)["stack"]
    model = stack["model"]
    if "parameters" not in model:
        return dict(model)
    net = build_model(spec, input_shape, 10)
    state = net.state_dict()
    names = [name for name, _ in net.named_parameters()]
    for name, parameter in zip(names, model["parameters"], strict=True):
        state[name] = parameter[row]
    means = [name for name in state if name.endswith("running_mean")]
    variances = [name for name in state if name.endswith("running_var")]
    for name, buffer in zip(means, model["running_means"], strict=True):
        state[name] = buffer[row]
    for name, buffer in zip(variances, model["running_vars"], strict=True):
        state[name] = buffer[row]
    return state


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
