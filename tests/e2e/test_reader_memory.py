"""Flat memory: the reader never holds the whole file, nor a whole zip member."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from export_factory import dumps, make_conversation

ROOT = Path(__file__).resolve().parents[2]
_CHILD = """
import resource, sys
from pipeline.exports.chunker import chunk_conversation
from pipeline.exports.reader import ExportReader
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
reader = ExportReader(sys.argv[1])
chunks = sum(len(chunk_conversation(c)) for c in reader)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(reader.stats.conversations, chunks, (after - before) // 1024)
"""


def _big_export(path: Path, target_bytes: int) -> int:
    """A one-line export of about ``target_bytes``, written as it is built; returns how
    many conversations it holds."""
    n = 0
    size = 0
    with path.open("wb") as f:
        f.write(b"[")
        while size < target_bytes:
            data = dumps(
                make_conversation(
                    12, era="2026" if n % 2 else "2024", index=n, assistant_chars=1500
                )
            )
            f.write((b"," if n else b"") + data)
            size += len(data) + 1
            n += 1
        f.write(b"]")
    return n


@pytest.mark.parametrize("container", ["json", "zip"])
def test_peak_memory_stays_far_below_file_size(tmp_path: Path, container: str) -> None:
    """Guards pitfall 6 (memory exhaustion): reading and chunking a 40 MB one-line
    export, bare or zipped, grows the process by a small fraction of the file (loading
    it whole would take several times its size)."""
    path = tmp_path / "conversations.json"
    n = _big_export(path, 40_000_000)
    if container == "zip":
        zipped = tmp_path / "export.zip"
        with zipfile.ZipFile(zipped, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.write(path, "conversations.json")
        path.unlink()
        path = zipped
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    conversations, chunks, grew_mb = (int(x) for x in out.stdout.split())
    assert conversations == n and chunks > n * 12
    assert grew_mb < 15, json.dumps({"grew_mb": grew_mb})
