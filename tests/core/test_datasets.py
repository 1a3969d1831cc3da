"""Uploaded datasets in core: checked arrays, the deterministic blob, and the splits a worker trains on
(read back through the store, on SQLite and PostgreSQL)."""

from __future__ import annotations

import numpy as np
import pytest

from core.datasets import DatasetCaps, DatasetInvalid, check_dataset, from_blob, read_upload, to_blob
from core.ml.data import DatasetError, load_dataset
from core.settings import Settings
from core.store import Store
from tests.api.test_datasets import blobs, npz

CAPS = DatasetCaps(max_examples=1000, max_features=256, max_classes=10)


def test_the_same_arrays_make_the_same_blob_and_come_back_unchanged() -> None:
    arrays = check_dataset(read_upload("file", "a.npz", npz(**blobs()), "label"), None, CAPS)
    blob, sha256 = to_blob(arrays)
    again, sha256_again = to_blob(
        check_dataset(read_upload("file", "b.npz", npz(**blobs()), "label"), None, CAPS)
    )

    assert (blob, sha256) == (again, sha256_again)
    read = from_blob(blob)
    assert np.array_equal(read.train_x, arrays.train_x) and read.train_x.dtype == np.float32
    assert np.array_equal(read.train_y, arrays.train_y) and read.train_y.dtype == np.int64
    assert read.val_x is None


def test_images_get_a_channel_and_a_given_validation_split_is_kept() -> None:
    images = np.random.default_rng(0).random((20, 5, 5))
    labels = np.arange(20) % 2
    content = npz(x=images, y=labels, x_val=images[:6], y_val=labels[:6])

    arrays = check_dataset(read_upload("file", "images.npz", content, "label"), None, CAPS)

    assert arrays.input_shape == (1, 5, 5) and arrays.num_classes == 2
    assert arrays.val_x is not None and arrays.val_x.shape == (6, 1, 5, 5)


def test_a_class_missing_from_training_is_named() -> None:
    labels = np.array([0, 1, 3, 0, 1, 3, 0, 1])
    with pytest.raises(DatasetInvalid, match=r"absent: \[2\]"):
        check_dataset(read_upload("file", "gap.npz", npz(x=np.zeros((8, 2)), y=labels), "label"), None, CAPS)


@pytest.mark.parametrize("content", [b"\r0\r\n", b'label,a\r1,"2\r\n', b"label\x00,a\n1,2\n"])
def test_a_csv_with_stray_line_ends_or_nul_is_refused_as_invalid_never_a_crash(content: bytes) -> None:
    """Found by the generated requests: a bare carriage return made the csv module raise (a 500)."""
    with pytest.raises(DatasetInvalid):
        check_dataset(read_upload("file", "file", content, "label"), None, CAPS)


def test_a_worker_loads_an_uploaded_dataset_through_the_store(store: Store) -> None:
    arrays = check_dataset(read_upload("file", "a.npz", npz(**blobs(examples=100)), "label"), None, CAPS)
    blob, sha256 = to_blob(arrays)
    store.save_dataset(
        "blobs", blob, sha256=sha256, train_size=100, val_size=0, input_shape=[6], num_classes=3
    )
    settings = Settings(_env_file=None, database_url=store.url)  # type: ignore[call-arg]

    dataset = load_dataset("user:blobs", seed=3, device="cpu", settings=settings)
    same_seed = load_dataset("user:blobs", seed=3, device="cpu", settings=settings)

    assert (len(dataset.train_y), len(dataset.val_y), dataset.num_classes) == (80, 20, 3)
    assert dataset.input_shape == (6,)
    assert bool((dataset.val_x == same_seed.val_x).all())  # the held-out 20% depends on the seed only
    with pytest.raises(DatasetError, match="no uploaded dataset is named missing"):
        load_dataset("user:missing", seed=0, device="cpu", settings=settings)
