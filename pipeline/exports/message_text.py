"""The counting contract: which thread nodes are "a message", and their text.

A node counts when its author is user or assistant, it is not visually hidden, its
content type is text, multimodal_text or code, an assistant message is addressed to
everyone (recipient absent, null or "all"), and its text is not blank. Everything else
(system, tool, custom instructions, thoughts, tether_*, ...) is only tallied, except
three things worth keeping that are never counted as messages: the person's custom
instructions and ChatGPT's memory notes (``ThreadTally.notes``) and canvas documents
(``ThreadTally.canvas``). Citation markup is stripped from counted assistant text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.exports.canvas import CanvasReplay, is_canvas_recipient
from pipeline.exports.citations import has_markup, strip_citations
from pipeline.exports.models import Message
from pipeline.exports.text_safety import clean_text
from pipeline.exports.timestamps import epoch_or_none

COUNTED_TYPES = frozenset({"text", "multimodal_text", "code"})
# Plain epoch floats in this range skip epoch_or_none (which accepts the same and more).
_MIN_FAST, _MAX_FAST = 0.0, 4_102_444_800.0  # 1970 .. 2100
_ALL_RECIPIENTS = (None, "all")


def content_text(content: dict[str, Any]) -> str | None:
    """The text of a counted content type: string parts plus audio transcriptions
    joined by newlines, or ``content.text`` for code; None when there is none."""
    if content.get("content_type") == "code":
        text = content.get("text")
        return text if isinstance(text, str) else None
    parts = content.get("parts")
    if type(parts) is not list:
        return None
    if len(parts) == 1 and type(parts[0]) is str:  # the common case, without a join
        return parts[0]
    pieces: list[str] = []
    for part in parts:
        if isinstance(part, str):
            pieces.append(part)
        elif isinstance(part, dict) and part.get("content_type") == "audio_transcription":
            text = part.get("text")
            if isinstance(text, str):
                pieces.append(text)
    return "\n".join(pieces)


@dataclass(slots=True)
class ThreadTally:
    """What a thread held besides its counted messages (kept as conversation metadata)."""

    hidden: int = 0
    tool: int = 0
    other: int = 0  # system, thoughts, empty, unreadable, ...
    custom_instructions: bool = False
    model_slug: str | None = None
    user: int = 0  # counted user messages (assistant = the rest)
    cut: int = 0
    uncounted_types: dict[str, int] = field(default_factory=dict)
    # (kind, text, create_time) in thread order; kinds as in models.PersonNote.
    notes: list[tuple[str, str, float | None]] = field(default_factory=list)
    canvas: CanvasReplay | None = None  # created at the first canvas message


# The tool ChatGPT saves memories with: an assistant message to it holds the note.
MEMORY_TOOL = "bio"
_FENCE = "```"


_PREAMBLE = "The user provided"
# Where ChatGPT's rendering of 2023 custom instructions moves from the person's profile to
# how they want answers: one system text holds both, each fenced after its own preamble.
_HOW_MARK = "The user provided the additional info about how they would like you to respond"


def _fenced(text: str) -> str:
    """The person's words inside ChatGPT's preamble: 2024+ custom instructions read
    "The user provided the following information about themselves. ... User profile:
    ```<their text>```". Text without that preamble is theirs as it stands (fences and
    all: they may have written code)."""
    first = text.find(_FENCE)
    last = text.rfind(_FENCE)
    if not text.lstrip().startswith(_PREAMBLE) or first < 0 or last <= first:
        return text.strip()
    return text[first + len(_FENCE) : last].strip()


def _rendered_sections(text: str) -> list[tuple[str, str]]:
    """(kind, text) of ChatGPT's rendered 2023 custom instructions: "The user provided the
    following information about themselves. ... User profile:\n```<about>```\nThe user
    provided the additional info about how they would like you to respond:\n```<how>```".
    Either part may be missing; text without the preamble is the person's as it stands."""
    at = text.find(_HOW_MARK)
    if at < 0:
        return [("about_user", _fenced(text))]
    about, how = text[:at], text[at:]
    found = [("about_model", _fenced(how))]
    if about.strip():
        found.insert(0, ("about_user", _fenced(about)))
    return found


