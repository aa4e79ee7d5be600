"""Cut a conversation's counted messages into retrieval chunks sized for the embedder.

all-MiniLM-L6-v2 reads at most 256 word pieces, about 1,000 characters of English, so
chunks aim at ``target_chars`` (default 1,000). A chunk is consecutive messages, each
labelled with its role; a message is split only when it alone exceeds the target, then
at paragraph, sentence or word boundaries. Chunk ids are uuid5 of the conversation id,
chunk index and content: the same input always gives the same ids (idempotent re-runs).

Two policies (setting ``CHUNK_POLICY``, default ``"person"``; bench/retrieval.py compares
them, README "Search" has the figures):

- ``"person"``: one chunk per message the person wrote, followed by at most
  ``reply_chars`` (default 300) of the answer it got: memory centred on what they said,
  without embedding every long assistant answer in full; plus, as chunks of their own,
  the first-person sentences of each message they typed (``pipeline.exports.statements``), so a
  fact told in passing inside a request is found by a question about it. Better recall
  for fewer embedded characters on the benchmark persons.
- ``"person-plain"``: ``"person"`` without the first-person sentences (the policy before
  they were added; bench/retrieval.py's baseline, or for fewer vectors per export).
- ``"turns"``: consecutive messages of both roles packed up to ``target_chars`` (the
  original policy, and this function's default so its packing stays directly testable).

A conversation's canvas documents follow its messages, each labelled as a document with
its name (``Document “Letter to Ana”: ...``); their chunks hold no message
(``message_count`` 0), so message counts stay what the counting contract says.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Sequence

from pipeline.exports.models import Chunk, Conversation, Message
from pipeline.exports.statements import statements

DEFAULT_TARGET_CHARS = 1000
POLICIES = ("turns", "person", "person-plain")
DEFAULT_POLICY = "turns"
DEFAULT_REPLY_CHARS = 300
CHUNK_NAMESPACE = uuid.UUID("0d3c1f1e-6a51-4c7e-8f43-4b1f2a9e7c10")
_NAMESPACE_BYTES = CHUNK_NAMESPACE.bytes
LABELS = {"user": "User", "assistant": "Assistant"}
_SEPARATOR = "\n\n"
_SENTENCE_ENDS = (". ", "! ", "? ", ".\n", "!\n", "?\n", "。", "！", "？", "; ")


def chunk_id(conversation_id: str, index: int, text: str) -> str:
    """The deterministic id of a chunk: ``uuid5(CHUNK_NAMESPACE, "<conv id>\\x1f<index>
    \\x1f<text>")`` in text form, computed without uuid.UUID (a third of chunking time)."""
    name = f"{conversation_id}\x1f{index}\x1f{text}".encode("utf-8", "surrogatepass")
    h = hashlib.sha1(_NAMESPACE_BYTES + name).hexdigest()
    variant = "89ab"[int(h[16], 16) & 3]  # RFC 4122 variant bits; the version nibble is 5
    return f"{h[:8]}-{h[8:12]}-5{h[13:16]}-{variant}{h[17:20]}-{h[20:32]}"


def split_text(text: str, limit: int) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut at the last paragraph break,
    else sentence end, else whitespace in each window (a hard cut only when none)."""
    limit = max(1, limit)
    pieces: list[str] = []
    start, end = 0, len(text)
    while end - start > limit:
        stop = start + limit
        half = start + limit // 2
        cut = text.rfind("\n\n", half, stop)
        if cut < 0:
            # ". " first: it is nearly always there, and one search is cheaper than ten.
            cut = text.rfind(". ", half, stop)
            if cut < 0:
                cut = max(text.rfind(end_mark, half, stop) for end_mark in _SENTENCE_ENDS)
            cut = cut + 1 if cut >= 0 else -1  # after the mark: each starts with one char
        if cut < 0:
            quarter = start + limit // 4
            cut = max(text.rfind(" ", quarter, stop), text.rfind("\n", quarter, stop))
        if cut <= start:
            cut = stop
        piece = text[start:cut].strip()
        if piece:
            pieces.append(piece)
        start = cut
    piece = text[start:end].strip()
    if piece:
        pieces.append(piece)
    return pieces


def _times(messages: Sequence[Message]) -> tuple[float | None, float | None]:
    # Min/max, not first/last: a thread's order is not time order in real exports.
    times = [m.create_time for m in messages if m.create_time is not None]
    return (min(times), max(times)) if times else (None, None)


def _reply_slice(text: str, limit: int) -> str:
    """The start of an answer, at most ``limit`` characters, cut after a sentence or word."""
    if len(text) <= limit:
        return text
    return split_text(text, limit)[0] if limit > 0 else ""


def _person_groups(
    conv: Conversation,
    target: int,
    reply_chars: int,
    with_statements: bool = True,
) -> list[tuple[str, list[Message]]]:
    """Groups of the "person" policy: each user message (split if longer than the target)
    with the start of the reply that follows it, then (``with_statements``) each of its
    first-person sentences alone; answers to nobody are left out."""
    groups: list[tuple[str, list[Message]]] = []
    messages = conv.messages
    for i, message in enumerate(messages):
        if message.role != "user":
            continue
        reply = messages[i + 1] if i + 1 < len(messages) else None
        if reply is not None and reply.role == "user":
            reply = None
        pieces = split_text(message.text, target - 6)  # 6 = len("User: ")
        for k, piece in enumerate(pieces):
            text = f"User: {piece}"
            members = [message]
            if reply is not None and k == len(pieces) - 1 and reply_chars > 0:
                answer = _reply_slice(reply.text, reply_chars)
                if answer:
                    text += f"{_SEPARATOR}Assistant: {answer}"
                    members = [message, reply]
            groups.append((text, members))
        # The person's sentences about themselves, each a chunk of its own (see
        # pipeline/exports/statements.py): what a question about them should find.
        for sentence in statements(message.text, target) if with_statements else ():
            groups.append((f"User: {sentence}", [message]))
    return groups


def chunk_conversation(
    conv: Conversation,
    target_chars: int = DEFAULT_TARGET_CHARS,
    *,
    policy: str = DEFAULT_POLICY,
    reply_chars: int = DEFAULT_REPLY_CHARS,
) -> list[Chunk]:
    """The chunks of ``conv``'s counted messages, in thread order, under ``policy``
    (see the module docstring). Raises ValueError for an unknown policy."""
    target = max(1, target_chars)
    if policy in ("person", "person-plain"):
        person = _person_groups(conv, target, reply_chars, policy == "person")
        return _to_chunks(conv, _with_documents(conv, person, target))
    if policy != "turns":
        raise ValueError(f"unknown chunk policy {policy!r}; one of {POLICIES}")
    groups: list[tuple[str, list[Message]]] = []
    texts: list[str] = []
    members: list[Message] = []
    size = 0

    def flush() -> None:
        nonlocal texts, members, size
        if texts:
            groups.append((_SEPARATOR.join(texts), members))
        texts, members, size = [], [], 0

    for message in conv.messages:
        if not message.text or message.text.isspace():
            continue  # an answer that was nothing but citation markup
        label = "User" if message.role == "user" else "Assistant"
        rendered = f"{label}: {message.text}"
        if len(rendered) > target:
            flush()
            for piece in split_text(message.text, target - len(label) - 2):
                groups.append((f"{label}: {piece}", [message]))
            continue
        added = len(rendered) + (len(_SEPARATOR) if texts else 0)
        if texts and size + added > target:
            flush()
            added = len(rendered)
        texts.append(rendered)
        members.append(message)
        size += added
    flush()
    return _to_chunks(conv, _with_documents(conv, groups, target))


Group = tuple[str, list[Message], tuple[float | None, float | None] | None]


def _with_documents(
    conv: Conversation, groups: list[tuple[str, list[Message]]], target: int
) -> list[Group]:
    """The message groups, then the conversation's canvas documents (whatever the policy:
    a person's drafts are memory), each piece carrying its document's times."""
    out: list[Group] = [(text, msgs, None) for text, msgs in groups]
    for doc in conv.documents:
        label = f"Document “{doc.name}”"
        for piece in split_text(doc.text, max(1, target - len(label) - 2)):
            out.append((f"{label}: {piece}", [], (doc.first_time, doc.last_time)))
    return out


def _to_chunks(conv: Conversation, groups: list[Group]) -> list[Chunk]:
    chunks: list[Chunk] = []
    conv_id, title = conv.id, conv.title
    for index, (text, msgs, doc_time) in enumerate(groups):
        if doc_time is not None:
            first, last = doc_time
        elif len(msgs) == 1:
            first = last = msgs[0].create_time
        else:
            first, last = _times(msgs)
        # Positional: Chunk(id, conversation_id, conversation_title, index, text,
        # first_time, last_time, message_count), a measurable saving per chunk.
        chunks.append(
            Chunk(
                chunk_id(conv_id, index, text), conv_id, title, index, text, first, last, len(msgs)
            )
        )
    return chunks
