"""Minimal reader for the safetensors format, so loading weights never needs torch.

Layout: 8-byte little-endian header length N, N bytes of JSON
(``{name: {"dtype", "shape", "data_offsets": [begin, end]}, "__metadata__": {...}}``),
then the raw little-endian tensor bytes; offsets are relative to the end of the header.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Mapping
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

# The format caps the header at 100 MB; anything larger is not a model file to trust.
_MAX_HEADER = 100 * 1024 * 1024


class SafetensorsError(ValueError):
    """The file is not a readable safetensors file."""


class SafetensorsFile(Mapping[str, np.ndarray]):
    """Tensors of one safetensors file, each read from disk only when asked for.

    Every lookup returns a fresh, writable array owned by the caller; nothing stays
    mapped, so loading costs the memory of the tensors actually kept and no more.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        size = self.path.stat().st_size
        with open(self.path, "rb") as f:
            raw = f.read(8)
            if len(raw) < 8:
                raise SafetensorsError(f"{path} is too short to be a safetensors file")
            (header_len,) = struct.unpack("<Q", raw)
            if header_len > min(_MAX_HEADER, size - 8):
                raise SafetensorsError(f"{path} has an implausible safetensors header length")
            try:
                header = json.loads(f.read(header_len))
            except ValueError as exc:
                raise SafetensorsError(f"{path} has an unreadable safetensors header") from exc
        self.metadata: dict[str, str] = header.pop("__metadata__", None) or {}
        self._base = 8 + header_len
        self._entries: dict[str, tuple[np.dtype, tuple[int, ...], int]] = {}
        for name, info in header.items():
            code = _DTYPES.get(info.get("dtype"))
            if code is None:
                raise SafetensorsError(f"{path}: tensor {name} has unsupported dtype")
            dtype = np.dtype(code)
            begin, end = info["data_offsets"]
            shape = tuple(int(d) for d in info["shape"])
            count = int(np.prod(shape, dtype=np.int64))
            if end - begin != count * dtype.itemsize or self._base + end > size or begin < 0:
                raise SafetensorsError(f"{path}: tensor {name} has inconsistent offsets")
            self._entries[name] = (dtype, shape, self._base + begin)

    def __getitem__(self, name: str) -> np.ndarray:
        dtype, shape, offset = self._entries[name]
        out = np.empty(shape, dtype=dtype)
        with open(self.path, "rb") as f:
            f.seek(offset)
            if f.readinto(memoryview(out).cast("B")) != out.nbytes:
                raise SafetensorsError(f"{self.path}: tensor {name} is truncated")
        return out

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)
