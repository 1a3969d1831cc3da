"""Uploaded datasets (`"dataset": "user:<name>"`) as the training core's splits.

The arrays come from the database through the store (`core.datasets.load_user_dataset`), so a worker on
any node reads them where it reads its jobs. Without a given validation split, a seeded permutation holds
out 20% for validation, as for `digits`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from core.datasets import load_user_dataset
from core.settings import Settings
from core.store import Store

VALIDATION_FRACTION = 0.2


def user_splits(name: str, seed: int, settings: Settings) -> tuple[Tensor, Tensor, Tensor, Tensor] | None:
    """(train_x, train_y, val_x, val_y) of uploaded dataset `name`, or None when there is none."""
    store = Store.from_settings(settings)
    try:
        arrays = load_user_dataset(store, name)
    finally:
        store.dispose()
    if arrays is None:
        return None
    inputs, labels = torch.from_numpy(arrays.train_x).float(), torch.from_numpy(arrays.train_y).long()
    if arrays.val_x is not None and arrays.val_y is not None:
        return inputs, labels, torch.from_numpy(arrays.val_x).float(), torch.from_numpy(arrays.val_y).long()
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    held_out = round(VALIDATION_FRACTION * len(labels))
    val_indices, train_indices = order[:held_out], order[held_out:]
    return inputs[train_indices], labels[train_indices], inputs[val_indices], labels[val_indices]
