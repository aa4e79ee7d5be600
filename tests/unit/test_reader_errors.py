"""Broken inputs: skipped conversations, truncated files, things that are not exports,
and resuming with ``skip``."""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any

import pytest
from export_factory import dumps, make_conversation, make_export, write_json, write_zip

from pipeline.exports.reader import ExportReader, NotAnExportError, open_export


def test_non_object_conversations_and_missing_mapping_are_skipped_and_counted(
    tmp_path: Path,
) -> None:
    """Guards pitfall 4 (gracefully skip malformed conversations): items that are not
    objects, or have no object `mapping`, are skipped and counted; their neighbours are
    read and keep their export index."""
    good = make_export(3, 2)
    no_mapping = make_conversation(2, index=9)
    del no_mapping["mapping"]
    bad_mapping = make_conversation(2, index=10)
    bad_mapping["mapping"] = ["not", "an", "object"]
    items: list[Any] = [
        good[0],
        None,
        17,
        "text",
        [1, 2],
        no_mapping,
        good[1],
        bad_mapping,
        good[2],
        {},
    ]
    reader = ExportReader(write_json(tmp_path / "c.json", items))
    got = list(reader)
    assert [c.id for c in got] == [g["id"] for g in good]
    assert [c.index for c in got] == [0, 6, 8]
    assert reader.stats.skipped == 7
    assert reader.stats.conversations == 3 and reader.stats.messages == 6


def test_truncated_json_keeps_everything_before_the_break(tmp_path: Path) -> None:
    """Guards pitfall 4 (incomplete exports) and 6 (memory): a file cut mid-conversation
    yields every whole conversation before the cut, then stops with truncated=True and
    an error naming the file and where it broke, without raising."""
    convs = make_export(10, 3)
    data = dumps(convs)
    cut = data.index(convs[6]["id"].encode())  # somewhere inside conversation 6
    path = tmp_path / "conversations.json"
    path.write_bytes(data[:cut])
    reader = ExportReader(path)
    got = list(reader)
    assert [c.id for c in got] == [c["id"] for c in convs[:6]]
    assert reader.stats.truncated is True
    assert reader.stats.error and "conversations.json" in reader.stats.error
    assert "byte" in reader.stats.error and "6 conversations" in reader.stats.error


def test_garbage_in_the_middle_ends_the_stream_cleanly(tmp_path: Path) -> None:
    """Guards pitfall 4 (corrupt exports): a corrupt byte run stops the stream at the
    break, with the error, never a traceback; user text is not echoed in the error."""
    convs = make_export(4, 2)
    data = dumps(convs)
    cut = data.index(b'"title":"Conversation 2"')  # inside conversation 2, between keys
    path = tmp_path / "c.json"
    path.write_bytes(data[:cut] + b"}}]]SECRET-TEXT" + data[cut:])
    reader = ExportReader(path)
    got = list(reader)
    assert len(got) == 2 and reader.stats.truncated
    assert "SECRET-TEXT" not in (reader.stats.error or "")


