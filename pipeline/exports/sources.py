"""Where the conversations of an export live: a zip, a JSON file or a directory.

The one owner of "is this an export, and what is in it": the parse command, the reader
and the downloading stage all ask :func:`resolve`. It turns a path into the ordered list
of JSON members holding conversations, each opened as a binary stream on demand (zip
members are decompressed as they are read, never whole), and says in one human line why
a path is not an export. It salvages zips cut short (no central directory) and looks one
level into zips held inside a zip (privacy-request archives wrap the real export).

Messages name ``name`` (the person's file) when given, never the worker's copy.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import weakref
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, BinaryIO, cast

import ijson

from pipeline.errors import SoulprintError
from pipeline.exports import zip_salvage
from pipeline.exports.text_safety import SafeJSONStream

_MEMBER = re.compile(r"conversations(?:-(\d+))?\.json", re.IGNORECASE)
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip, or an empty one
_SNIFF_BYTES = 1 << 16
# A zip inside the upload is copied out to a temporary file (zipfile needs to seek); it
# can never be larger than this, whatever its header claims.
NESTED_MAX_BYTES = 8 << 30
# How much of a broken JSON file is re-read to say on which line and column it breaks.
_LOCATE_BYTES = 1 << 20

# Codes a stage reports: the file is not an export / it is one but damaged beyond use.
NOT_AN_EXPORT = "not_an_export"
CORRUPT_EXPORT = "corrupt_export"


class NotAnExportError(SoulprintError, ValueError):
    """The path cannot be read or does not hold a ChatGPT export (one human line).

    ``where`` names the file as the person knows it; ``detail`` is the rest of the line
    (``str(error) == f"{where}{detail}"``); ``code`` is NOT_AN_EXPORT or CORRUPT_EXPORT.
    """

    def __init__(self, where: str, detail: str, code: str = NOT_AN_EXPORT) -> None:
        super().__init__(f"{where}{detail}")
        self.where = where
        self.detail = detail
        self.code = code


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
    shards = [(p, m) for p, m in group if m is not None and m.group(1) is not None]
    if shards:
        return [str(p) for p, m in sorted(shards, key=lambda pm: (int(pm[1].group(1)), pm[0].name))]
    return [str(p) for p, _ in group]


def _first_byte(stream: BinaryIO) -> bytes:
    """The first byte that is not whitespace or a byte-order mark (b"" when none)."""
    data = stream.read(_SNIFF_BYTES)
    data = data.removeprefix(b"\xef\xbb\xbf").lstrip(b" \t\r\n")
    return data[:1]


def json_prefix(open_stream: Callable[[], BinaryIO]) -> str | None:
    """The ijson prefix of the conversation items in the document ``open_stream`` opens:
    ``"item"`` for a top-level array, ``"conversations.item"`` for an object with a
    ``conversations`` key, ``""`` for a single conversation object (one with a
    ``mapping``), None when there are none. Raises the parser's error when an object
    breaks before either key is found (a file that is not valid JSON).
    """
    with open_stream() as stream:
        first = _first_byte(stream)
    if first == b"[":
        return "item"
    if first != b"{":
        return None
    with open_stream() as stream:
        # Keys are scanned past their values without building them.
        for prefix, event, value in ijson.parse(SafeJSONStream(stream)):
            if prefix == "" and event == "map_key":
                if value == "conversations":
                    return "conversations.item"
                if value == "mapping":
                    return ""
    return None


def _first_line(exc: BaseException) -> str:
    """The first line of a parser error (later lines quote the file: user data)."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:160]


def json_break(open_stream: Callable[[], BinaryIO]) -> str:
    """Where a document's JSON breaks: "at line L, column C" when that lies in its first
    megabyte (re-read with the json module, which knows positions), else "past its first
    megabyte"."""
    data = b""
    with open_stream() as stream:
        safe = SafeJSONStream(stream)
        while len(data) <= _LOCATE_BYTES:
            block = safe.read(_SNIFF_BYTES)
            if not block:
                break
            data += block
    whole = len(data) <= _LOCATE_BYTES
    try:
        json.loads(data.decode("utf-8", "replace"))
    except json.JSONDecodeError as err:
        if whole or err.pos < len(data) - 16:
            return f"at line {err.lineno:,}, column {err.colno:,}"
    return "past its first megabyte"