def _custom_instruction_texts(content: Any, meta: Any) -> list[tuple[str, str]]:
    """(kind, text) of a custom-instructions node of either era."""
    found: list[tuple[str, str]] = []
    if type(content) is dict and content.get("content_type") == "user_editable_context":
        for key, kind in (("user_profile", "about_user"), ("user_instructions", "about_model")):
            value = content.get(key)
            if isinstance(value, str):
                found.append((kind, _fenced(value)))
    elif type(meta) is dict:
        data = meta.get("user_context_message_data")
        if type(data) is dict:
            for key, kind in (
                ("about_user_message", "about_user"),
                ("about_model_message", "about_model"),
            ):
                value = data.get(key)
                if isinstance(value, str):
                    found.append((kind, value.strip()))
        elif type(content) is dict:  # 2023 without the structured copy: the rendered text
            text = content_text(content)
            if text:
                found.extend(_rendered_sections(text))
    return [(kind, clean_text(text)) for kind, text in found if text]


def _uncounted(
    msg: dict[str, Any], role: Any, ctype: Any, hidden: bool, tally: ThreadTally
) -> None:
    """Tally a node that is not a counted message (the rare path, kept out of the loop)."""
    meta = msg.get("metadata")
    recipient = msg.get("recipient")
    when = epoch_or_none(msg.get("create_time"))
    text: str | None  # content_text finds none in some messages
    if ctype == "user_editable_context" or (
        type(meta) is dict and meta.get("is_user_system_message") is True
    ):
        tally.custom_instructions = True
        for kind, text in _custom_instruction_texts(msg.get("content"), meta):
            tally.notes.append((kind, text, when))
    elif role == "assistant" and recipient == MEMORY_TOOL and ctype in COUNTED_TYPES:
        text = content_text(msg["content"])
        if text and not text.isspace():
            tally.notes.append(("memory_note", clean_text(text.strip()), when))
    elif role == "assistant" and is_canvas_recipient(recipient):
        if tally.canvas is None:
            tally.canvas = CanvasReplay()
        tally.canvas.add(recipient, msg.get("content"), when)
    if role == "tool" or (role == "assistant" and recipient not in _ALL_RECIPIENTS):
        tally.tool += 1
    if hidden:
        tally.hidden += 1
    else:
        tally.other += 1
    if isinstance(ctype, str):
        tally.uncounted_types[ctype] = tally.uncounted_types.get(ctype, 0) + 1


def thread_messages(
    thread: list[dict[str, Any]],
    max_chars: int,
    tally: ThreadTally,
) -> list[Message]:
    """Counted messages of ``thread`` (root to leaf), texts cleaned and cut at ``max_chars``.

    The loop is the hottest Python in an import (once per node of every thread), hence
    the inlined fast paths.
    """
    out: list[Message] = []
    last_assistant_meta: Any = None
    for node in thread:
        msg = node.get("message")
        if msg.__class__ is not dict:
            continue  # the root, or a bad node: skipped, the conversation goes on
        author = msg.get("author")
        role = author.get("role") if author.__class__ is dict else None
        content = msg.get("content")
        ctype = content.get("content_type") if content.__class__ is dict else None
        meta = msg.get("metadata")
        hidden = meta.__class__ is dict and meta.get("is_visually_hidden_from_conversation") is True
        if (
            hidden
            or ctype not in COUNTED_TYPES
            or (
                role != "user"
                and (role != "assistant" or msg.get("recipient") not in _ALL_RECIPIENTS)
            )
        ):
            _uncounted(msg, role, ctype, hidden, tally)
            continue
        text = content_text(content)  # type: ignore[arg-type]  # ctype implies a dict
        if text is None:
            tally.other += 1
            continue
        if "\x00" in text or not text.isascii():
            text = clean_text(text)
        if not text or text.isspace():
            tally.other += 1
            continue
        cut = len(text) > max_chars
        if cut:
            text = text[:max_chars]
            tally.cut += 1
        if role == "user":
            tally.user += 1
        else:
            last_assistant_meta = meta
            if has_markup(text):
                # Counted before stripping: a message that was only a citation still is one.
                text = strip_citations(text)
        msg_id = msg.get("id")
        if msg_id.__class__ is not str:
            msg_id = node.get("id")
            if msg_id.__class__ is not str:
                msg_id = f"position-{len(out)}"
        elif "\x00" in msg_id or not msg_id.isascii():
            msg_id = clean_text(msg_id)
        t = msg.get("create_time")
        if t.__class__ is not float or not _MIN_FAST < t < _MAX_FAST:
            t = epoch_or_none(t)
        out.append(Message(msg_id, role, text, t, ctype, cut))
    if last_assistant_meta.__class__ is dict:
        slug = last_assistant_meta.get("model_slug")
        if isinstance(slug, str):
            tally.model_slug = clean_text(slug)
    return out
