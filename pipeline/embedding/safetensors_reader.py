"""Minimal reader for the safetensors format, so loading weights never needs torch.

Layout: 8-byte little-endian header length N, N bytes of JSON
(``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``),
then the raw little-endian tensor bytes; offsets are relative to the end of the header.
"""

from __future__ import annotations

import json
import mmap
import struct
from pathlib import Path

import numpy as np

_DTYPES: dict[str, str] = {
    "F64": "<f8",
    "F32": "<f4",
    "F16": "<f2",
    "I64": "<i8",
    "I32": "<i4",
    "I16": "<i2",
    "I8": "i1",
    "U8": "u1",
    "BOOL": "?",
}

# A header larger than this is not a model file we should trust (the format caps it at 100 MB).
_MAX_HEADER = 100 * 1024 * 1024


class SafetensorsError(ValueError):
    """The file is not a readable safetensors file."""


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Map every tensor of ``path`` as a read-only numpy array backed by the file.

    The arrays share one read-only memory map, so untouched rows (most of the
    vocabulary embedding) never occupy private memory.
    """
    with open(path, "rb") as f:
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
    if len(mm) < 8:
        raise SafetensorsError(f"{path} is too short to be a safetensors file")
    (header_len,) = struct.unpack("<Q", mm[:8])
    if header_len > min(_MAX_HEADER, len(mm) - 8):
        raise SafetensorsError(f"{path} has an implausible safetensors header length")
    try:
        header = json.loads(mm[8 : 8 + header_len])
    except ValueError as exc:
        raise SafetensorsError(f"{path} has an unreadable safetensors header") from exc
    base = 8 + header_len
    tensors: dict[str, np.ndarray] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = _DTYPES.get(info["dtype"])
        if dtype is None:
            raise SafetensorsError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        begin, end = info["data_offsets"]
        shape = tuple(info["shape"])
        count = int(np.prod(shape, dtype=np.int64))
        if end - begin != count * np.dtype(dtype).itemsize or base + end > len(mm):
            raise SafetensorsError(f"{path}: tensor {name} has inconsistent offsets")
        tensors[name] = np.frombuffer(mm, dtype=dtype, count=count, offset=base + begin).reshape(
            shape
        )
    return tensors
