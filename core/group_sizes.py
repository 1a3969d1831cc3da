"""How many models one fused group may stack, for the device that will train it.

A CPU core trains the paper's MLP fastest per model in stacks of about 16 (`max_fused_group_size`); a GPU
runs a thousand at once (`max_fused_gpu_group_size`). A sweep's groups are cut at the GPU size when their
specs say `cuda`, and for `auto` when a live worker on the default queue (the one `auto` jobs go to) has a
GPU; at the CPU size otherwise. On a GPU a group is also cut so that it fits the memory of the smallest
live GPU that could take it, by the per-model footprint below.

Footprint of one model of a fused group, in float32 values (4 bytes each). An MLP:

    P = Σ_layers (inputs × outputs) + per hidden layer u·width + classes (the output layer's bias)
        u = 1 without normalization (the bias), 2 with BN (γ, β; the layer feeding it has no bias),
            3 with layer or group norm (the bias, γ and β)
    parameter memory   = P × (2 + optimizer slots)     weights and gradients; sgd 0, momentum 1, adam 2
    activation memory  = batch_size × (inputs + Σ_hidden k·width + 2·classes)
                         2·classes: the logits and their gradient; k values per hidden unit, by normalization:
                         none 3          pre-activation, nonlinearity output, its gradient in the backward
                         batch 4         and BN's layout copy and normalized values
                         batch, bnlab 6  the paper BN: autograd also keeps its centred values and their scale
                         layer, group 6  written out on the stack like the paper BN, per example: centred
                                         and normalized values and their scaled copy
                         noisy BN        one more than its BN: the noise's product before its shift
    noise memory       = NOISE_VALUES_PER_UNIT × Σ_hidden width with noisy BN (each step's draws: counters,
                         hashed keys and uniforms in 64 bits, the normals), none otherwise
    footprint bytes    = 4 × (parameter memory + activation memory + noise memory) × SAFETY_FACTOR

The k follow what autograd keeps of a stacked step (measured with torch's saved-tensor hooks on a 2×64
sigmoid MLP: per example and hidden unit 1 value without normalization, 2 with BN or noisy BN, 3 with the
paper BN, 4 with layer or group norm; `tests/core/ml/test_footprint.py`), plus the values a step holds only
briefly.

A CNN on images of C×H×W, block b with c_b channels on an image of H_b×W_b (halved by each block's pool):

    P = Σ_blocks (9·c_(b−1)·c_b + u·c_b) + c_last·H_last·W_last·classes + classes
    activation memory  = batch_size × (C·H·W + Σ_blocks c_b·H_b·W_b·(k + 1/4) + 2·classes)
                         the same u and k per convolution output value, and the pooled output a quarter
                         of it

SAFETY_FACTOR = 2 covers what the formula leaves out: the allocator's caching and rounding, the step's
temporaries, a CUDA graph's static copies. Of a GPU's memory, GPU_MEMORY_USABLE_FRACTION less
GPU_MEMORY_RESERVED_MB (the CUDA context, the datasets on the device, evaluation chunks of at most
64 MiB) is shared by the models. The paper's digits MLP (3×100, batch 60, SGD) needs about 1 MB: a GPU
is never full of those; a 3×2048 net with BN on MNIST at batch 512 with Adam needs about 425 MB: an H200
(140 GiB) takes 316 of them per group, a 16 GB card 33.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from core.settings import Settings
from core.spec import JobSpec, MLPArchitecture

BYTES_PER_VALUE = 4
SAFETY_FACTOR = 2
GPU_MEMORY_USABLE_FRACTION = 0.9
GPU_MEMORY_RESERVED_MB = 1024
OPTIMIZER_SLOTS = {"sgd": 0, "momentum": 1, "adam": 2}
# Per hidden unit (channel): parameters besides the weights (u), and values kept per example (k).
PARAMETERS_PER_UNIT = {"none": 1, "batch": 2, "layer": 3, "group": 3}
KEPT_PER_UNIT = {"none": 3, "batch": 4, "layer": 6, "group": 6}
KEPT_PER_UNIT_PAPER_BN = 6  # bn_implementation bnlab
NOISE_VALUES_PER_UNIT = 32
# (one example's shape, classes) of the built-in datasets, as `core.ml.data` loads them.
DATASET_SHAPES: dict[str, tuple[tuple[int, ...], int]] = {
    "digits": ((1, 8, 8), 10),
    "mnist": ((1, 28, 28), 10),
    "fashion_mnist": ((1, 28, 28), 10),
    "spirals": ((2,), 2),
}


def model_footprint_bytes(spec: JobSpec) -> int | None:
    """The GPU memory one model of `spec` takes in a fused group (see the module docstring); None for a
    spec the formula does not cover (a dataset of unknown shape, a CNN on inputs that are no images)."""
    if spec.dataset not in DATASET_SHAPES:
        return None
    shape, classes = DATASET_SHAPES[spec.dataset]
    architecture = spec.architecture
    kept, per_unit = kept_and_parameters_per_unit(spec)
    if isinstance(architecture, MLPArchitecture):
        widths = [math.prod(shape), *architecture.hidden, classes]
        parameters = sum(before * after for before, after in itertools.pairwise(widths))
        parameters += per_unit * sum(architecture.hidden) + classes
        kept_values = float(kept * sum(architecture.hidden))
        units = sum(architecture.hidden)
    else:
        if len(shape) != 3:
            return None
        channels, height, width = shape
        parameters, kept_values, units = 0, 0.0, sum(architecture.channels)
        for out_channels in architecture.channels:
            parameters += 9 * channels * out_channels + per_unit * out_channels
            kept_values += out_channels * height * width * (kept + 0.25)
            channels, height, width = out_channels, height // 2, width // 2
        parameters += channels * height * width * classes + classes
    activations = spec.batch_size * (math.prod(shape) + kept_values + 2 * classes)
    noise = NOISE_VALUES_PER_UNIT * units if spec.bn_noise is not None else 0
    values = parameters * (2 + OPTIMIZER_SLOTS[spec.optimizer]) + activations + noise
    return int(BYTES_PER_VALUE * values * SAFETY_FACTOR)


def kept_and_parameters_per_unit(spec: JobSpec) -> tuple[int, int]:
    """(k, u) of the module docstring for the spec's normalization: values kept per hidden unit and
    example, and parameters per hidden unit besides the weights."""
    kind = spec.normalization
    paper_bn = kind == "batch" and spec.bn_implementation == "bnlab"
    kept = KEPT_PER_UNIT_PAPER_BN if paper_bn else KEPT_PER_UNIT[kind]
    if spec.bn_noise is not None:
        kept += 1
    return kept, PARAMETERS_PER_UNIT[kind]


def models_fitting(spec: JobSpec, gpu_memory_mb: int) -> int | None:
    """How many models of `spec` one group may stack on a GPU of `gpu_memory_mb` (at least 1); None when
    the footprint is unknown."""
    footprint = model_footprint_bytes(spec)
    if footprint is None:
        return None
    usable_mb = gpu_memory_mb * GPU_MEMORY_USABLE_FRACTION - GPU_MEMORY_RESERVED_MB
    return max(1, int(usable_mb * 2**20) // footprint)


@dataclass(frozen=True)
class GroupSizing:
    """The group size limits for a sweep submitted now, given the live workers."""

    cpu_size: int
    gpu_size: int
    auto_on_gpu: bool  # a live worker on the default queue has a GPU: `auto` groups are GPU-sized
    gpu_memory_mb: int | None  # the smallest live GPU that could train a GPU-sized group; None: unknown

    def limit_for(self, spec: JobSpec) -> int:
        """The largest group of specs like `spec` (they share its device and architecture)."""
        on_gpu = spec.device.startswith("cuda") or (spec.device == "auto" and self.auto_on_gpu)
        if not on_gpu:
            return self.cpu_size
        fitting = None if self.gpu_memory_mb is None else models_fitting(spec, self.gpu_memory_mb)
        return self.gpu_size if fitting is None else min(self.gpu_size, fitting)


def group_sizing(
    settings: Settings, live_workers: Iterable[tuple[Sequence[str], dict[str, Any]]]
) -> GroupSizing:
    """The limits from the settings and the live workers' (queues, device)."""
    gpu_workers = [
        (set(queues), device)
        for queues, device in live_workers
        if device.get("kind") == "cuda" and {"default", "gpu"} & set(queues)
    ]
    memories = [device["memory_mb"] for _, device in gpu_workers if device.get("memory_mb")]
    return GroupSizing(
        cpu_size=settings.max_fused_group_size,
        gpu_size=settings.max_fused_gpu_group_size,
        auto_on_gpu=any("default" in queues for queues, _ in gpu_workers),
        gpu_memory_mb=min(memories) if memories else None,
    )