def test_truncated_zip_member_and_corrupt_shard(tmp_path: Path) -> None:
    """Guards pitfall 4 (incomplete exports): a zip whose conversations member is cut
    short, or whose second shard is corrupt, yields what was readable and reports it (the
    shards after a corrupt one in an intact zip included)."""
    convs = make_export(6, 2, era="2026")
    half = dumps(convs)[: len(dumps(convs)) // 2]
    path = tmp_path / "cut.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("conversations.json", half)
    reader = ExportReader(path)
    got = list(reader)
    assert 0 < len(got) < 6 and reader.stats.truncated
    split = tmp_path / "split.zip"
    with zipfile.ZipFile(split, "w") as zf:
        zf.writestr("conversations-000.json", dumps(convs[:3]))
        zf.writestr("conversations-001.json", b'[{"mapping": ')
        zf.writestr("conversations-002.json", dumps(convs[3:]))
    reader = ExportReader(split)
    got = list(reader)
    assert [c.id for c in got] == [c["id"] for c in convs]
    assert reader.stats.truncated and "conversations-001.json" in (reader.stats.error or "")


@pytest.mark.parametrize(
    "kind", ["missing", "empty-dir", "text", "empty", "object", "zip-without", "not-zip", "number"]
)
def test_not_an_export_raises_one_human_line(tmp_path: Path, kind: str) -> None:
    """Guards pitfall 4 (format variations): unreadable paths and files that are not an
    export raise NotAnExportError (a ValueError) with one line, from open_export and on
    the first iteration of ExportReader."""
    path = tmp_path / "input"
    if kind == "empty-dir":
        path.mkdir()
        (path / "user.json").write_text("{}")
    elif kind == "text":
        path.write_text("hello, this is not json\n")
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "object":
        path.write_text('{"id": "user-1", "email": "x@example.org"}')
    elif kind == "zip-without":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("chat.html", "<html></html>")
    elif kind == "not-zip":
        path.write_bytes(b"PK\x03\x04 this is not really a zip")
    elif kind == "number":
        path.write_text("42")
    with pytest.raises(NotAnExportError) as info:
        open_export(path)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert isinstance(info.value, ValueError)
    with pytest.raises(NotAnExportError):
        next(iter(ExportReader(path)))


def test_unreadable_paths_are_not_an_export(tmp_path: Path) -> None:
    """Guards pitfall 4: a broken symlink and a path through a file give one clean line
    each, never a traceback."""
    export = write_json(tmp_path / "c.json", make_export(1, 2))
    link = tmp_path / "link.json"
    link.symlink_to(tmp_path / "gone.json")
    for path in (link, export / "child.json"):
        with pytest.raises(NotAnExportError) as info:
            open_export(path)
        assert "\n" not in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("split", [False, True])
def test_skip_resumes_right_after_the_nth_raw_item(tmp_path: Path, split: bool) -> None:
    """Guards pitfall 6 (batch processing, restartable): skip=n continues exactly after
    the n-th raw item (skipped garbage items included, across shards), keeps export
    indexes and does not count the skipped items in stats."""
    convs: list[Any] = make_export(6, 2, era="2026")
    convs.insert(2, "garbage")
    path = write_zip(tmp_path / "e.zip", convs, split=split, per_shard=3)
    full = [c.index for c in ExportReader(path)]
    assert full == [0, 1, 3, 4, 5, 6]
    for n in range(len(convs) + 1):
        reader = ExportReader(path, skip=n)
        got = list(reader)
        assert [c.index for c in got] == [i for i in full if i >= n]
        assert reader.stats.conversations == len(got)
        assert reader.stats.skipped == (1 if n <= 2 else 0)
        assert reader.stats.messages == 2 * len(got)
        assert reader.items_read == len(convs)  # resume point, trailing garbage included


def test_reader_can_be_iterated_lazily_one_conversation_at_a_time(tmp_path: Path) -> None:
    """Guards pitfall 6 (memory): the reader is a stream; stats fill as it goes."""
    reader = ExportReader(write_json(tmp_path / "c.json", make_export(3, 2)))
    it = iter(reader)
    next(it)
    assert reader.stats.conversations == 1
    next(it)
    assert reader.stats.conversations == 2


@pytest.mark.parametrize("streamed", [False, True], ids=["sized", "data-descriptors"])
def test_zip_cut_short_is_read_up_to_the_cut(tmp_path: Path, streamed: bool) -> None:
    """Guards pitfall 4 (incomplete exports) and 6 (streamed to disk): a zip whose end
    is missing (an interrupted download: no central directory) is still read from its
    local headers, up to the cut, with truncated=True; members written by a streaming
    zipper (sizes after the data) are found too."""
    convs = make_export(40, 4, era="2026")
    full = tmp_path / "full.zip"
    if streamed:

        class Unseekable:
            def __init__(self, f: Any) -> None:
                self.f = f

            def write(self, data: bytes) -> int:
                return self.f.write(data)

            def flush(self) -> None:
                self.f.flush()

        with (
            full.open("wb") as raw,
            zipfile.ZipFile(Unseekable(raw), "w", zipfile.ZIP_DEFLATED) as zf,
        ):
            zf.writestr("chat.html", b"<html>" + b"x" * 50_000 + b"</html>")
            zf.writestr("conversations.json", dumps(convs))
    else:
        write_zip(full, convs)
    data = full.read_bytes()
    cut = tmp_path / "cut.zip"
    cut.write_bytes(data[: int(len(data) * 0.8)])
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(cut)
    reader = open_export(cut)
    got = list(reader)
    assert 0 < len(got) < 40
    assert [c.id for c in got] == [c["id"] for c in convs[: len(got)]]
    assert reader.stats.truncated and "cut.zip:conversations.json" in (reader.stats.error or "")
