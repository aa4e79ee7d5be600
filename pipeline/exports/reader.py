"""Stream the conversations of a ChatGPT export of any era, one at a time, in flat memory.

``ExportReader(path)`` accepts a ``.zip`` export, a ``conversations.json``, one shard
``conversations-NNN.json``, or an extracted export directory; iterating it yields
:class:`pipeline.exports.models.Conversation` objects holding only counted messages of the
active thread (see :mod:`pipeline.exports.message_text`), their canvas documents and what the
export says about the person (custom instructions, memory notes; see ``.notes``).
Conversations the person marked "do not remember" are passed over unread and counted in
``stats.excluded``. A broken file ends the stream with everything read before the
break; in an intact zip or folder only the broken member ends, the next one is read.
``.stats`` says so.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import ijson

from pipeline.exports.active_thread import active_thread
from pipeline.exports.message_text import ThreadTally, thread_messages
from pipeline.exports.models import Conversation, PersonNote, ReadStats
from pipeline.exports.sources import Member, NotAnExportError, json_break, json_prefix, resolve
from pipeline.exports.text_safety import SafeJSONStream, clean_text
from pipeline.exports.timestamps import epoch_or_none

__all__ = [
    "ExportReader",
    "NotAnExportError",
    "PersonNotes",
    "is_excluded",
    "normalize_conversation",
    "open_export",
]

_BUF = 1 << 16


def open_export(path: str | Path, **kwargs: Any) -> ExportReader:
    """An ExportReader for ``path``, checked now: raises NotAnExportError (one human line)
    when the path is unreadable or not an export. ``kwargs`` go to ExportReader."""
    reader = ExportReader(path, **kwargs)
    reader.members()
    return reader


def is_excluded(conv: Any) -> bool:
    """The person asked ChatGPT not to remember this conversation: nothing of it may be
    kept (no chunks, no soulprint, no notes)."""
    return type(conv) is dict and conv.get("is_do_not_remember") is True


def _conversation_id(conv: dict[str, Any], index: int) -> tuple[str, bool]:
    for key in ("id", "conversation_id"):
        value = conv.get(key)
        if isinstance(value, str) and value.strip():
            return clean_text(value), True
    return f"export-index-{index}", False  # stable across re-runs of the same file


def normalize_conversation(
    conv: Any,
    index: int,
    *,
    max_message_chars: int = 200_000,
) -> Conversation | None:
    """One raw export conversation as a Conversation, or None when it must be skipped
    (not an object, or no object ``mapping``)."""
    if type(conv) is not dict:
        return None
    mapping = conv.get("mapping")
    if type(mapping) is not dict:
        return None
    thread = active_thread(mapping, conv.get("current_node"))
    tally = ThreadTally()
    messages = thread_messages(thread, max_message_chars, tally)
    conv_id, has_id = _conversation_id(conv, index)
    title = conv.get("title")
    metadata: dict[str, Any] = {
        "model_slug": tally.model_slug or _str_or_none(conv.get("default_model_slug")),
        "custom_instructions": tally.custom_instructions,
        "hidden_nodes": tally.hidden,
        "tool_nodes": tally.tool,
        "uncounted_nodes": tally.other,
        "user_messages": tally.user,
        "assistant_messages": len(messages) - tally.user,
        "thread_nodes": len(thread),
        "mapping_nodes": len(mapping),
        "uncounted_types": tally.uncounted_types,
        "cut_messages": tally.cut,
    }
    if not has_id:
        metadata["id_missing"] = True
    for key in ("gizmo_id", "conversation_template_id"):
        value = _str_or_none(conv.get(key))
        if value:
            metadata[key] = value
    for key in ("is_archived", "is_starred"):  # the person's own signals about it
        if type(conv.get(key)) is bool:
            metadata[key] = conv[key]
    create_time = epoch_or_none(conv.get("create_time"))
    update_time = epoch_or_none(conv.get("update_time"))
    documents = tally.canvas.documents() if tally.canvas is not None else []
    if documents:
        metadata["canvas_documents"] = len(documents)
    if tally.canvas is not None and tally.canvas.timed_out:
        metadata["canvas_updates_timed_out"] = tally.canvas.timed_out
    notes = [
        PersonNote(
            kind, text, when or create_time, when or update_time or create_time, index, ordinal
        )
        for ordinal, (kind, text, when) in enumerate(tally.notes)
    ]
    return Conversation(
        id=conv_id,
        title=clean_text(title) if isinstance(title, str) else None,
        create_time=create_time,
        update_time=update_time,
        messages=messages,
        index=index,
        metadata=metadata,
        documents=documents,
        notes=notes,
    )


def _str_or_none(value: Any) -> str | None:
    return clean_text(value) if isinstance(value, str) else None


def _first_line(exc: BaseException) -> str:
    """The first line of an error (parser messages quote the text after it: user data)."""
    text = str(exc).strip().splitlines()
    return (text[0] if text else type(exc).__name__)[:200]


def _is_syntax_error(exc: BaseException) -> bool:
    """A JSON syntax error inside the document (``[{"a": 1, }]``), as opposed to a document
    that simply ends too early (yajl says "premature EOF")."""
    return isinstance(exc, ijson.JSONError) and "premature EOF" not in str(exc)


def _where_broken(member: Member) -> str:
    """ "at line L, column C" of a member's syntax error; "here" when re-reading fails."""
    try:
        return json_break(member.open)
    except Exception:  # the member cannot be read again (a damaged zip): no position
        return "here"


