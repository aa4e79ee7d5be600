"""Canvas documents: the final text of each document written in a conversation's canvas.

A canvas exists in an export only as assistant messages addressed to the canvas tool:
``canmore.create_textdoc`` with JSON ``{"name", "type", "content"}`` and
``canmore.update_textdoc`` with JSON ``{"updates": [{"pattern", "multiple",
"replacement"}]}`` (a regular expression over the current text; ``".*"`` rewrites it
all). The JSON comes in three shapes: a ``code`` message's ``content.text``, a string in
``parts``, or an object in ``parts``. Replaying them in thread order gives the document
as the person last saw it. An update whose pattern is bad or matches nothing leaves the
last good text.

Patterns come from the export, so they are untrusted: ``"(a|aa)+$"`` against forty
characters backtracks for minutes with :mod:`re`. They run under the ``regex`` package's
``timeout=`` (a wall-clock budget per update); an update over budget counts as a bad one
(the last good text stays) and is counted in :attr:`CanvasReplay.timed_out`.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any, TypeGuard

import regex

from pipeline.errors import SoulprintError
from pipeline.exports.citations import has_markup, strip_citations
from pipeline.exports.models import Document
from pipeline.exports.text_safety import clean_text

log = logging.getLogger(__name__)

CREATE = "canmore.create_textdoc"
UPDATE = "canmore.update_textdoc"
MAX_PATTERN_CHARS = 2_000  # a canvas pattern is short; longer ones are not replayed
# Seconds one update's pattern may run. A real canvas edit over a long document takes
# milliseconds; a catastrophic pattern would hold the worker (and its lease) for hours.
PATTERN_TIMEOUT_S = 0.25
_WHOLE = frozenset({".*", "^.*$", "(?s).*", "[\\s\\S]*", "^[\\s\\S]*$"})


def is_canvas_recipient(recipient: Any) -> TypeGuard[str]:
    return recipient in (CREATE, UPDATE)


def canvas_payload(content: Any) -> dict[str, Any] | None:
    """The JSON object a canvas message carries, whichever of the three shapes it uses."""
    if type(content) is not dict:
        return None
    raw: Any = None
    if content.get("content_type") == "code":
        raw = content.get("text")
    else:
        parts = content.get("parts")
        if type(parts) is list and parts:
            raw = parts[0] if len(parts) == 1 else "".join(p for p in parts if isinstance(p, str))
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    return raw if type(raw) is dict else None


class PatternTimeout(SoulprintError):
    """An update's pattern ran past PATTERN_TIMEOUT_S (catastrophic backtracking)."""


def _apply(text: str, update: dict[str, Any]) -> str | None:
    """``text`` after one update, or None when the update cannot be applied. Raises
    PatternTimeout when the pattern runs past its budget."""
    pattern, replacement = update.get("pattern"), update.get("replacement")
    if not isinstance(pattern, str) or not isinstance(replacement, str):
        return None
    if pattern in _WHOLE:
        return replacement
    if len(pattern) > MAX_PATTERN_CHARS:
        return None
    try:
        # V0: the syntax of Python's re, which is what canvas patterns are written in.
        rx = regex.compile(pattern, regex.DOTALL | regex.V0)
    except (regex.error, RecursionError, OverflowError, ValueError):
        return None
    out: list[str] = []
    pos, last_end, found = 0, -1, False
    try:
        for m in rx.finditer(text, timeout=PATTERN_TIMEOUT_S):
            if m.start() == m.end() == last_end:
                continue  # the empty match right after a match is not a second one
            out.append(text[pos : m.start()])
            out.append(replacement)  # literal text: documents hold backslashes (LaTeX, code)
            pos = last_end = m.end()
            found = True
            if update.get("multiple") is not True:
                break
    except TimeoutError as exc:
        raise PatternTimeout from exc
    if not found:
        return None
    out.append(text[pos:])
    return "".join(out)


@dataclass(slots=True)
class _Draft:
    name: str
    kind: str
    text: str
    first_time: float | None
    last_time: float | None


class CanvasReplay:
    """Feed canvas messages in thread order with :meth:`add`; :meth:`documents` gives
    each document's final text (empty documents left out)."""

    def __init__(self) -> None:
        self._drafts: list[_Draft] = []
        self.timed_out = 0  # updates whose pattern ran past PATTERN_TIMEOUT_S

    def add(self, recipient: str, content: Any, when: float | None) -> None:
        payload = canvas_payload(content)
        if payload is None:
            return
        if recipient == CREATE:
            body = payload.get("content")
            name = payload.get("name")
            kind = payload.get("type")
            self._drafts.append(
                _Draft(
                    clean_text(name) if isinstance(name, str) and name.strip() else "Untitled",
                    kind if isinstance(kind, str) else "document",
                    body if isinstance(body, str) else "",
                    when,
                    when,
                )
            )
            return
        updates = payload.get("updates")
        if not self._drafts or type(updates) is not list:
            return
        draft = self._drafts[-1]  # updates go to the document created last
        text: str | None  # None after an update that cannot be applied
        text = draft.text
        for update in updates:
            try:
                text = _apply(text, update) if type(update) is dict else None
            except PatternTimeout:
                self.timed_out += 1
                # The pattern is the export's, not a secret, but may quote the person's
                # document: only its length goes to the log.
                log.warning(
                    "canvas update pattern (%d chars) ran past %.2f s; the "
                    "document keeps its last good text",
                    len(update.get("pattern", "")),
                    PATTERN_TIMEOUT_S,
                )
                return
            if text is None:
                return  # a bad update: the last good text stays
        draft.text = text
        if when is not None:
            draft.last_time = when

    def documents(self) -> list[Document]:
        out = []
        for d in self._drafts:
            # Documents the assistant wrote carry its citation markup like its answers do.
            text = clean_text(d.text)
            if has_markup(text):
                text = strip_citations(text)
            if text.strip():
                out.append(Document(d.name, d.kind, text, d.first_time, d.last_time))
        return out
