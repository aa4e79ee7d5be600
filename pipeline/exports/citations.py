"""Strip citation markup from assistant text before it is chunked and embedded.

Two families reach exports: the browsing tool's ``【12†source】`` / ``【4:0†report.pdf】``
and the private-use markers of newer answers, ``\\ue200cite\\ue202turn0search18\\ue201``
(U+E200 opens, U+E202 separates, U+E201 closes; ``\\ue203``/``\\ue204`` wrap the cited
words). Each is 5-6 word pieces of noise to the embedder. The words around a marker stay:
an ``entity`` marker becomes its display name, a wrapped span keeps its words, and every
other marker (and any stray character of the U+E200-U+E2FF marker block) is removed.
User text never goes through here.
"""

from __future__ import annotations

import json
import re

# 【…†…】: bounded so that a stray bracket never swallows a paragraph.
_BRACKET = re.compile(r"[ \t]?【[^【】\n]{0,120}†[^【】\n]{0,200}】")
# \ue200 type \ue202 args \ue201 (args may hold further \ue202 separators).
_MARKER = re.compile("[ \t]?\ue200([a-z_]{1,40})\ue202?([^\ue200\ue201]{0,2000})\ue201")
# A marker cut before its closing \ue201 (answers stopped mid-citation): the type and its
# reference ids ("cite", "turn9search9") are ASCII words; the sentence's punctuation stays.
_UNCLOSED = re.compile("[ \t]?\ue200[a-z_]{1,40}(?:\ue202[A-Za-z0-9_:-]{0,200})*")
_PRIVATE_MARKS = re.compile("[\ue200-\ue2ff]")


def has_markup(text: str) -> bool:
    """Cheap test: could ``text`` hold citation markup? (ASCII text never does.)"""
    return not text.isascii() and ("†" in text or _PRIVATE_MARKS.search(text) is not None)


def _entity_name(args: str) -> str:
    """The display name of an ``entity`` marker: its JSON array's second string."""
    try:
        value = json.loads(args.split("\ue202")[0])
    except ValueError:
        return ""
    if isinstance(value, list) and len(value) > 1 and isinstance(value[1], str):
        return value[1]
    return ""


def _replace_marker(match: re.Match[str]) -> str:
    if match.group(1) == "entity":
        name = _entity_name(match.group(2))
        if name:
            lead = match.group(0)[0]
            return (lead if lead in " \t" else "") + name
    return ""


def strip_citations(text: str) -> str:
    """``text`` without citation markers; the sentence around each is kept."""
    if not has_markup(text):
        return text
    out = _BRACKET.sub("", text) if "†" in text else text
    out = _MARKER.sub(_replace_marker, out)
    if "\ue200" in out:
        out = _UNCLOSED.sub("", out)
    # The space in front of a marker goes with it ("Lisbon 【1†a】." -> "Lisbon.").
    return _PRIVATE_MARKS.sub("", out)
