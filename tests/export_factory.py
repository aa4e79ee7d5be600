"""Build synthetic ChatGPT exports of every era, for tests and benchmarks.

The shapes follow real exports (see DESIGN.md "ChatGPT exports"):

- ``"2023"``: conversations carry only ``id``; nodes have ``children``; messages lack
  ``status``/``weight``/``channel``; custom instructions are a hidden ``system``
  message with ``is_user_system_message``.
- ``"2024"`` / ``"2025"``: conversations carry ``id`` and ``conversation_id``; custom
  instructions are a hidden ``user`` message of type ``user_editable_context``.
- ``"2026"``: like 2025, but nodes are ``{id, message, parent}`` only (no ``children``),
  and the export is usually split into ``conversations-NNN.json`` shards.

Everything is deterministic: the same arguments give the same bytes.

Typical use::

    convs = make_export(3, 4, era="2026")        # 3 conversations, 4 counted messages each
    write_zip(tmp_path / "export.zip", convs, split=True)
    write_json(tmp_path / "conversations.json", convs, pretty=True)

Every conversation made by :func:`make_conversation` has exactly ``n_messages``
counted messages (alternating user/assistant, starting with user) on its active
thread, plus a hidden system root message that is not counted.
"""

from __future__ import annotations

import json
import random
import uuid
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson

ERAS: tuple[str, ...] = ("2023", "2024", "2025", "2026")
_NS = uuid.UUID("6f1c2b1e-5d0a-4c1e-9b7e-2f3a4b5c6d7e")
_BASE_TIME = {
    "2023": 1_690_000_000.0,
    "2024": 1_720_000_000.0,
    "2025": 1_750_000_000.0,
    "2026": 1_770_000_000.0,
}
_PROSE = (
    "the garden needs water before the heat comes back and I still have to fix the "
    "bike chain tomorrow morning maybe after coffee with Ana because she knows more "
    "about gears than anyone I have met this year so I should ask how she learned it "
    "python function returns list sorted by date but the tests fail on empty input "
    "why does the bread collapse when the dough rises too long in a warm kitchen"
)
_WORDS = _PROSE.split()


def _uuid(*parts: object) -> str:
    return str(uuid.uuid5(_NS, "/".join(str(p) for p in parts)))


def sample_text(n_chars: int, seed: int = 0) -> str:
    """Deterministic English-looking prose of about ``n_chars`` characters: sentences of
    8-20 words ending in ". ", "? " or "! ", in paragraphs of 2-5 sentences."""
    rng = random.Random(seed)
    paragraphs: list[str] = []
    length = 0
    while length < n_chars or not paragraphs:
        sentences = []
        for _ in range(rng.randint(2, 5)):
            words = [rng.choice(_WORDS) for _ in range(rng.randint(8, 20))]
            sentence = " ".join(words)
            sentences.append(sentence[0].upper() + sentence[1:] + rng.choice("...?!"))
            length += len(sentences[-1]) + 1
            if length >= n_chars:
                break
        paragraphs.append(" ".join(sentences))
    return "\n\n".join(paragraphs)


def make_message(
    role: str,
    text: str = "",
    *,
    era: str = "2024",
    content_type: str = "text",
    content: dict[str, Any] | None = None,
    parts: list[Any] | None = None,
    create_time: Any = None,
    hidden: bool = False,
    recipient: Any = "all",
    metadata: dict[str, Any] | None = None,
    message_id: str | None = None,
) -> dict[str, Any]:
    """One ``message`` object as it appears inside a mapping node.

    ``content`` replaces the whole content object; otherwise ``code`` puts ``text`` in
    ``content.text`` and every other type puts ``parts`` (default ``[text]``) in
    ``content.parts``. ``recipient=None`` leaves the key out entirely.
    """
    if content is None:
        if content_type == "code":
            content = {"content_type": "code", "language": "python", "text": text}
        else:
            content = {"content_type": content_type, "parts": [text] if parts is None else parts}
    meta: dict[str, Any] = {}
    if role == "assistant":
        meta["model_slug"] = "gpt-4" if era == "2023" else "gpt-4o"
    if hidden:
        meta["is_visually_hidden_from_conversation"] = True
    meta.update(metadata or {})
    msg: dict[str, Any] = {
        "id": message_id or _uuid("msg", role, text, create_time, content_type),
        "author": {"role": role, "name": None, "metadata": {}},
        "create_time": create_time,
        "update_time": None,
        "content": content,
        "end_turn": role == "assistant" or None,
        "metadata": meta,
    }
    if era != "2023":
        msg.update(status="finished_successfully", weight=1.0, channel=None)
    if recipient is not None:
        msg["recipient"] = recipient
    return msg


