"""The shapes that flow between reader, chunker, stages and soulprint."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Role = Literal["user", "assistant"]


@dataclass(slots=True)
class Message:
    """A counted message (see the counting contract in docs/architecture.md)."""

    id: str
    role: Role
    text: str
    create_time: float | None
    content_type: str
    cut: bool = False  # text was longer than the cap and was cut


@dataclass(slots=True)
class Document:
    """A canvas document's final text (not a message: it is never counted as one)."""

    name: str
    kind: str  # the canvas type: "document", "code/python", ...
    text: str
    first_time: float | None
    last_time: float | None


@dataclass(slots=True)
class PersonNote:
    """Something the export says about the person, outside their messages.

    ``kind``: "about_user" / "about_model" (their custom instructions: what ChatGPT
    should know about them, how it should answer; their own words) or "memory_note" (a
    note ChatGPT saved to its memory: ChatGPT's words about them).
    """

    kind: str
    text: str
    first_time: float | None
    last_time: float | None
    conversation_index: int  # where it was first seen (export order)
    ordinal: int  # its order within that conversation


@dataclass(slots=True)
class Conversation:
    """One conversation: its counted messages on the active thread, root to leaf."""

    id: str
    title: str | None
    create_time: float | None
    update_time: float | None
    messages: list[Message]
    index: int  # position in the export, 0-based across shards
    metadata: dict[str, Any] = field(default_factory=dict)
    documents: list[Document] = field(default_factory=list)  # canvas documents
    notes: list[PersonNote] = field(default_factory=list)  # custom instructions, memories

    @property
    def user_message_count(self) -> int:
        return sum(1 for m in self.messages if m.role == "user")

    @property
    def assistant_message_count(self) -> int:
        return sum(1 for m in self.messages if m.role == "assistant")


@dataclass(slots=True)
class Chunk:
    """Consecutive messages of one conversation, sized for the embedder."""

    id: str  # deterministic UUID (text form): same input, same id
    conversation_id: str
    conversation_title: str | None
    index: int  # 0-based position within the conversation
    text: str
    first_time: float | None
    last_time: float | None
    message_count: int


@dataclass(slots=True)
class ReadStats:
    """What the reader saw; filled while iterating."""

    conversations: int = 0
    skipped: int = 0
    messages: int = 0
    user_messages: int = 0
    assistant_messages: int = 0
    cut_messages: int = 0
    excluded: int = 0  # is_do_not_remember conversations: not read, not counted above
    truncated: bool = False  # the file ended early or broke; `error` says where
    error: str | None = None
