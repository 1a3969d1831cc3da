"""The datasets of a stack of models, laid end to end on the device: one gather fetches M batches.

The digits and spirals splits depend on a seed — the spec's `split_seed` when it sets one, else its
`seed` — so models of a stack may train (and be validated) on different examples: model m's examples are
rows [slot·N, slot·N + N) of `train_x`, its slot being that of its split. The official train/test split of
an IDX dataset depends on no seed: it is loaded once per stack.

The inference-mode telemetry probe (`probe_x`) is one fixed set of held-out examples for every model,
whatever its seeds: the first PROBE_SIZE validation examples of the split PROBE_SPLIT_SEED draws (of the
official test set for an IDX dataset), standardized as that split is. It is held out for every model whose
split is that one (`split_seed: 0`); a model of another digits or spirals split may have trained on some.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from core.ml.data import KNOWN_SHA256, load_dataset
from core.ml.telemetry import PROBE_SIZE, PROBE_SPLIT_SEED
from core.settings import Settings
from core.spec import JobSpec

SEED_INDEPENDENT_DATASETS = frozenset(KNOWN_SHA256)


def split_seed_of(spec: JobSpec) -> int:
    """The seed that draws `spec`'s train/validation split: `split_seed`, else `seed` (as before)."""
    return spec.seed if spec.split_seed is None else spec.split_seed


@dataclass(frozen=True)
class StackData:
    """Every distinct split of the stack, flattened to [examples, features] and laid end to end."""

    train_x: Tensor  # [splits · N, features]
    train_y: Tensor
    val_x: Tensor  # [splits · V, features]
    val_y: Tensor
    train_size: int
    val_size: int
    input_shape: tuple[int, ...]
    num_classes: int
    dataset_slots: list[int]  # per spec
    probe_x: Tensor | None  # [PROBE_SIZE, features]: the inference-mode telemetry probe, where one is due

    @classmethod
    def load(cls, specs: Sequence[JobSpec], device: torch.device, settings: Settings) -> StackData:
        seeds: dict[int | None, int] = {}
        dataset_slots = []
        for spec in specs:
            seed = None if spec.dataset in SEED_INDEPENDENT_DATASETS else split_seed_of(spec)
            dataset_slots.append(seeds.setdefault(seed, len(seeds)))
        datasets = [load_dataset(specs[0].dataset, seed or 0, device, settings) for seed in seeds]
        first = datasets[0]
        probe_x = None
        if any(spec.telemetry_every and spec.telemetry_mode == "inference" for spec in specs):
            probe_seed = None if None in seeds else PROBE_SPLIT_SEED
            probe_source = (
                datasets[seeds[probe_seed]]
                if probe_seed in seeds
                else load_dataset(specs[0].dataset, PROBE_SPLIT_SEED, device, settings)
            )
            probe_x = probe_source.val_x[:PROBE_SIZE].flatten(1)
        if any(len(d.train_y) != len(first.train_y) or len(d.val_y) != len(first.val_y) for d in datasets):
            raise ValueError("the stack's datasets differ in size")
        return cls(
            train_x=torch.cat([d.train_x.flatten(1) for d in datasets]),
            train_y=torch.cat([d.train_y for d in datasets]),
            val_x=torch.cat([d.val_x.flatten(1) for d in datasets]),
            val_y=torch.cat([d.val_y for d in datasets]),
            train_size=len(first.train_y),
            val_size=len(first.val_y),
            input_shape=first.input_shape,
            num_classes=max(d.num_classes for d in datasets),
            dataset_slots=dataset_slots,
            probe_x=probe_x,
        )

    @property
    def probe_size(self) -> int:
        """The train-mode telemetry probe batch: the first PROBE_SIZE training examples of each split."""
        return min(PROBE_SIZE, self.train_size)