def custom_instructions_message(era: str = "2024") -> dict[str, Any]:
    """The hidden custom-instructions message of ``era`` (never a counted message)."""
    about = "I am a gardener and hobby programmer living in Lisbon."
    how = "Answer briefly, in plain words."
    if era == "2023":
        return make_message(
            "system",
            f"User profile: {about}\nInstructions: {how}",
            era=era,
            hidden=True,
            metadata={
                "is_user_system_message": True,
                "user_context_message_data": {
                    "about_user_message": about,
                    "about_model_message": how,
                },
            },
        )
    return make_message(
        "user",
        era=era,
        hidden=True,
        content={
            "content_type": "user_editable_context",
            "user_profile": about,
            "user_instructions": how,
        },
    )


def add_node(
    conv: dict[str, Any],
    message: dict[str, Any] | None,
    parent: str | None,
    *,
    node_id: str | None = None,
) -> str:
    """Add a node under ``parent`` (keeps ``children`` lists when the era has them).

    Returns the new node id. Does not move ``current_node``.
    """
    mapping: dict[str, Any] = conv["mapping"]
    nid = node_id or _uuid("node", conv.get("id"), len(mapping), parent)
    node: dict[str, Any] = {"id": nid, "message": message, "parent": parent}
    if mapping:
        first = next(iter(mapping.values()))  # the root decides: one era per conversation
        with_children = isinstance(first, dict) and "children" in first
    else:
        with_children = conv.get("_era") != "2026"
    if with_children:
        node["children"] = []
        if parent is not None and isinstance(mapping.get(parent), dict):
            mapping[parent].setdefault("children", []).append(nid)
    mapping[nid] = node
    return nid


def make_conversation(
    n_messages: int = 4,
    *,
    era: str = "2024",
    index: int = 0,
    messages: Sequence[dict[str, Any]] | None = None,
    title: str | None = "auto",
    custom_instructions: bool = False,
    user_chars: int = 120,
    assistant_chars: int = 600,
) -> dict[str, Any]:
    """One conversation of ``era`` whose active thread is a straight line.

    The thread is: a root node without message, a hidden system message, optional
    custom instructions, then ``messages`` if given, else ``n_messages`` alternating
    user/assistant text messages (``user_chars``/``assistant_chars`` long), each 30 s
    after the previous one. ``current_node`` is the last node.
    """
    if era not in ERAS:
        raise ValueError(f"era must be one of {ERAS}")
    conv_id = _uuid("conv", era, index)
    start = _BASE_TIME[era] + index * 3_600.0
    conv: dict[str, Any] = {
        "title": f"Conversation {index}" if title == "auto" else title,
        "create_time": start,
        "update_time": start + 30.0 * (n_messages + 2),
        "mapping": {},
        "moderation_results": [],
        "current_node": None,
        "plugin_ids": None,
        "id": conv_id,
    }
    if era != "2023":
        conv.update(
            conversation_id=conv_id, default_model_slug="gpt-4o", gizmo_id=None, is_archived=False
        )
    if era in ("2025", "2026"):
        conv.update(
            conversation_template_id=None, safe_urls=[], async_status=None, disabled_tool_ids=[]
        )
    conv["_era"] = era  # read by add_node, removed below
    last = add_node(conv, None, None, node_id=_uuid("root", conv_id))
    last = add_node(conv, make_message("system", "", era=era, hidden=True, create_time=None), last)
    if custom_instructions:
        last = add_node(conv, custom_instructions_message(era), last)
    if messages is None:
        messages = [
            make_message(
                role,
                sample_text(
                    user_chars if role == "user" else assistant_chars, seed=index * 7919 + k
                ),
                era=era,
                create_time=start + 30.0 * (k + 1),
            )
            for k, role in ((k, "user" if k % 2 == 0 else "assistant") for k in range(n_messages))
        ]
    for msg in messages:
        last = add_node(conv, msg, last)
    conv["current_node"] = last
    del conv["_era"]
    return conv


