"""The torch-free safetensors reader the offline model is loaded with."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import numpy as np
import pytest

from pipeline.embedding.safetensors_reader import SafetensorsError, SafetensorsFile


def write_safetensors(path: Path, tensors: dict[str, np.ndarray]) -> None:
    """Write ``tensors`` in the safetensors layout (header, then raw little-endian data)."""
    codes = {"float32": "F32", "int64": "I64", "float16": "F16"}
    header: dict = {"__metadata__": {"format": "pt"}}
    blobs, offset = [], 0
    for name, arr in tensors.items():
        raw = np.ascontiguousarray(arr).astype(arr.dtype.newbyteorder("<")).tobytes()
        header[name] = {
            "dtype": codes[arr.dtype.name],
            "shape": list(arr.shape),
            "data_offsets": [offset, offset + len(raw)],
        }
        blobs.append(raw)
        offset += len(raw)
    head = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(head)) + head + b"".join(blobs))


def test_reads_back_what_was_written(tmp_path: Path):
    """Guards the model's numbers themselves: every tensor comes back with its dtype,
    shape and values, as independent writable arrays."""
    tensors = {
        "w": np.arange(12, dtype=np.float32).reshape(3, 4) / 7,
        "ids": np.array([[0, 1, 2]], dtype=np.int64),
        "half": np.array([1.5, -2.0], dtype=np.float16),
    }
    path = tmp_path / "m.safetensors"
    write_safetensors(path, tensors)
    st = SafetensorsFile(path)
    assert sorted(st) == ["half", "ids", "w"] and st.metadata == {"format": "pt"}
    for name, arr in tensors.items():
        got = st[name]
        assert got.dtype == arr.dtype and got.shape == arr.shape
        np.testing.assert_array_equal(got, arr)
    got = st["w"]
    got[0, 0] = 99.0  # caller owns it: the next read is unaffected
    assert st["w"][0, 0] == 0.0


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: b[:4],  # shorter than the length prefix
        lambda b: struct.pack("<Q", 10**12) + b[8:],  # header length beyond the file
        lambda b: b[:8] + b"{not json" + b[17:],  # header unreadable
        lambda b: b[:-5],  # tensor data cut short
    ],
)
def test_damaged_file_is_rejected(tmp_path: Path, damage):
    """Guards a truncated or corrupted model download: it is refused with a clear
    SafetensorsError instead of producing garbage vectors."""
    path = tmp_path / "m.safetensors"
    write_safetensors(path, {"w": np.ones((4, 4), dtype=np.float32)})
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(SafetensorsError):
        SafetensorsFile(path)["w"]
