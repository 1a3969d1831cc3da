"""Datasets: digits and spirals from the seed, IDX files parsed, downloads verified against SHA-256.

Downloads are tested against a local HTTP server that serves small IDX files written by the test.
"""

from __future__ import annotations

import gzip
import hashlib
import http.server
import struct
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch

from core.ml.data import IDX_FILES, DatasetError, load_dataset
from core.ml.downloads import DownloadError
from core.ml.idx import IdxFormatError, parse_idx, read_idx
from core.settings import Settings


def idx_bytes(array: np.ndarray) -> bytes:
    """An IDX file holding `array` (unsigned bytes), written from the format's description."""
    header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def test_parse_idx_reads_shape_and_values() -> None:
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    assert np.array_equal(parse_idx(idx_bytes(array)), array)
    floats = np.array([[1.5, -2.0]], dtype=">f4")
    float_file = bytes([0, 0, 0x0D, 2]) + struct.pack(">2I", 1, 2) + floats.tobytes()
    assert np.array_equal(parse_idx(float_file), floats.astype(np.float32))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\x01\x02\x08\x01", "magic"),
        (bytes([0, 0, 0x08, 3, 0, 0]), "header"),
        (idx_bytes(np.zeros((4, 5), dtype=np.uint8))[:-3], "announces"),
        (idx_bytes(np.zeros((4, 5), dtype=np.uint8)) + b"\x00", "announces"),
    ],
)
def test_parse_idx_rejects_damaged_data(raw: bytes, message: str) -> None:
    with pytest.raises(IdxFormatError, match=message):
        parse_idx(raw)


def test_read_idx_rejects_a_truncated_gzip(tmp_path: Path) -> None:
    path = tmp_path / "labels.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.arange(100, dtype=np.uint8)))[:-10])
    with pytest.raises(IdxFormatError, match="gzip"):
        read_idx(path)


def test_digits_split_by_seed_and_standardized_with_training_statistics() -> None:
    settings = Settings()
    first = load_dataset("digits", seed=0, device="cpu", settings=settings)
    again = load_dataset("digits", seed=0, device="cpu", settings=settings)
    other = load_dataset("digits", seed=1, device="cpu", settings=settings)
    assert first.input_shape == (1, 8, 8) and first.num_classes == 10
    assert len(first.train_y) + len(first.val_y) == 1797  # all of scikit-learn's digits, held out 20%
    assert len(first.val_y) == round(0.2 * 1797)
    assert first.train_x.dtype == torch.float32 and first.train_y.dtype == torch.long
    assert torch.equal(first.train_x, again.train_x) and torch.equal(first.val_y, again.val_y)
    assert not torch.equal(first.val_y, other.val_y)
    assert float(first.train_x.mean()) == pytest.approx(0.0, abs=1e-5)
    assert float(first.train_x.std()) == pytest.approx(1.0, abs=1e-5)
    assert set(first.train_y.tolist()) == set(range(10))


