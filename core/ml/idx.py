"""Reading IDX files, the format MNIST and Fashion-MNIST are distributed in (optionally gzipped).

An IDX file is a 4-byte magic number — two zero bytes, a type code, the number of dimensions — then one
big-endian uint32 size per dimension, then the values, big-endian, in row-major order.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np

IDX_TYPES: dict[int, str] = {
    0x08: "u1",  # unsigned byte: MNIST's pixels and labels
    0x09: "i1",
    0x0B: ">i2",
    0x0C: ">i4",
    0x0D: ">f4",
    0x0E: ">f8",
}


class IdxFormatError(ValueError):
    """The bytes are not a complete IDX file."""


def read_idx(path: Path) -> np.ndarray:
    """The array stored in an IDX file; a `.gz` name is decompressed first."""
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as error:
        raise IdxFormatError(f"{path} is not a readable gzip file ({error})") from error
    return parse_idx(raw, source=str(path))


def parse_idx(raw: bytes, source: str = "IDX data") -> np.ndarray:
    """Parse the bytes of an (uncompressed) IDX file."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise IdxFormatError(f"{source} does not start with an IDX magic number")
    dimensions = raw[3]
    header_length = 4 + 4 * dimensions
    if len(raw) < header_length:
        raise IdxFormatError(f"{source} ends inside its header")
    shape = struct.unpack(f">{dimensions}I", raw[4:header_length])
    dtype = np.dtype(IDX_TYPES[raw[2]])
    expected_length = header_length + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(raw) != expected_length:
        raise IdxFormatError(
            f"{source} holds {len(raw)} bytes, but its header {shape} announces {expected_length}"
        )
    values = np.frombuffer(raw, dtype=dtype, offset=header_length).reshape(shape)
    return values.astype(dtype.newbyteorder("="))