class PersonNotes:
    """Custom-instruction texts and memory notes of an export, each kept once.

    A custom instruction repeats in every conversation of its era: one entry per (kind,
    text), with the first and last time it was seen. ``items()`` lists them in the order
    first seen (export order, then thread order).
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str], PersonNote] = {}

    def add(self, note: PersonNote) -> None:
        key = (note.kind, note.text)
        have = self._seen.get(key)
        if have is None:
            self._seen[key] = PersonNote(
                note.kind,
                note.text,
                note.first_time,
                note.last_time,
                note.conversation_index,
                note.ordinal,
            )
            return
        if note.first_time is not None and (
            have.first_time is None or note.first_time < have.first_time
        ):
            have.first_time = note.first_time
        if note.last_time is not None and (
            have.last_time is None or note.last_time > have.last_time
        ):
            have.last_time = note.last_time

    def items(self, kind: str | None = None) -> list[PersonNote]:
        return [n for n in self._seen.values() if kind is None or n.kind == kind]

    def count(self, *kinds: str) -> int:
        return sum(1 for n in self._seen.values() if n.kind in kinds)


class ExportReader:
    """Iterate for Conversations; ``stats`` (ReadStats) fills as it goes.

    ``skip=n`` passes over the first n raw conversation items (objects or not) without
    normalizing or counting them, so a resumed run continues right after them;
    ``Conversation.index`` always counts every raw item from the start of the export.
    ``items_read`` is how many raw items were consumed so far (skipped ones included):
    the value to resume from, even when the last items were not conversations.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        max_message_chars: int = 200_000,
        skip: int = 0,
        name: str | None = None,
    ) -> None:
        self.path = Path(path)
        self.name = name  # the person's file name, for messages (default: the path)
        self.max_message_chars = max_message_chars
        self.skip = max(0, skip)
        self.stats = ReadStats()
        self.notes = PersonNotes()  # of the conversations read (not the skipped ones)
        self.items_read = 0
        self._members: list[Member] | None = None
        self._bytes_before = 0  # JSON bytes of the members already read
        self._stream: SafeJSONStream | None = None

    def members(self) -> list[Member]:
        """The export's conversation documents in reading order (validates the path)."""
        if self._members is None:
            self._members = resolve(self.path, name=self.name)
        return self._members

    def bytes_progress(self) -> tuple[int, int | None]:
        """(JSON bytes read so far, total JSON bytes of the export or None when unknown),
        for a progress bar; both count uncompressed bytes, so a zip reads like its JSON."""
        members = self.members()
        sizes = [m.size for m in members]
        total = None if None in sizes else sum(s for s in sizes if s is not None)
        stream = self._stream
        return self._bytes_before + (stream.bytes_read if stream is not None else 0), total

    def __iter__(self) -> Iterator[Conversation]:
        members = self.members()
        index = 0
        for member in members:
            counter = [index]
            try:
                yield from self._read_member(member, counter)
            except Exception as exc:  # a broken file ends its member, never the import
                self.stats.truncated = True
                # An OS error quotes the path it read: never the worker's copy.
                why = _first_line(exc).replace(str(self.path), self.name or self.path.name)
                if _is_syntax_error(exc):  # not cut short: broken where it stands
                    why = f"not valid JSON (it breaks {_where_broken(member)}: {why})"
                self._warn(
                    f"{member.name}: {why} (after {counter[0]:,} conversations "
                    f"from the start, near byte {self._bytes_read:,} of this file)"
                )
                if member.damaged:
                    return  # a salvaged zip: nothing after the break can be trusted
                # Members of an intact zip (or folder) are separate files: one bad shard
                # must not drop the shards after it.
            index = counter[0]
            self._bytes_before += self._bytes_read
            if member.damaged and not self.stats.truncated:
                self.stats.truncated = True
                self.stats.error = f"{member.name}: {member.damaged}"

    _bytes_read = 0

    def _warn(self, line: str) -> None:
        """Record a break: the first in full, later ones appended (several bad shards)."""
        error = self.stats.error
        self.stats.error = line if error is None else f"{error}; {line}"

    def _read_member(self, member: Member, counter: list[int]) -> Iterator[Conversation]:
        self._bytes_read = 0  # a member that fails to open has read nothing of itself
        prefix = json_prefix(member.open)
        if prefix is None:
            raise ValueError("not a JSON array of conversations")
        stats = self.stats
        cap = self.max_message_chars
        with member.open() as raw:
            stream = self._stream = SafeJSONStream(raw)
            try:
                for item in ijson.items(stream, prefix, use_float=True, buf_size=_BUF):
                    index = counter[0]
                    counter[0] = self.items_read = index + 1
                    if index < self.skip:
                        continue
                    if is_excluded(item):
                        stats.excluded += 1
                        del item
                        continue
                    try:
                        conv = normalize_conversation(item, index, max_message_chars=cap)
                    except Exception:  # a bug must cost one conversation, not the import
                        conv = None
                    del item
                    if conv is None:
                        stats.skipped += 1
                        continue
                    stats.conversations += 1
                    meta = conv.metadata
                    n, users = len(conv.messages), meta["user_messages"]
                    stats.messages += n
                    stats.user_messages += users
                    stats.assistant_messages += n - users
                    stats.cut_messages += meta["cut_messages"]
                    for note in conv.notes:
                        self.notes.add(note)
                    yield conv
            finally:
                self._bytes_read = stream.bytes_read
                self._stream = None