def test_spirals_are_generated_from_the_seed() -> None:
    settings = Settings()
    first = load_dataset("spirals", seed=3, device="cpu", settings=settings)
    assert first.input_shape == (2,) and first.num_classes == 2
    assert torch.equal(
        first.train_x, load_dataset("spirals", seed=3, device="cpu", settings=settings).train_x
    )
    assert not torch.equal(
        first.train_x, load_dataset("spirals", seed=4, device="cpu", settings=settings).train_x
    )
    torch.testing.assert_close(first.train_x.mean(dim=0), torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(first.train_x.std(dim=0), torch.ones(2), atol=1e-5, rtol=0)
    assert 0.4 < float(first.train_y.float().mean()) < 0.6  # both classes, about equally


@dataclass
class Mirror:
    """A local HTTP server: `files` maps a file name to its bytes; names in `cut_short` arrive truncated."""

    url: str
    files: dict[str, bytes] = field(default_factory=dict)
    cut_short: set[str] = field(default_factory=set)
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def mirror() -> Iterator[Mirror]:
    served = Mirror(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            name = self.path.rsplit("/", 1)[-1]
            served.requests.append(name)
            if name not in served.files:
                self.send_error(404)
                return
            body = served.files[name]
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            # A cut-short download announces the whole file and closes the connection halfway.
            self.wfile.write(body[: len(body) // 2] if name in served.cut_short else body)

        def log_message(self, format: str, *args: object) -> None:
            return None

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    served.url = f"http://127.0.0.1:{server.server_address[1]}/mnist/"
    try:
        yield served
    finally:
        server.shutdown()
        server.server_close()


def serve_small_mnist(mirror: Mirror) -> tuple[dict[str, str], dict[str, np.ndarray]]:
    """Put a 20/8-image IDX dataset of 6x5 images on the mirror; returns (SHA-256 per file, arrays)."""
    generator = np.random.default_rng(0)
    arrays = {
        "train_images": generator.integers(0, 256, size=(20, 6, 5)),
        "train_labels": np.arange(20) % 10,
        "val_images": generator.integers(0, 256, size=(8, 6, 5)),
        "val_labels": np.arange(8) % 10,
    }
    digests = {}
    for role, file_name in IDX_FILES.items():
        compressed = gzip.compress(idx_bytes(arrays[role]))
        mirror.files[file_name] = compressed
        digests[file_name] = hashlib.sha256(compressed).hexdigest()
    return digests, arrays


def test_mnist_is_downloaded_verified_and_then_read_from_disk(tmp_path: Path, mirror: Mirror) -> None:
    digests, arrays = serve_small_mnist(mirror)
    settings = Settings(data_dir=tmp_path, dataset_mirror=mirror.url)
    data = load_dataset("mnist", seed=0, device="cpu", settings=settings, sha256=digests)

    assert data.input_shape == (1, 6, 5) and data.num_classes == 10
    assert data.train_y.tolist() == arrays["train_labels"].tolist()
    assert data.val_y.tolist() == arrays["val_labels"].tolist()
    # Standardized with the training pixels' mean and std, the same transformation for both splits.
    train_pixels = arrays["train_images"].astype(np.float32)
    expected_val = (arrays["val_images"] - train_pixels.mean()) / train_pixels.std(ddof=1)
    np.testing.assert_allclose(data.val_x.squeeze(1).numpy(), expected_val, atol=1e-4)
    assert sorted(path.name for path in (tmp_path / "mnist").iterdir()) == sorted(IDX_FILES.values())

    mirror.requests.clear()
    load_dataset("mnist", seed=0, device="cpu", settings=settings, sha256=digests)
    assert mirror.requests == []  # verified files on disk are not fetched again


def test_fashion_mnist_uses_its_own_mirror(tmp_path: Path, mirror: Mirror) -> None:
    digests, _ = serve_small_mnist(mirror)
    settings = Settings(
        data_dir=tmp_path, dataset_mirror="http://127.0.0.1:9/", fashion_mnist_mirror=mirror.url
    )
    data = load_dataset("fashion_mnist", seed=0, device="cpu", settings=settings, sha256=digests)
    assert len(data.train_y) == 20
    assert (tmp_path / "fashion_mnist" / "train-images-idx3-ubyte.gz").exists()


def test_mismatched_download_is_an_error_and_is_not_kept(tmp_path: Path, mirror: Mirror) -> None:
    digests, _ = serve_small_mnist(mirror)
    mirror.files["train-labels-idx1-ubyte.gz"] = gzip.compress(idx_bytes(np.zeros(20, dtype=np.uint8)))
    settings = Settings(data_dir=tmp_path, dataset_mirror=mirror.url)
    with pytest.raises(DownloadError, match=r"SHA-256 mismatch.*not kept"):
        load_dataset("mnist", seed=0, device="cpu", settings=settings, sha256=digests)
    assert not (tmp_path / "mnist" / "train-labels-idx1-ubyte.gz").exists()
    assert not list((tmp_path / "mnist").glob("*.part"))


def test_truncated_download_is_an_error_and_is_not_kept(tmp_path: Path, mirror: Mirror) -> None:
    digests, _ = serve_small_mnist(mirror)
    mirror.cut_short.add("train-images-idx3-ubyte.gz")
    settings = Settings(data_dir=tmp_path, dataset_mirror=mirror.url)
    with pytest.raises(DownloadError, match="truncated"):
        load_dataset("mnist", seed=0, device="cpu", settings=settings, sha256=digests)
    assert [path.name for path in (tmp_path / "mnist").iterdir()] == []


def test_missing_file_on_the_mirror_is_a_clear_error(tmp_path: Path, mirror: Mirror) -> None:
    digests, _ = serve_small_mnist(mirror)
    del mirror.files["t10k-labels-idx1-ubyte.gz"]
    settings = Settings(data_dir=tmp_path, dataset_mirror=mirror.url)
    with pytest.raises(DownloadError, match=r"t10k-labels-idx1-ubyte\.gz.*404"):
        load_dataset("mnist", seed=0, device="cpu", settings=settings, sha256=digests)


def test_damaged_file_on_disk_is_reported_and_left_alone(tmp_path: Path, mirror: Mirror) -> None:
    digests, _ = serve_small_mnist(mirror)
    settings = Settings(data_dir=tmp_path, dataset_mirror=mirror.url)
    load_dataset("mnist", seed=0, device="cpu", settings=settings, sha256=digests)
    damaged = tmp_path / "mnist" / "t10k-images-idx3-ubyte.gz"
    damaged.write_bytes(damaged.read_bytes()[:-5])
    with pytest.raises(DatasetError, match=r"t10k-images-idx3-ubyte\.gz.*delete it"):
        load_dataset("mnist", seed=0, device="cpu", settings=settings, sha256=digests)
    assert damaged.exists()


def test_known_digests_guard_the_real_files(tmp_path: Path, mirror: Mirror) -> None:
    """Without test digests the built-in table applies: the small test files are refused."""
    serve_small_mnist(mirror)
    settings = Settings(data_dir=tmp_path, dataset_mirror=mirror.url)
    with pytest.raises(DownloadError, match="SHA-256 mismatch"):
        load_dataset("mnist", seed=0, device="cpu", settings=settings)


def test_unknown_dataset_is_named() -> None:
    with pytest.raises(DatasetError, match="'cifar'"):
        load_dataset("cifar", seed=0, device="cpu", settings=Settings())