def _check_first(member: Member, where: str, label: str) -> None:
    """Raise NotAnExportError unless the first member holds conversations."""
    what = "it" if member.name == label else member.name
    try:
        prefix = json_prefix(member.open)
    except ijson.JSONError as exc:
        raise NotAnExportError(
            where,
            f" is not a ChatGPT export: {what} is not valid JSON (it breaks "
            f"{json_break(member.open)}: {_first_line(exc)})",
        ) from exc
    except Exception as exc:  # zip and zlib raise a zoo of types for damaged archives
        # An OS error's text quotes a path on this machine: only its reason is said.
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else _first_line(exc)
        raise NotAnExportError(
            where, f": cannot read {member.name} ({why})", CORRUPT_EXPORT
        ) from exc
    if prefix is not None:
        return
    with member.open() as stream:
        first = _first_byte(stream)
    what = "it" if member.name == label else member.name
    if not first:
        detail = f"{what} is empty"
    elif first == b"{":
        detail = f'{what} is a JSON object without "conversations"'
    else:
        try:
            with member.open() as stream:
                for _ in ijson.parse(SafeJSONStream(stream)):
                    pass
            detail = f"{what} does not hold a JSON array of conversations"
        except Exception as exc:  # a text file, an image, ...: not JSON at all
            detail = (
                f"{what} is not valid JSON (it breaks "
                f"{json_break(member.open)}: {_first_line(exc)})"
            )
    raise NotAnExportError(where, f" is not a ChatGPT export: {detail}")


def resolve(path: str | Path, *, name: str | None = None) -> list[Member]:
    """The conversation members of the export at ``path``, checked quickly.

    ``name`` is how messages call the file (the person's own file name; default: the
    path as given). Raises NotAnExportError for unreadable paths and anything that is
    not a zip, JSON file or directory holding conversations.
    """
    p = Path(path)
    where = name or str(path)
    label = name or p.name
    try:
        if p.is_dir():
            members = _dir_members(p, where)
        else:
            with p.open("rb") as f:
                head = f.read(4)
            if head in _ZIP_MAGIC:
                members = _zip_members(p, where, label, nested_ok=True)
            else:
                members = [Member(label, lambda: p.open("rb"), size=p.stat().st_size)]
    except NotAnExportError:
        raise
    except FileNotFoundError as exc:
        raise NotAnExportError(where, ": no such file or directory") from exc
    except PermissionError as exc:
        raise NotAnExportError(where, ": permission denied") from exc
    except OSError as exc:
        raise NotAnExportError(where, f": cannot read ({exc.strerror or 'I/O error'})") from exc
    _check_first(members[0], where, label)
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
            where, " is not a ChatGPT export: no conversations.json or conversations-NNN.json in it"
        )
    return [
        Member(
            n,
            cast(Callable[[], BinaryIO], lambda f=p / n: f.open("rb")),
            size=(p / n).stat().st_size,
        )
        for n in order
    ]


@dataclass(frozen=True, slots=True)
class _Entry:
    """A file inside a zip: its name, how to open it, its declared size if known."""

    name: str
    open: Callable[[], BinaryIO]
    size: int | None


def _zip_entries(p: Path, where: str) -> tuple[list[_Entry], str | None]:
    """Every file of the zip at ``p`` and, for a zip cut short (read from its local
    headers), why it is damaged."""
    try:
        with zipfile.ZipFile(p) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
        return [_Entry(i.filename, _zip_opener(p, i.filename), i.file_size) for i in infos], None
    except Exception as exc:  # BadZipFile mostly; damaged headers raise other types too
        try:
            found = zip_salvage.scan(p)
        except OSError as err:
            raise NotAnExportError(
                where,
                f": cannot read ({err.strerror or 'I/O error'})",
            ) from err
        if not found:
            raise NotAnExportError(
                where, f" is a damaged zip archive ({_first_line(exc)})", CORRUPT_EXPORT
            ) from exc
        entries = [
            _Entry(
                e.name,
                # MemberStream reads, closes and works with `with`: all the readers use.
                cast(Callable[[], BinaryIO], lambda e=e: zip_salvage.MemberStream(p, e)),
                e.size if e.method == 0 and e.size >= 0 else None,
            )
            for e in found
        ]
        return entries, "the zip archive is cut short or damaged (its directory is missing)"


def _zip_members(p: Path, where: str, label: str, *, nested_ok: bool) -> list[Member]:
    entries, damaged = _zip_entries(p, where)
    by_name = {e.name: e for e in entries}
    order = _member_order(list(by_name))
    if order:
        return [
            Member(
                f"{label}:{n}",
                by_name[n].open,
                damaged=damaged,
                size=None if damaged else by_name[n].size,
            )
            for n in order
        ]
    if nested_ok:
        nested = _nested_members(entries, where, label)
        if nested is not None:
            return nested
    if damaged:
        raise NotAnExportError(
            where,
            f" is a damaged zip archive ({damaged}) and no "
            "conversations could be found in what is left",
            CORRUPT_EXPORT,
        )
    raise NotAnExportError(where, " is not a ChatGPT export: the zip holds no conversations.json")


