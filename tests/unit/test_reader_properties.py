"""Property tests: whatever a mutated export holds, the reader never raises out of its
stream, and what it yields is safe to store."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from export_factory import (
    custom_instructions_message,
    make_conversation,
    make_export,
    write_zip,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.exports.chunker import chunk_conversation
from pipeline.exports.reader import ExportReader, NotAnExportError

SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)

_weird_text = st.text(
    alphabet=st.sampled_from(["\x00", "\ud800", "\udfff", "a", " ", "\n", "é", "😀"])
    | st.characters(codec=None, blacklist_categories=()),  # surrogates included
    max_size=20,
)
_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _weird_text
    | st.sampled_from(
        [
            "user",
            "assistant",
            "tool",
            "system",
            "all",
            "text",
            "code",
            "multimodal_text",
            "2024-01-01T00:00:00Z",
            "",
        ]
    ),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_weird_text, inner, max_size=3),
    max_leaves=6,
)


def _base_export() -> list[Any]:
    convs: list[Any] = make_export(3, 3, era="mixed", user_chars=20, assistant_chars=30)
    convs.append(
        make_conversation(messages=[custom_instructions_message("2023")], index=7, era="2023")
    )
    return convs


def _slots(value: Any, out: list[tuple[Any, Any]]) -> list[tuple[Any, Any]]:
    """Every (container, key) in a JSON tree, iteratively (trees can be deep)."""
    stack = [value]
    while stack:
        node = stack.pop()
        items = (
            node.items()
            if isinstance(node, dict)
            else enumerate(node)
            if isinstance(node, list)
            else ()
        )
        for key, child in items:
            out.append((node, key))
            stack.append(child)
    return out


def _check(path: Path) -> None:
    reader = ExportReader(path)
    yielded: list[Any] = []
    try:
        for conv in reader:
            yielded.append(conv)
            for chunk in chunk_conversation(conv, 200):
                assert "\x00" not in chunk.text
                chunk.text.encode("utf-8")
            for text in [conv.id, conv.title or ""] + [m.text for m in conv.messages]:
                assert "\x00" not in text
                text.encode("utf-8")  # no lone surrogates
            assert all(m.role in ("user", "assistant") and m.text.strip() for m in conv.messages)
    except NotAnExportError:
        assert not yielded  # only ever at the start: the mutation made it unrecognizable
        return
    s = reader.stats
    assert s.conversations == len(yielded)
    assert s.messages == s.user_messages + s.assistant_messages
    assert s.messages == sum(len(c.messages) for c in yielded)
    assert s.truncated == (s.error is not None)


@pytest.mark.slow
@SETTINGS
@given(data=st.data())
def test_structural_mutations_never_raise(tmp_path: Path, data: st.DataObject) -> None:
    """Guards pitfall 4 (malformed conversations, missing fields, bad graphs): replacing
    or deleting any values of a valid export (ids, parents, roles, parts, times, whole
    nodes) never raises out of the reader, and its output stays storable."""
    convs = _base_export()
    for _ in range(data.draw(st.integers(1, 6))):
        slots = _slots(convs, [])
        if data.draw(st.booleans()):  # often a text: where NUL and surrogates hurt most
            slots = [(c, k) for c, k in slots if isinstance(c[k], str)]
        container, key = slots[data.draw(st.integers(0, len(slots) - 1))]
        if isinstance(container[key], str) and data.draw(st.booleans()):
            container[key] = data.draw(_weird_text) + container[key]
        elif isinstance(container, dict) and data.draw(st.booleans()):
            del container[key]
        else:
            container[key] = data.draw(_json_values)
    path = tmp_path / "conversations.json"
    ascii_only = data.draw(st.booleans())
    path.write_text(
        json.dumps(convs, ensure_ascii=ascii_only), encoding="utf-8", errors="surrogatepass"
    )
    _check(path)


@SETTINGS
@given(data=st.data())
def test_byte_mutations_never_raise(tmp_path: Path, data: st.DataObject) -> None:
    """Guards pitfall 4 (corrupt/truncated files, invalid UTF-8) and 6 (memory): cutting,
    flipping, inserting or deleting raw bytes anywhere never raises out of the reader;
    at worst the stream ends with truncated=True."""
    raw = bytearray(
        json.dumps(_base_export(), ensure_ascii=data.draw(st.booleans())).encode("utf-8")
    )
    for _ in range(data.draw(st.integers(1, 4))):
        pos = data.draw(st.integers(0, len(raw)))
        op = data.draw(st.sampled_from(["cut", "flip", "insert", "delete"]))
        if op == "cut":
            del raw[pos:]
        elif op == "flip" and pos < len(raw):
            raw[pos] = data.draw(st.integers(0, 255))
        elif op == "insert":
            raw[pos:pos] = data.draw(st.binary(min_size=1, max_size=8))
        else:
            del raw[pos : pos + data.draw(st.integers(1, 40))]
    path = tmp_path / "conversations.json"
    path.write_bytes(bytes(raw))
    _check(path)


@settings(
    max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_zip_byte_mutations_never_raise(tmp_path: Path, data: st.DataObject) -> None:
    """Guards pitfall 4 (corrupt/incomplete exports): a zip export with bytes cut,
    flipped or dropped (headers, compressed data, central directory) never raises out
    of the reader beyond a one-line NotAnExportError at the start."""
    path = write_zip(tmp_path / "export.zip", _base_export(), split=data.draw(st.booleans()))
    raw = bytearray(path.read_bytes())
    for _ in range(data.draw(st.integers(1, 3))):
        pos = data.draw(st.integers(0, len(raw)))
        op = data.draw(st.sampled_from(["cut", "flip", "delete"]))
        if op == "cut":
            del raw[pos:]
        elif op == "flip" and pos < len(raw):
            raw[pos] = data.draw(st.integers(0, 255))
        else:
            del raw[pos : pos + data.draw(st.integers(1, 40))]
    path.write_bytes(bytes(raw))
    _check(path)
