"""The counting contract: which thread nodes are "a message", and their text.

A node counts when its author is user or assistant, it is not visually hidden, its
content type is text, multimodal_text or code, an assistant message is addressed to
everyone (recipient absent, null or "all"), and its text is not blank. Everything else
(system, tool, custom instructions, thoughts, tether_*, ...) is only tallied.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.models import Message
from pipeline.text_safety import clean_text
from pipeline.timestamps import epoch_or_none

COUNTED_TYPES = frozenset({"text", "multimodal_text", "code"})
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
    content_types: dict[str, int] = field(default_factory=dict)


def thread_messages(
    thread: list[dict[str, Any]], max_chars: int, tally: ThreadTally,
) -> list[Message]:
    """Counted messages of ``thread`` (root to leaf), texts cleaned and cut at ``max_chars``."""
    out: list[Message] = []
    for node in thread:
        msg = node.get("message")
        if type(msg) is not dict:
            continue  # the root, or a bad node: skipped, the conversation goes on
        author = msg.get("author")
        role = author.get("role") if type(author) is dict else None
        meta = msg.get("metadata")
        if type(meta) is not dict:
            meta = {}
        content = msg.get("content")
        ctype = content.get("content_type") if type(content) is dict else None
        recipient = msg.get("recipient")
        if meta.get("is_user_system_message") is True or ctype == "user_editable_context":
            tally.custom_instructions = True
        if role == "tool" or (role == "assistant" and recipient not in _ALL_RECIPIENTS):
            tally.tool += 1
        if isinstance(ctype, str):
            tally.content_types[ctype] = tally.content_types.get(ctype, 0) + 1
        if meta.get("is_visually_hidden_from_conversation") is True:
            tally.hidden += 1
            continue
        if (
            (role != "user" and role != "assistant")
            or ctype not in COUNTED_TYPES
            or (role == "assistant" and recipient not in _ALL_RECIPIENTS)
        ):
            tally.other += 1
            continue
        text = content_text(content)  # type: ignore[arg-type]  # ctype implies a dict
        if text is None:
            tally.other += 1
            continue
        text = clean_text(text)
        if not text.strip():
            tally.other += 1
            continue
        cut = len(text) > max_chars
        if cut:
            text = text[:max_chars]
        if role == "assistant":
            slug = meta.get("model_slug")
            if isinstance(slug, str):
                tally.model_slug = slug
        msg_id = msg.get("id")
        if not isinstance(msg_id, str):
            msg_id = node.get("id")
        out.append(Message(
            id=clean_text(msg_id) if isinstance(msg_id, str) else f"{len(out)}",
            role=role,
            text=text,
            create_time=epoch_or_none(msg.get("create_time")),
            content_type=ctype,  # type: ignore[arg-type]  # checked in COUNTED_TYPES
            cut=cut,
        ))
    return out
