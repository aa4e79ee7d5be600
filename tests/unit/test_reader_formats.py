"""Every container and era of real ChatGPT exports reads to the same conversations."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from export_factory import (
    ERAS,
    make_conversation,
    make_export,
    write_dir,
    write_json,
    write_zip,
)

from pipeline.exports.models import Conversation, ReadStats
from pipeline.exports.reader import ExportReader


def read_all(path: Path, **kwargs: object) -> tuple[list[Conversation], ReadStats]:
    reader = ExportReader(path, **kwargs)  # type: ignore[arg-type]
    return list(reader), reader.stats


@pytest.mark.parametrize("era", ERAS)
@pytest.mark.parametrize("pretty", [False, True], ids=["minified", "pretty"])
def test_each_era_minified_or_pretty_counts_every_message(
    tmp_path: Path,
    era: str,
    pretty: bool,
) -> None:
    """Guards pitfall 4 (format variations): one-line minified and pretty-printed files of
    every era (2023 `id` only, 2024/2025 `conversation_id`, 2026 no `children`) give the
    same conversations, ids, titles and counts."""
    convs = make_export(3, 5, era=era, custom_instructions=True)
    path = write_json(tmp_path / "conversations.json", convs, pretty=pretty)
    if not pretty:
        assert b"\n" not in path.read_bytes()
    got, stats = read_all(path)
    assert [c.id for c in got] == [c["id"] for c in convs]
    assert [c.title for c in got] == ["Conversation 0", "Conversation 1", "Conversation 2"]
    assert [c.index for c in got] == [0, 1, 2]
    assert (stats.conversations, stats.messages) == (3, 15)
    assert (stats.user_messages, stats.assistant_messages) == (9, 6)
    assert [m.role for m in got[0].messages] == ["user", "assistant"] * 2 + ["user"]
    assert got[0].create_time == convs[0]["create_time"]
    assert not stats.truncated and stats.error is None


def test_2023_conversation_with_only_id_and_2026_with_only_conversation_id(
    tmp_path: Path,
) -> None:
    """Guards pitfall 4 (format variations): the id comes from `id`, else from
    `conversation_id`, so neither 2023 nor newer exports lose their ids."""
    old = make_conversation(2, era="2023", index=0)
    new = make_conversation(2, era="2026", index=1)
    assert "conversation_id" not in old
    del new["id"]
    got, _ = read_all(write_json(tmp_path / "c.json", [old, new]))
    assert [c.id for c in got] == [old["id"], new["conversation_id"]]


def test_zip_export_with_extra_members_and_nested_folder(tmp_path: Path) -> None:
    """Guards pitfall 4 (format variations): a zip with chat.html, user.json, feedback
    files and the conversations inside a folder is read from its conversations member."""
    convs = make_export(4, 2, era="2024")
    path = write_zip(tmp_path / "export.zip", convs, folder="chatgpt-export/")
    got, stats = read_all(path)
    assert [c.id for c in got] == [c["id"] for c in convs]
    assert stats.messages == 8


@pytest.mark.parametrize("container", ["zip", "dir"])
def test_split_shards_read_in_name_order_with_global_index(
    tmp_path: Path,
    container: str,
) -> None:
    """Guards pitfall 4 (format variations): 2026 split exports (conversations-000.json,
    -001, ... stored out of order in the zip) are read in name order, and `index` runs
    across shards."""
    convs = make_export(7, 2, era="2026")
    if container == "zip":
        path = write_zip(tmp_path / "export.zip", convs, split=True, per_shard=3)
        with zipfile.ZipFile(path) as zf:
            shard_names = [n for n in zf.namelist() if n.startswith("conversations-")]
        assert shard_names != sorted(shard_names)  # the reader must sort, not trust order
    else:
        path = write_dir(tmp_path / "export", convs, split=True, per_shard=3)
    got, stats = read_all(path)
    assert [c.id for c in got] == [c["id"] for c in convs]
    assert [c.index for c in got] == list(range(7))
    assert stats.conversations == 7


def test_single_shard_file_and_directory_with_conversations_json(tmp_path: Path) -> None:
    """Guards pitfall 4 (format variations): one shard passed alone, and an extracted
    export directory, are both accepted."""
    convs = make_export(5, 2, era="2026")
    shards = write_dir(tmp_path / "split", convs, split=True, per_shard=2)
    got, _ = read_all(shards / "conversations-001.json")
    assert [c.id for c in got] == [c["id"] for c in convs[2:4]]
    whole = write_dir(tmp_path / "whole", convs)
    got, _ = read_all(whole)
    assert len(got) == 5


def test_top_level_object_with_conversations_key(tmp_path: Path) -> None:
    """Guards pitfall 4 (format variations): `{"conversations": [...]}` is accepted."""
    convs = make_export(2, 3)
    got, stats = read_all(write_json(tmp_path / "c.json", convs, wrap=True, pretty=True))
    assert [c.id for c in got] == [c["id"] for c in convs]
    assert stats.messages == 6


def test_ascii_escaped_export_decodes_non_english_text(tmp_path: Path) -> None:
    """Guards pitfall 4 (format variations, non-UTF8 characters): an ASCII-escaped export
    (\\u00e9, surrogate pairs for emoji) reads to the same text as a raw UTF-8 one."""
    from export_factory import make_message

    msgs = [
        make_message("user", "Olá, ¿qué tal? Grüße 😀 日本語"),
        make_message("assistant", "Très bien 👍"),
    ]
    conv = make_conversation(messages=msgs)
    escaped, _ = read_all(write_json(tmp_path / "a.json", [conv], ascii=True))
    raw, _ = read_all(write_json(tmp_path / "b.json", [conv]))
    assert b"\\ud83d\\ude00" in (tmp_path / "a.json").read_bytes()
    assert [m.text for m in escaped[0].messages] == [
        "Olá, ¿qué tal? Grüße 😀 日本語",
        "Très bien 👍",
    ]
    assert [m.text for m in raw[0].messages] == [m.text for m in escaped[0].messages]


def test_mixed_eras_in_one_export(tmp_path: Path) -> None:
    """Guards pitfall 4 (format variations): an export mixing conversations of every era
    (old conversations keep their old shape) counts every one of them."""
    convs = make_export(8, 3, era="mixed", custom_instructions=True)
    got, stats = read_all(write_zip(tmp_path / "e.zip", convs))
    assert stats.conversations == 8 and stats.messages == 24
    assert all(c.metadata["custom_instructions"] for c in got)


@pytest.mark.parametrize("container", ["json", "zip", "shards", "dir"])
def test_bytes_progress_climbs_to_the_uncompressed_total(tmp_path: Path, container: str) -> None:
    """Guards pitfall 5 (no progress): the parsing stage's bar needs to know how far the
    reader is; it counts JSON bytes, so a zip and its extracted files read alike."""
    convs = make_export(300, 4, era="mixed")
    if container == "json":
        path = write_json(tmp_path / "conversations.json", convs)
    elif container == "dir":
        path = write_dir(tmp_path / "export", convs)
    else:
        path = write_zip(tmp_path / "export.zip", convs, split=container == "shards", per_shard=100)
    reader = ExportReader(path)
    total = reader.bytes_progress()[1]
    assert total is not None and total > 1_000_000
    seen = [reader.bytes_progress()[0] for i, _ in enumerate(reader) if i % 30 == 0]
    assert seen == sorted(seen) and seen[0] < total / 2
    assert reader.bytes_progress() == (total, total)
