"""Chunks: consecutive labelled messages near the embedder's window, stable ids."""

from __future__ import annotations

import uuid
from pathlib import Path

from export_factory import make_conversation, make_export, write_json, write_zip

from pipeline.exports.chunker import CHUNK_NAMESPACE, chunk_conversation, chunk_id, split_text
from pipeline.exports.models import Conversation, Message
from pipeline.exports.reader import ExportReader


def conv_of(texts: list[str], times: list[float | None] | None = None) -> Conversation:
    times = times or [1_700_000_000.0 + i for i in range(len(texts))]
    msgs = [
        Message(f"m{i}", "user" if i % 2 == 0 else "assistant", t, times[i], "text")
        for i, t in enumerate(texts)
    ]
    return Conversation("conv-1", "Bread", None, None, msgs, 0)


def test_short_messages_share_a_chunk_with_role_labels() -> None:
    """Guards pitfall 4 (chunking real conversations): consecutive messages are packed
    together, each labelled with who said it, in thread order."""
    chunks = chunk_conversation(conv_of(["Why does my bread collapse?", "Overproofing."]))
    assert len(chunks) == 1
    assert chunks[0].text == "User: Why does my bread collapse?\n\nAssistant: Overproofing."
    assert chunks[0].message_count == 2
    assert (chunks[0].conversation_id, chunks[0].conversation_title) == ("conv-1", "Bread")


def test_chunks_stay_near_target_and_never_split_a_fitting_message() -> None:
    """Guards pitfall 6 (memory/embedder window): chunks stay within the target, and a
    message that fits the target is never cut across two chunks."""
    texts = [("word " * n).strip() for n in (30, 80, 150, 10, 120, 60, 190, 5, 90)]
    chunks = chunk_conversation(conv_of(texts), target_chars=1000)
    assert all(len(c.text) <= 1000 for c in chunks)
    assert sum(c.message_count for c in chunks) == len(texts)
    joined = "\n\n".join(c.text for c in chunks)
    for i, t in enumerate(texts):
        label = "User" if i % 2 == 0 else "Assistant"
        assert f"{label}: {t}" in joined
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert len(chunks) >= 3


def test_oversized_message_splits_at_paragraphs_then_sentences() -> None:
    """Guards pitfall 4 (very long messages): a message longer than the target is split
    at paragraph breaks, then sentence ends, never mid-word when a boundary exists."""
    para = "This is one sentence about sourdough. " * 12  # ~460 chars
    text = "\n\n".join([para.strip()] * 4)
    chunks = chunk_conversation(conv_of(["short question", text]), target_chars=600)
    assert chunks[0].text == "User: short question"
    pieces = chunks[1:]
    assert len(pieces) == 4
    assert all(p.text.startswith("Assistant: This is one sentence") for p in pieces)
    assert all(p.text.endswith("sourdough.") and len(p.text) <= 600 for p in pieces)
    assert all(p.message_count == 1 for p in pieces)


def test_split_text_falls_back_to_words_then_hard_cut() -> None:
    """Guards pitfall 4 (very long messages): text without sentence ends is cut at
    spaces, and text without spaces at the limit; nothing is lost."""
    words = "alpha beta gamma delta " * 100
    pieces = split_text(words, 100)
    assert all(len(p) <= 100 for p in pieces)
    assert " ".join(pieces).split() == words.split()
    blob = "x" * 1050
    assert [len(p) for p in split_text(blob, 100)] == [100] * 10 + [50]


def test_times_are_earliest_and_latest_of_the_chunk() -> None:
    """Guards pitfall 4 (malformed timestamps): null times are ignored, and a child
    timestamped before its parent does not invert the range."""
    chunks = chunk_conversation(conv_of(["a", "b", "c"], times=[50.0, None, 20.0]))
    assert (chunks[0].first_time, chunks[0].last_time) == (20.0, 50.0)
    none = chunk_conversation(conv_of(["a"], times=[None]))
    assert (none[0].first_time, none[0].last_time) == (None, None)


def test_ids_are_deterministic_uuid5_and_distinct() -> None:
    """Guards pitfall 7 (duplicates on re-run): the same input gives the same chunk ids,
    so a repeated import upserts instead of duplicating; different chunks differ."""
    conv = conv_of(["hello " * 100, "world " * 150, "again " * 120])
    first = [c.id for c in chunk_conversation(conv, 500)]
    again = [
        c.id
        for c in chunk_conversation(conv_of(["hello " * 100, "world " * 150, "again " * 120]), 500)
    ]
    assert first == again and len(set(first)) == len(first)
    assert str(uuid.UUID(first[0])) == first[0] and uuid.UUID(first[0]).version == 5
    text = chunk_conversation(conv, 500)[0].text
    assert first[0] == str(uuid.uuid5(CHUNK_NAMESPACE, f"conv-1\x1f0\x1f{text}"))
    assert chunk_id("other", 0, text) != first[0] != chunk_id("conv-1", 0, text + "!")


def test_same_export_read_twice_gives_the_same_chunks(tmp_path: Path) -> None:
    """Guards pitfall 7 (idempotent re-runs): re-reading an export yields identical
    chunk ids and texts, so the parsing stage can be replayed safely."""
    path = write_zip(tmp_path / "e.zip", make_export(5, 6, era="mixed"))
    runs = [
        [(c.id, c.text) for conv in ExportReader(path) for c in chunk_conversation(conv)]
        for _ in range(2)
    ]
    assert runs[0] == runs[1] and runs[0]


def test_conversation_without_messages_has_no_chunks() -> None:
    """Guards pitfall 4 (empty conversations): nothing to embed, nothing made."""
    assert chunk_conversation(conv_of([])) == []


def test_default_target_fits_minilm_window(tmp_path: Path) -> None:
    """Guards pitfall 6 (embedder input window): by default no chunk exceeds ~1,000
    characters, what all-MiniLM-L6-v2 reads in 256 word pieces."""
    path = write_json(tmp_path / "c.json", [make_conversation(12, assistant_chars=2500)])
    conv = next(iter(ExportReader(path)))
    chunks = chunk_conversation(conv)
    assert len(chunks) > 12 and all(len(c.text) <= 1000 for c in chunks)
