"""Which job specs can train together as one fused group, and how a sweep's jobs split into such groups.

A fused group trains M models of one architecture as stacked tensors (see `core.ml.fused`): one batched
kernel per layer for all of them, one step counter, one schedule of evaluations. So everything that shapes
the tensors or the schedule must be equal — the architecture (MLP or CNN, its hidden widths or conv
channels, its activation), the normalization (and group norm's groups), with batch norm its
implementation (torch's layer or bnlab's paper layer) and whether noisy BN is on, the optimizer kind, the
dataset and batch size, the number of steps and the evaluation, telemetry, landscape and checkpoint
intervals, the telemetry mode, the device — while everything that only changes numbers may differ per
model: learning rate, dropout rate, initialization, BN momentum and eps, noisy BN's two stds, seed,
target accuracy, name. Every spec fuses with its like: MLPs and CNNs, either BN implementation.

Torch-free on purpose: the API splits a sweep into groups without importing the training core.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import NamedTuple

from core.spec import JobSpec, MLPArchitecture


class FusionKey(NamedTuple):
    """The fields two specs must share to be fused."""

    kind: str  # the architecture: "mlp" or "cnn"
    widths: tuple[int, ...]  # an MLP's hidden widths, a CNN's conv channels
    activation: str
    batch_norm: bool
    bn_implementation: str | None  # None without batch norm: then no BN layer is built
    normalization: str
    groups: int | None
    noisy_bn: bool  # noisy BN trains by autograd, plain torch BN by the written-out stack
    optimizer: str
    dataset: str
    batch_size: int
    steps: int
    eval_every: int
    telemetry_every: int
    telemetry_mode: str
    landscape_every: int
    checkpoint_every: int
    device: str


def fusion_key(spec: JobSpec) -> FusionKey:
    """What `spec` shares with the specs it can be fused with.

    Every spec fuses with its like: MLPs with torch's BN or none train as `core.ml.stacks.MLPStack`, CNNs
    and bnlab's paper BN as `NetStack`, both through the one stacked trainer.
    """
    architecture = spec.architecture
    widths = architecture.hidden if isinstance(architecture, MLPArchitecture) else architecture.channels
    return FusionKey(
        kind=architecture.kind,
        widths=tuple(widths),
        activation=architecture.activation,
        batch_norm=spec.batch_norm,
        bn_implementation=spec.bn_implementation if spec.batch_norm else None,
        normalization=spec.normalization,
        groups=spec.groups,
        noisy_bn=spec.bn_noise is not None,
        optimizer=spec.optimizer,
        dataset=spec.dataset,
        batch_size=spec.batch_size,
        steps=spec.steps,
        eval_every=spec.eval_every,
        telemetry_every=spec.telemetry_every,
        telemetry_mode=spec.telemetry_mode if spec.telemetry_every else "",  # moot without telemetry
        landscape_every=spec.landscape_every,
        checkpoint_every=spec.checkpoint_every,
        device=spec.device,
    )


def can_fuse(first: JobSpec, second: JobSpec) -> bool:
    return fusion_key(first) == fusion_key(second)


def split_into_fused_groups(
    specs: Sequence[JobSpec],
    max_group_size: int,
    max_gpu_group_size: int | None = None,
    limit_for: Callable[[JobSpec], int] | None = None,
) -> list[list[int]]:
    """Split `specs` into groups of indices to train together, in the order the groups first appear.

    Specs with equal fusion keys form one group; a group larger than `max_group_size` is cut into the
    fewest groups of at most that size, of sizes as even as possible (20 at most 16 → 10 + 10, not 16 + 4).
    A group of specs asking for a GPU (`cuda…`) is cut at `max_gpu_group_size` instead, where given: a GPU
    runs hundreds of small models at once, a CPU core fastest per model at about 16 (larger stacks
    outgrow its caches; `benchmarks/fused_sweep.py`). `limit_for`, where given, decides a group's limit
    from its first spec instead (`core.group_sizes.GroupSizing.limit_for`: by the live workers' devices and
    the GPU's memory). A group of one trains as well alone (`core.ml.run`).
    """
    if max_group_size < 1 or (max_gpu_group_size is not None and max_gpu_group_size < 1):
        raise ValueError("max_group_size must be at least 1")
    by_key: dict[FusionKey, list[int]] = {}
    groups: list[list[int]] = []
    for index, spec in enumerate(specs):
        key = fusion_key(spec)
        if key in by_key:
            by_key[key].append(index)
        else:
            by_key[key] = [index]
            groups.append(by_key[key])
    split: list[list[int]] = []
    for group in groups:
        limit = max_group_size
        if limit_for is not None:
            limit = limit_for(specs[group[0]])
        elif max_gpu_group_size is not None and specs[group[0]].device.startswith("cuda"):
            limit = max_gpu_group_size
        parts = math.ceil(len(group) / limit)
        size, larger = divmod(len(group), parts)
        start = 0
        for part in range(parts):
            end = start + size + (1 if part < larger else 0)
            split.append(group[start:end])
            start = end
    return split
