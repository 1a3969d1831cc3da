"""Datasets users upload (`POST /v1/datasets`), torch-free: parse an NPZ or CSV file with numpy, check it,
and keep it as one deterministic NPZ blob addressed by its SHA-256.

Accepted files:
- NPZ with arrays `x` (N examples: (N, features), (N, height, width) or (N, channels, height, width)) and
  `y` (N integer class labels 0..K-1); optionally `x_val` and `y_val`, a validation split given with it.
- CSV with a header row: the label column (`label` unless named otherwise) and numeric feature columns.
A validation split may also come as a second file of the same kind. Without one, the training core holds
out a seeded 20% (as for `digits`).

Every check failure is a `DatasetInvalid` naming the form field (`file` or `validation_file`) and what is
wrong, so the API answers a 422 and stores nothing.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import zipfile
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the store imports this module: its Protocol is only named here, never imported
    from core.store.interface_support import DatasetStoreInterface

NAME_PATTERN = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
USER_PREFIX = "user:"
MIN_EXAMPLES = 4
_BLOB_DATE = (1980, 1, 1, 0, 0, 0)  # fixed, so the same arrays always make the same blob (and digest)


class DatasetInvalid(ValueError):
    """An upload that cannot be a dataset; `field` is the form field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class DatasetCaps:
    """Bounds on one upload (settings `max_dataset_*`)."""

    max_examples: int
    max_features: int  # numbers per example
    max_classes: int


@dataclass(frozen=True)
class DatasetArrays:
    """Checked arrays: float32 inputs, int64 labels; the validation split only when one was given."""

    train_x: np.ndarray
    train_y: np.ndarray
    val_x: np.ndarray | None = None
    val_y: np.ndarray | None = None

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(int(size) for size in self.train_x.shape[1:])

    @property
    def num_classes(self) -> int:
        labels = self.train_y if self.val_y is None else np.concatenate([self.train_y, self.val_y])
        return int(labels.max()) + 1


def user_dataset_name(dataset: str) -> str | None:
    """The uploaded dataset a spec's `dataset` names (`user:<name>`), or None for a built-in one."""
    return dataset.removeprefix(USER_PREFIX) if dataset.startswith(USER_PREFIX) else None


def read_upload(field: str, file_name: str, content: bytes, label_column: str) -> tuple[np.ndarray, ...]:
    """(x, y) from an uploaded file, or (x, y, x_val, y_val) from an NPZ that carries its validation split."""
    if content[:4] == b"PK\x03\x04" or file_name.lower().endswith(".npz"):
        return _read_npz(field, content)
    return _read_csv(field, content, label_column)


def _read_npz(field: str, content: bytes) -> tuple[np.ndarray, ...]:
    try:
        with np.load(io.BytesIO(content), allow_pickle=False) as archive:
            names = set(archive.files)
            missing = {"x", "y"} - names
            if missing:
                raise DatasetInvalid(field, f"the NPZ file has no array {' or '.join(sorted(missing))}")
            wanted = ["x", "y"] + (["x_val", "y_val"] if {"x_val", "y_val"} <= names else [])
            return tuple(archive[name] for name in wanted)
    except DatasetInvalid:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError) as error:
        raise DatasetInvalid(field, f"not a readable NPZ file (truncated or damaged): {error}") from None


def _read_csv(field: str, content: bytes, label_column: str) -> tuple[np.ndarray, ...]:
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise DatasetInvalid(field, "neither an NPZ file nor UTF-8 CSV text") from None
    try:
        # newline="": the csv module reads line ends itself, so a stray carriage return is a row break.
        rows = list(csv.reader(io.StringIO(text, newline="")))
    except csv.Error as error:
        raise DatasetInvalid(field, f"not a readable CSV file: {error}") from None
    if not rows:
        raise DatasetInvalid(field, "the CSV file is empty")
    header = [name.strip() for name in rows[0]]
    if label_column not in header:
        raise DatasetInvalid(field, f"the CSV header has no label column {label_column!r}")
    label_index = header.index(label_column)
    values = []
    for number, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise DatasetInvalid(field, f"CSV line {number} has {len(row)} columns, the header {len(header)}")
        try:
            values.append([float(cell) for cell in row])
        except ValueError:
            raise DatasetInvalid(field, f"CSV line {number} holds a value that is not a number") from None
    table = np.asarray(values, dtype=np.float64).reshape(len(values), len(header))
    return np.delete(table, label_index, axis=1), table[:, label_index]