def _looks_like_export(name: str) -> bool:
    """A nested zip whose name says chatgpt/conversations (other products' zips, such as
    image archives, sit beside it in privacy archives)."""
    low = name.lower()
    return "chatgpt" in low or "conversation" in low


def _natural_key(name: str) -> list[tuple[int, int | str]]:
    """Name order with numbers compared as numbers ("-2.zip" before "-10.zip")."""
    return [
        (0, int(part)) if part.isdigit() else (1, part)
        for part in re.split(r"(\d+)", name.lower())
        if part
    ]


def _nested_members(entries: list[_Entry], where: str, label: str) -> list[Member] | None:
    """The members of every zip inside the zip that holds an export, as ONE export: a
    privacy archive splits a large export into "...-chatgpt-0001.zip", "-0002.zip", ...,
    read in name order. One level only: a zip found in there is never opened further.
    None when no inner zip holds an export."""
    zips = [
        e
        for e in entries
        if e.name.lower().endswith(".zip") and "__MACOSX" not in PurePosixPath(e.name).parts
    ]
    too_big: list[str] = []
    found: list[Member] = []
    for entry in sorted(zips, key=lambda e: _natural_key(e.name)):
        if entry.size is not None and entry.size > NESTED_MAX_BYTES:
            too_big.append(entry.name)
            continue
        scratch = _Scratch()
        try:
            if not _copy_capped(entry.open, scratch.path, NESTED_MAX_BYTES):
                too_big.append(entry.name)
                continue
            with scratch.path.open("rb") as f:
                if f.read(4) not in _ZIP_MAGIC:
                    continue
            members = _zip_members(scratch.path, where, f"{label}:{entry.name}", nested_ok=False)
        except NotAnExportError:
            continue
        except Exception:  # a damaged inner zip is just not the export
            continue
        # Each opener keeps the scratch copy alive; it is deleted once nobody holds one.
        found.extend(Member(m.name, _keeping(scratch, m.open), m.damaged, m.size) for m in members)
    # Refused when nothing else was found, or when the big one is named as part of the
    # export: importing the rest would leave part of it out without a word.
    refused = [n for n in too_big if _looks_like_export(n)] or (too_big if not found else [])
    if refused:
        raise NotAnExportError(
            where, f": the zip inside it ({refused[0]}) is larger than {NESTED_MAX_BYTES >> 30} GB"
        )
    return found or None


class _Scratch:
    """A temporary file deleted when this object is collected (or at exit)."""

    def __init__(self) -> None:
        fd, name = tempfile.mkstemp(prefix="soulprint-nested-", suffix=".zip")
        os.close(fd)
        self.path = Path(name)
        self._finalizer = weakref.finalize(self, self.path.unlink, missing_ok=True)


def _keeping(scratch: _Scratch, opener: Callable[[], BinaryIO]) -> Callable[[], BinaryIO]:
    def open_member() -> BinaryIO:
        _ = scratch  # referenced so the copy lives as long as this opener
        return opener()

    return open_member


def _copy_capped(open_stream: Callable[[], BinaryIO], dest: Path, cap: int) -> bool:
    """Stream a member to ``dest``; False (and nothing useful written) past ``cap`` bytes.
    A member cut short is copied as far as it goes."""
    written = 0
    with open_stream() as src, dest.open("wb") as out:
        while True:
            try:
                block = src.read(1 << 20)
            except (zipfile.BadZipFile, EOFError, OSError, ValueError):
                break  # cut or damaged: keep what came through, salvage may read it
            if not block:
                break
            written += len(block)
            if written > cap:
                return False
            out.write(block)
    return True


def _zip_opener(p: Path, name: str) -> Callable[[], BinaryIO]:
    def open_member() -> BinaryIO:
        zf = zipfile.ZipFile(p)
        try:
            stream = zf.open(name)
        except BaseException:
            zf.close()
            raise
        return cast(BinaryIO, _ZipMemberStream(zf, stream))  # reads, closes, `with`

    return open_member


class _ZipMemberStream:
    """A zip member stream that also closes its archive (one open archive per member)."""

    def __init__(self, zf: zipfile.ZipFile, stream: IO[bytes]) -> None:
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
