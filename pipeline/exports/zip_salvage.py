"""Read the members of a zip whose end is missing (a cut upload or download).

zipfile needs the central directory at the end of the archive; a truncated export has
none. The local headers in front of every member are enough to find and inflate the
members, as a stream, up to wherever the bytes stop.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

_LOCAL = b"PK\x03\x04"
_DESCRIPTOR = b"PK\x07\x08"
_HEADER = struct.Struct("<4sHHHHHIIIHH")  # signature .. extra length: 30 bytes
_STORED, _DEFLATED = 0, 8
_BLOCK = 1 << 16


@dataclass(frozen=True, slots=True)
class LocalEntry:
    """A member found from its local header; ``size`` is -1 when the header omits it."""

    name: str
    offset: int  # where its compressed data starts
    method: int
    size: int


def _zip64_size(extra: bytes) -> int:
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        if tag == 0x0001 and length >= 16 and pos + 20 <= len(extra):
            size: int = struct.unpack_from("<Q", extra, pos + 12)[0]  # after uncompressed size
            return size
        pos += 4 + length
    return -1


def _inflated_length(f: BinaryIO, start: int) -> int | None:
    """Compressed length of the deflate stream at ``start``, or None if it is cut."""
    f.seek(start)
    d = zlib.decompressobj(-15)
    fed = 0
    while not d.eof:
        block = f.read(_BLOCK)
        if not block:
            return None
        fed += len(block)
        try:
            while block and not d.eof:
                d.decompress(block, _BLOCK)  # output dropped: only the length matters
                block = d.unconsumed_tail
        except zlib.error:
            return None
    return fed - len(d.unused_data)


def scan(path: Path) -> list[LocalEntry]:
    """Every member whose local header is intact, in archive order."""
    entries: list[LocalEntry] = []
    with path.open("rb") as f:
        pos = 0
        while True:
            f.seek(pos)
            head = f.read(_HEADER.size)
            if len(head) < _HEADER.size or not head.startswith(_LOCAL):
                break
            (_, _, flags, method, _, _, _, csize, _, name_len, extra_len) = _HEADER.unpack(head)
            name_bytes = f.read(name_len)
            extra = f.read(extra_len)
            if len(name_bytes) < name_len or len(extra) < extra_len:
                break
            name = name_bytes.decode("utf-8" if flags & 0x800 else "cp437", "replace")
            start = pos + _HEADER.size + name_len + extra_len
            size = _zip64_size(extra) if csize == 0xFFFFFFFF else csize
            if flags & 0x08 and size == 0:
                size = -1  # sizes follow the data in a descriptor
            entries.append(LocalEntry(name, start, method, size))
            if size < 0:
                if method != _DEFLATED:
                    break  # a stored member of unknown size cannot be skipped
                length = _inflated_length(f, start)
                if length is None:
                    break
                pos = start + length
                f.seek(pos)
                sig = f.read(4)
                pos += (4 if sig == _DESCRIPTOR else 0) + 12
            else:
                pos = start + size
                if flags & 0x08:
                    f.seek(pos)
                    pos += (4 if f.read(4) == _DESCRIPTOR else 0) + 12
    return entries


class MemberStream:
    """The uncompressed bytes of one salvaged member, read in blocks; ends where the
    member or the file ends."""

    def __init__(self, path: Path, entry: LocalEntry) -> None:
        self._f = path.open("rb")
        self._f.seek(entry.offset)
        self._left = entry.size if entry.size >= 0 else None
        self._inflate = zlib.decompressobj(-15) if entry.method == _DEFLATED else None
        if entry.method not in (_STORED, _DEFLATED):
            self._f.close()
            raise NotImplementedError(f"compression method {entry.method}")
        self._pending = b""
        self._done = False

    def _raw(self, n: int) -> bytes:
        if self._left is not None:
            n = min(n, self._left)
        data = self._f.read(n)
        if self._left is not None:
            self._left -= len(data)
        return data

    def read(self, size: int = -1) -> bytes:
        size = size if size > 0 else _BLOCK
        if self._inflate is None:
            return self._raw(size) if self._left is not None else b""
        while not self._done:
            if not self._pending:
                self._pending = self._raw(_BLOCK)
                if not self._pending:
                    self._done = True
                    return self._inflate.flush()
            out = self._inflate.decompress(self._pending, size)
            self._pending = self._inflate.unconsumed_tail
            if self._inflate.eof:
                self._done, self._pending = True, b""
            if out:
                return out
        return b""

    def close(self) -> None:
        self._f.close()

    def __enter__(self) -> MemberStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
