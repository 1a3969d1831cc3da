"""Downloading a file so that only a verified copy is ever kept.

The bytes go to a temporary file next to the destination while their SHA-256 is computed; the temporary
file is renamed into place only when the length and the digest are right, and removed otherwise. A
crashed, truncated or tampered download therefore never leaves a file that a later run would trust, and
two workers downloading at once cannot see each other's half-written files.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO

CHUNK_BYTES = 1 << 20


class DownloadError(RuntimeError):
    """A download failed, was cut short, or did not match its expected SHA-256."""


def sha256_of_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def download_verified(url: str, destination: Path, sha256: str, timeout_seconds: float = 60.0) -> None:
    """Fetch `url` into `destination`, keeping it only when its SHA-256 is `sha256`."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary_name = tempfile.mkstemp(
        dir=destination.parent, prefix=f".{destination.name}.", suffix=".part"
    )
    temporary = Path(temporary_name)
    try:
        with os.fdopen(handle, "wb") as file:
            received, actual_sha256 = _stream(url, file, timeout_seconds)
        if actual_sha256 != sha256.lower():
            raise DownloadError(
                f"{url}: SHA-256 mismatch after {received} bytes (expected {sha256}, got {actual_sha256}); "
                "the file was not kept"
            )
        os.replace(temporary, destination)
    finally:
        temporary.unlink(missing_ok=True)


def _stream(url: str, file: BinaryIO, timeout_seconds: float) -> tuple[int, str]:
    """Copy the response body into `file`; returns (bytes received, their SHA-256)."""
    digest = hashlib.sha256()
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=timeout_seconds) as response:
            announced = response.headers.get("Content-Length")
            while chunk := response.read(CHUNK_BYTES):
                digest.update(chunk)
                file.write(chunk)
                received += len(chunk)
    except http.client.IncompleteRead as error:
        raise DownloadError(
            f"{url}: connection closed after {received} bytes (truncated download)"
        ) from error
    except (urllib.error.URLError, http.client.HTTPException, OSError) as error:
        raise DownloadError(f"{url}: download failed ({error})") from error
    if announced is not None and received != int(announced):
        raise DownloadError(f"{url}: received {received} of {announced} announced bytes (truncated download)")
    return received, digest.hexdigest()