def check_split(field: str, x: np.ndarray, y: np.ndarray, caps: DatasetCaps) -> tuple[np.ndarray, np.ndarray]:
    """Checked float32 inputs (images as (N, channels, height, width)) and int64 labels."""
    if x.dtype.kind not in "biuf":
        raise DatasetInvalid(field, f"x must hold numbers, not {x.dtype}")
    if y.dtype.kind not in "biuf":
        raise DatasetInvalid(field, f"y must hold integer class labels, not {y.dtype}")
    if x.ndim not in (2, 3, 4):
        raise DatasetInvalid(
            field, f"x has shape {x.shape}: expected (N, features), (N, H, W) or (N, C, H, W)"
        )
    if y.ndim != 1 or len(y) != len(x):
        raise DatasetInvalid(
            field, f"y has shape {y.shape}: expected ({len(x)},), one label per example of x"
        )
    if len(x) < MIN_EXAMPLES:
        raise DatasetInvalid(field, f"{len(x)} examples: at least {MIN_EXAMPLES} are needed")
    if len(x) > caps.max_examples:
        raise DatasetInvalid(field, f"{len(x)} examples: over the cap of {caps.max_examples}")
    features = math.prod(x.shape[1:])
    if features > caps.max_features:
        raise DatasetInvalid(field, f"{features} numbers per example: over the cap of {caps.max_features}")
    inputs = x.astype(np.float32)
    if not np.isfinite(inputs).all():
        raise DatasetInvalid(field, "x holds NaN or infinite values (or values too large for float32)")
    if not np.isfinite(y).all() or (y.dtype.kind == "f" and not np.equal(np.floor(y), y).all()):
        raise DatasetInvalid(field, "y holds labels that are not whole numbers")
    labels = y.astype(np.int64)
    if labels.min() < 0 or labels.max() >= caps.max_classes:
        raise DatasetInvalid(
            field,
            f"labels must be class numbers 0..K-1 with K at most {caps.max_classes}; found {labels.min()}"
            f"..{labels.max()}",
        )
    if inputs.ndim == 3:
        inputs = inputs[:, np.newaxis]  # one channel
    return inputs, labels


def check_dataset(
    train: tuple[np.ndarray, ...], validation: tuple[np.ndarray, ...] | None, caps: DatasetCaps
) -> DatasetArrays:
    """The checked dataset from what `read_upload` returned for `file` (and `validation_file`)."""
    if validation is None and len(train) == 4:
        train, validation = train[:2], train[2:]
    train_x, train_y = check_split("file", train[0], train[1], caps)
    if validation is None:
        arrays = DatasetArrays(train_x, train_y)
    else:
        val_x, val_y = check_split("validation_file", validation[0], validation[1], caps)
        if val_x.shape[1:] != train_x.shape[1:]:
            raise DatasetInvalid(
                "validation_file",
                f"examples of shape {val_x.shape[1:]}, the training ones {train_x.shape[1:]}",
            )
        if len(train_x) + len(val_x) > caps.max_examples:
            raise DatasetInvalid("validation_file", f"over the cap of {caps.max_examples} examples in all")
        arrays = DatasetArrays(train_x, train_y, val_x, val_y)
    if arrays.num_classes < 2:
        raise DatasetInvalid("file", "every label is 0: a classification needs at least two classes")
    present = np.unique(arrays.train_y)
    if len(present) != arrays.num_classes:
        absent = sorted(set(range(arrays.num_classes)) - {int(label) for label in present})
        raise DatasetInvalid(
            "file", f"labels must be 0..K-1 with each class in training; absent: {absent[:10]}"
        )
    return arrays


def to_blob(arrays: DatasetArrays) -> tuple[bytes, str]:
    """The dataset as one NPZ file and its SHA-256 (hex): the same arrays always give the same bytes."""
    buffer = io.BytesIO()
    named = {"x": arrays.train_x, "y": arrays.train_y}
    if arrays.val_x is not None and arrays.val_y is not None:
        named |= {"x_val": arrays.val_x, "y_val": arrays.val_y}
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, array in named.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            archive.writestr(
                zipfile.ZipInfo(f"{name}.npy", date_time=_BLOB_DATE), member.getvalue(), zipfile.ZIP_DEFLATED
            )
    blob = buffer.getvalue()
    return blob, hashlib.sha256(blob).hexdigest()


def from_blob(blob: bytes) -> DatasetArrays:
    """The arrays of a stored blob (written by `to_blob`, so already checked)."""
    with np.load(io.BytesIO(blob), allow_pickle=False) as archive:
        has_validation = "x_val" in archive.files
        return DatasetArrays(
            archive["x"],
            archive["y"],
            archive["x_val"] if has_validation else None,
            archive["y_val"] if has_validation else None,
        )


def load_user_dataset(store: DatasetStoreInterface, name: str) -> DatasetArrays | None:
    """The arrays of uploaded dataset `name` read through the store (None when there is none): what a
    worker trains on, from the database it already reads its jobs from."""
    found = store.read_dataset_blob(name)
    return None if found is None else from_blob(found[1])