def make_export(
    n_conversations: int,
    messages_per_conversation: int = 4,
    *,
    era: str = "2024",
    **kwargs: Any,
) -> list[dict[str, Any]]:
    """``n_conversations`` conversations of ``era`` (or ``"mixed"``: eras in turn).

    Each has ``messages_per_conversation`` counted messages; ``kwargs`` go to
    :func:`make_conversation`.
    """
    eras = ERAS if era == "mixed" else (era,)
    return [
        make_conversation(messages_per_conversation, era=eras[i % len(eras)], index=i, **kwargs)
        for i in range(n_conversations)
    ]


def dumps(conversations: Any, *, pretty: bool = False, ascii: bool = False) -> bytes:
    """Serialize like an export: minified one line by default, or indented, or ASCII-escaped."""
    if ascii:
        return json.dumps(
            conversations,
            ensure_ascii=True,
            indent=2 if pretty else None,
            separators=None if pretty else (",", ":"),
        ).encode("ascii")
    return orjson.dumps(conversations, option=orjson.OPT_INDENT_2 if pretty else 0)


def write_json(
    path: str | Path,
    conversations: Any,
    *,
    pretty: bool = False,
    ascii: bool = False,
    wrap: bool = False,
) -> Path:
    """Write ``conversations.json`` (any name); ``wrap`` gives ``{"conversations": [...]}``."""
    path = Path(path)
    data = {"conversations": conversations} if wrap else conversations
    path.write_bytes(dumps(data, pretty=pretty, ascii=ascii))
    return path


def _shards(conversations: Sequence[Any], per_shard: int) -> list[Sequence[Any]]:
    return [conversations[i : i + per_shard] for i in range(0, len(conversations), per_shard)] or [
        []
    ]


def _extras() -> dict[str, bytes]:
    return {
        "user.json": b'{"id": "user-synthetic", "email": "someone@example.org"}',
        "message_feedback.json": b"[]",
        "shared_conversations.json": b"[]",
        "chat.html": b"<html><body>synthetic export</body></html>",
    }


def write_dir(
    path: str | Path,
    conversations: Sequence[Any],
    *,
    split: bool = False,
    per_shard: int = 2,
    pretty: bool = False,
    extras: bool = True,
) -> Path:
    """An extracted export directory: ``conversations.json`` or ``conversations-NNN.json``."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for name, data in _members(conversations, split, per_shard, pretty, extras):
        (path / name).write_bytes(data)
    return path


def write_zip(
    path: str | Path,
    conversations: Sequence[Any],
    *,
    split: bool = False,
    per_shard: int = 2,
    pretty: bool = False,
    extras: bool = True,
    folder: str = "",
) -> Path:
    """A zip export; ``split`` writes ``per_shard`` conversations per shard, in a shuffled
    member order (readers must sort by name). ``folder`` nests members in a directory."""
    path = Path(path)
    members = _members(conversations, split, per_shard, pretty, extras)
    members.reverse()  # shards stored out of name order on purpose
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members:
            zf.writestr(folder + name, data)
    return path


def _members(
    conversations: Sequence[Any],
    split: bool,
    per_shard: int,
    pretty: bool,
    extras: bool,
) -> list[tuple[str, bytes]]:
    out: list[tuple[str, bytes]] = list(_extras().items()) if extras else []
    if split:
        for i, shard in enumerate(_shards(conversations, per_shard)):
            out.append((f"conversations-{i:03d}.json", dumps(list(shard), pretty=pretty)))
    else:
        out.append(("conversations.json", dumps(list(conversations), pretty=pretty)))
    return out
