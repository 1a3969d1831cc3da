"""The datasets a job trains on, held whole as tensors on the training device.

Batches are taken by index (see `core.ml.sampling`), so there is no DataLoader in the step loop. Every
dataset is standardized with statistics of its training split only: images with one mean and standard
deviation over all training pixels (which keeps an image an image), the synthetic set per feature.

- `digits`: the 1,797 handwritten 8x8 digits shipped inside scikit-learn (works offline); a seeded
  permutation holds out 20% for validation, so the split depends on the seed.
- `spirals`: two interleaved noisy spirals in the plane, generated from the seed (2 classes).
- `mnist`, `fashion_mnist`: the 60,000 / 10,000 official train / test split, read from IDX .gz files in
  `settings.data_dir/<name>/`, downloaded from the configured mirror when absent and checked against the
  SHA-256 digests in `KNOWN_SHA256` (the seed does not change these splits).
- `user:<name>`: a dataset uploaded with `POST /v1/datasets`, read from the database (`core.ml.user_data`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from core.ml.downloads import download_verified, sha256_of_file
from core.ml.idx import read_idx
from core.ml.user_data import user_splits
from core.settings import Settings

VALIDATION_FRACTION = 0.2
SPIRAL_POINTS = 2000
SPIRAL_TURNS = 1.5
SPIRAL_NOISE = 0.5

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte.gz",
    "train_labels": "train-labels-idx1-ubyte.gz",
    "val_images": "t10k-images-idx3-ubyte.gz",
    "val_labels": "t10k-labels-idx1-ubyte.gz",
}
KNOWN_SHA256: dict[str, dict[str, str]] = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
        "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
        "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
        "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    },
    "fashion_mnist": {
        "train-images-idx3-ubyte.gz": "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
        "train-labels-idx1-ubyte.gz": "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
        "t10k-images-idx3-ubyte.gz": "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
        "t10k-labels-idx1-ubyte.gz": "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
    },
}


class DatasetError(RuntimeError):
    """A dataset cannot be loaded: unknown name, damaged file, or a failed download."""


@dataclass(frozen=True)
class Dataset:
    """Standardized float32 inputs and int64 labels on one device; `input_shape` is one example's."""

    train_x: Tensor
    train_y: Tensor
    val_x: Tensor
    val_y: Tensor
    num_classes: int
    input_shape: tuple[int, ...]


def load_dataset(
    name: str,
    seed: int,
    device: torch.device | str,
    settings: Settings,
    sha256: Mapping[str, str] | None = None,
) -> Dataset:
    """Load dataset `name` onto `device`.

    `sha256` maps file names to the digests downloaded or cached files must have; it defaults to
    `KNOWN_SHA256[name]` (IDX datasets only; others ignore it).
    """
    if name == "digits":
        train_x, train_y, val_x, val_y = _digits(seed)
    elif name == "spirals":
        train_x, train_y, val_x, val_y = _spirals(seed)
    elif name.startswith("user:"):  # uploaded: `core.ml.user_data`
        splits = user_splits(name.removeprefix("user:"), seed, settings)
        if splits is None:
            raise DatasetError(f"no uploaded dataset is named {name.removeprefix('user:')}")
        train_x, train_y, val_x, val_y = splits
    elif name in KNOWN_SHA256:
        mirror = settings.fashion_mnist_mirror if name == "fashion_mnist" else settings.dataset_mirror
        digests = KNOWN_SHA256[name] if sha256 is None else sha256
        train_x, train_y, val_x, val_y = _idx_dataset(settings.data_dir / name, mirror, digests)
    else:
        raise DatasetError(f"unknown dataset {name!r}")
    if train_x.dim() == 4:  # images: one statistic over all pixels
        mean, std = train_x.mean(), train_x.std()
    else:  # features: one statistic per feature
        mean, std = train_x.mean(dim=0), train_x.std(dim=0)
    std = torch.where(std > 0, std, torch.ones_like(std))
    return Dataset(
        train_x=((train_x - mean) / std).to(device),
        train_y=train_y.to(device),
        val_x=((val_x - mean) / std).to(device),
        val_y=val_y.to(device),
        num_classes=int(torch.cat([train_y, val_y]).max()) + 1,
        input_shape=tuple(train_x.shape[1:]),
    )


Splits = tuple[Tensor, Tensor, Tensor, Tensor]


def _digits(seed: int) -> Splits:
    from sklearn.datasets import load_digits  # imported here: scikit-learn is slow to import

    digits = load_digits()
    images = torch.tensor(digits.images, dtype=torch.float32).unsqueeze(1)  # (N, 1, 8, 8)
    labels = torch.tensor(digits.target, dtype=torch.long)
    return _seeded_split(images, labels, seed)


def _spirals(seed: int) -> Splits:
    """Two spirals of SPIRAL_TURNS turns, one per class, mirror images of each other, with gaussian noise."""
    generator = torch.Generator().manual_seed(seed)
    per_class = SPIRAL_POINTS // 2
    # sqrt spreads the points evenly along the spiral's length rather than its angle.
    angle = math.pi / 2 + SPIRAL_TURNS * 2 * math.pi * torch.rand(per_class, generator=generator).sqrt()
    arm = torch.stack([angle * torch.cos(angle), angle * torch.sin(angle)], dim=1)
    points = torch.cat([arm, -arm]) + SPIRAL_NOISE * torch.randn(2 * per_class, 2, generator=generator)
    labels = torch.cat([torch.zeros(per_class), torch.ones(per_class)]).long()
    return _seeded_split(points, labels, seed)


def _seeded_split(inputs: Tensor, labels: Tensor, seed: int) -> Splits:
    order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(seed))
    validation = round(VALIDATION_FRACTION * len(labels))
    val_indices, train_indices = order[:validation], order[validation:]
    return inputs[train_indices], labels[train_indices], inputs[val_indices], labels[val_indices]


def _idx_dataset(directory: Path, mirror: str, sha256: Mapping[str, str]) -> Splits:
    arrays: dict[str, np.ndarray] = {}
    for role, file_name in IDX_FILES.items():
        if file_name not in sha256:
            raise DatasetError(f"no SHA-256 is known for {file_name}; refusing to use an unverified file")
        path = directory / file_name
        _ensure_verified_file(path, mirror.rstrip("/") + "/" + file_name, sha256[file_name])
        arrays[role] = read_idx(path)
    train_images, val_images = arrays["train_images"], arrays["val_images"]
    if train_images.ndim != 3 or val_images.ndim != 3 or train_images.shape[1:] != val_images.shape[1:]:
        raise DatasetError(f"{directory}: image files do not hold matching (count, rows, columns) arrays")
    if len(train_images) != len(arrays["train_labels"]) or len(val_images) != len(arrays["val_labels"]):
        raise DatasetError(f"{directory}: image and label counts differ")

    def images(values: np.ndarray) -> Tensor:
        return torch.from_numpy(values).float().unsqueeze(1)  # (N, 1, rows, columns)

    def labels(values: np.ndarray) -> Tensor:
        return torch.from_numpy(values).long()

    return (
        images(train_images),
        labels(arrays["train_labels"]),
        images(val_images),
        labels(arrays["val_labels"]),
    )


def _ensure_verified_file(path: Path, url: str, sha256: str) -> None:
    """Download `path` when absent; a present file must match its digest (it is never silently replaced)."""
    if not path.exists():
        download_verified(url, path, sha256)
        return
    actual = sha256_of_file(path)
    if actual != sha256.lower():
        raise DatasetError(
            f"{path} has SHA-256 {actual}, expected {sha256}: the file is damaged or a different version; "
            "delete it to download it again"
        )
