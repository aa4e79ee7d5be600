"""Where the conversations of an export live: a zip, a JSON file or a directory.

Resolves a path to the ordered list of JSON members holding conversations, each opened
as a binary stream on demand (zip members are decompressed as they are read, never
whole), and says in one human line why a path is not an export.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import BinaryIO

import ijson

from pipeline import zip_salvage
from pipeline.text_safety import SafeJSONStream

_MEMBER = re.compile(r"conversations(?:-(\d+))?\.json", re.IGNORECASE)
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip, or an empty one
_SNIFF_BYTES = 1 << 16


class NotAnExportError(ValueError):
    """The path cannot be read or does not hold a ChatGPT export (one human line)."""


@dataclass(frozen=True, slots=True)
class Member:
    """One JSON document of conversations inside an export."""

    name: str  # for messages: "export.zip:conversations-001.json"
    open: Callable[[], BinaryIO]
    damaged: str | None = None  # why the container is broken (read anyway, as far as it goes)
    size: int | None = None  # bytes of JSON it holds (uncompressed), when known


def _member_order(names: list[str]) -> list[str]:
    """Conversation members of the shallowest folder that has any: its shards in number
    order when it has shards (a 2026 export), else its conversations.json."""
    found = [(PurePosixPath(n), _MEMBER.fullmatch(PurePosixPath(n).name)) for n in names]
    found = [(p, m) for p, m in found if m and "__MACOSX" not in p.parts]
    if not found:
        return []
    top = min((len(p.parts), str(p.parent)) for p, _ in found)
    group = [(p, m) for p, m in found if (len(p.parts), str(p.parent)) == top]
    shards = [(p, m) for p, m in group if m.group(1) is not None]
    if shards:
        return [str(p) for p, m in sorted(shards, key=lambda pm: (int(pm[1].group(1)), pm[0].name))]
    return [str(p) for p, _ in group]


def _first_byte(stream: BinaryIO) -> bytes:
    """The first byte that is not whitespace or a byte-order mark (b"" when none)."""
    data = stream.read(_SNIFF_BYTES)
    data = data.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
    return data[:1]


def json_prefix(stream: BinaryIO) -> str | None:
    """The ijson prefix of the conversation items in ``stream``, or None if there are none.

    A top-level array, or an object with a ``conversations`` array (possibly after other
    keys, which are scanned past without being built).
    """
    first = _first_byte(stream)
    if first == b"[":
        return "item"
    if first != b"{":
        return None
    return "conversations.item"


def _has_conversations_key(open_stream: Callable[[], BinaryIO]) -> bool:
    try:
        with open_stream() as stream:
            for prefix, event, value in ijson.parse(SafeJSONStream(stream)):
                if prefix == "" and event == "map_key" and value == "conversations":
                    return True
    except Exception:  # a broken object without the key is not an export either
        return False
    return False


def _check_first(member: Member, where: str) -> None:
    try:
        with member.open() as stream:
            prefix = json_prefix(stream)
    except Exception as exc:  # zip and zlib raise a zoo of types for damaged archives

        raise NotAnExportError(f"{where}: cannot read {member.name} ({exc})") from exc
    if prefix is None:
        raise NotAnExportError(
            f"{where} is not a ChatGPT export: {member.name} does not hold a JSON array "
            "of conversations")
    if prefix == "conversations.item" and not _has_conversations_key(member.open):
        raise NotAnExportError(
            f"{where} is not a ChatGPT export: {member.name} is a JSON object without "
            "\"conversations\"")


def resolve(path: str | Path) -> list[Member]:
    """The conversation members of the export at ``path``, checked quickly.

    Raises NotAnExportError for unreadable paths and anything that is not a zip, JSON
    file or directory holding ``conversations*.json``.
    """
    p = Path(path)
    where = str(path)
    try:
        if p.is_dir():
            members = _dir_members(p, where)
        else:
            with p.open("rb") as f:
                head = f.read(4)
            if head in _ZIP_MAGIC:
                members = _zip_members(p, where)
            else:
                members = [Member(p.name, lambda: p.open("rb"), size=p.stat().st_size)]
    except NotAnExportError:
        raise
    except FileNotFoundError as exc:
        raise NotAnExportError(f"{where}: no such file or directory") from exc
    except PermissionError as exc:
        raise NotAnExportError(f"{where}: permission denied") from exc
    except OSError as exc:
        raise NotAnExportError(f"{where}: cannot read ({exc.strerror or exc})") from exc
    _check_first(members[0], where)
    return members


def _dir_members(p: Path, where: str) -> list[Member]:
    names = [
        str(f.relative_to(p).as_posix())
        for pattern in ("*.json", "*/*.json")
        for f in p.glob(pattern)
        if f.is_file()
    ]
    order = _member_order(names)
    if not order:
        raise NotAnExportError(
            f"{where} is not a ChatGPT export: no conversations.json or "
            "conversations-NNN.json in it")
    return [Member(n, (lambda f=p / n: f.open("rb")), size=(p / n).stat().st_size)
            for n in order]


def _zip_members(p: Path, where: str) -> list[Member]:
    try:
        with zipfile.ZipFile(p) as zf:
            sizes = {i.filename: i.file_size for i in zf.infolist() if not i.is_dir()}
            names = list(sizes)
    except Exception as exc:  # BadZipFile mostly; damaged headers raise other types too
        return _salvaged_members(p, where, exc)
    order = _member_order(names)
    if not order:
        raise NotAnExportError(
            f"{where} is not a ChatGPT export: the zip holds no conversations.json")
    return [Member(f"{p.name}:{n}", _zip_opener(p, n), size=sizes[n]) for n in order]


def _salvaged_members(p: Path, where: str, exc: BaseException) -> list[Member]:
    """A zip without its central directory (cut short): members from local headers."""
    try:
        entries = {e.name: e for e in zip_salvage.scan(p)}
    except OSError as err:
        raise NotAnExportError(f"{where}: cannot read ({err.strerror or err})") from err
    order = _member_order(list(entries))
    if not order:
        raise NotAnExportError(f"{where} is a damaged zip archive ({exc})")
    why = "the zip archive is cut short or damaged (its directory is missing)"
    return [Member(f"{p.name}:{n}", (lambda e=entries[n]: zip_salvage.MemberStream(p, e)),
                   damaged=why) for n in order]


def _zip_opener(p: Path, name: str) -> Callable[[], BinaryIO]:
    def open_member() -> BinaryIO:
        zf = zipfile.ZipFile(p)
        try:
            stream = zf.open(name)
        except BaseException:
            zf.close()
            raise
        return _ZipMemberStream(zf, stream)

    return open_member


class _ZipMemberStream:
    """A zip member stream that also closes its archive (one open archive per member)."""

    def __init__(self, zf: zipfile.ZipFile, stream: BinaryIO) -> None:
        self._zf = zf
        self._stream = stream

    def read(self, size: int = -1) -> bytes:
        return self._stream.read(size)

    def close(self) -> None:
        self._stream.close()
        self._zf.close()

    def __enter__(self) -> _ZipMemberStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
