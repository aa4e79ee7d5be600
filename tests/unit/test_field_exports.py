"""Exports from the field (issue 9) and what an export says about the person (issue 14),
at the reader, the downloading stage's check and the parse command.

End-to-end `run` tests for the same shapes are in test_e2e_field_exports.py.
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.commands.parse import summarize
from pipeline.errors import StageError
from pipeline.exports import sources as export_sources
from pipeline.exports.chunker import chunk_conversation
from pipeline.exports.citations import strip_citations
from pipeline.exports.reader import ExportReader, NotAnExportError, open_export
from pipeline.exports.text_safety import SafeJSONStream
from pipeline.stages.export_file import check_is_export
from tests import export_factory as ef
from tests import field_exports as fx


def _parse(path: Path) -> dict:
    return summarize(path, max_message_chars=200_000, chunk_chars=1000)


# --- kind 1: a zip cut short -------------------------------------------------------------


def test_cut_zip_passes_the_download_check_and_reads_three_conversations(tmp_path: Path) -> None:
    """Guards pitfall 4 (incomplete exports), field kind 1: a compressed export.zip cut in
    conversation 4 of 5 (no central directory) is an export to the downloading stage's
    check (the reader's own resolution), and reads its 3 whole conversations, truncated."""
    path = fx.cut_zip(tmp_path)
    with pytest.raises(zipfile.BadZipFile):
        zipfile.ZipFile(path)  # what the old sniff tripped on
    check_is_export(path, "export.zip")  # no StageError
    summary = _parse(path)
    assert summary["conversations"] == 3 and summary["truncated"] is True
    assert summary["error"].startswith("export.zip:conversations.json")


def test_a_zip_with_nothing_readable_left_is_corrupt_not_foreign(tmp_path: Path) -> None:
    """Guards pitfall 4, kind 1: a zip cut before any conversation is a damaged export
    (code corrupt_export), and the message names the person's file."""
    whole = ef.write_zip(tmp_path / "w.zip", ef.make_export(3, 2)).read_bytes()
    path = tmp_path / "0b9d-worker-copy.export"
    path.write_bytes(whole[:40])
    with pytest.raises(StageError) as info:
        check_is_export(path, "export.zip")
    assert info.value.code == "corrupt_export"
    assert "“export.zip”" in info.value.message and "worker-copy" not in info.value.message


# --- kind 2: an export zip inside another archive ----------------------------------------


def test_export_zip_nested_in_a_privacy_archive_is_found(tmp_path: Path) -> None:
    """Guards pitfall 4 (format variations), field kind 2: archive.zip holding
    `User Online Activity/Conversations_<id>-chatgpt-0001.zip` beside unrelated folders, an
    HTML report and another zip without conversations reads as that export."""
    path = fx.nested_zip(tmp_path)
    check_is_export(path, "archive.zip")
    summary = _parse(path)
    assert summary["conversations"] == 4 and summary["messages"] == 16
    assert summary["truncated"] is False
    members = open_export(path).members()
    assert members[0].name.startswith(
        "archive.zip:User Online Activity/Conversations_abc-chatgpt-0001.zip:"
    )


def test_nesting_is_followed_one_level_only(tmp_path: Path) -> None:
    """Guards pitfall 4, kind 2: a zip in a zip in a zip is not opened (one level, never
    more), and says so as not-an-export."""
    inner = ef.write_zip(tmp_path / "inner.zip", ef.make_export(2, 2))
    middle = tmp_path / "middle.zip"
    with zipfile.ZipFile(middle, "w") as zf:
        zf.write(inner, "export.zip")
    outer = tmp_path / "outer.zip"
    with zipfile.ZipFile(outer, "w") as zf:
        zf.write(middle, "wrapped/middle.zip")
    with pytest.raises(NotAnExportError) as info:
        open_export(outer)
    assert info.value.code == "not_an_export"


def test_nested_zip_over_the_size_cap_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guards pitfall 6 (memory/disk exhaustion), kind 2: a nested zip is copied out
    streamed and size-capped; over the cap it is refused with its name, not extracted."""
    path = fx.nested_zip(tmp_path)
    monkeypatch.setattr(export_sources, "NESTED_MAX_BYTES", 1000)
    with pytest.raises(NotAnExportError) as info:
        open_export(path)
    assert "Conversations_abc-chatgpt-0001.zip" in str(info.value)


# --- kind 3: messages name the person's file ---------------------------------------------


@pytest.mark.parametrize(
    "content", [b"these are my notes, not an export\n", b'{"id": "user-1"}', b"[1, 2", b""]
)
def test_messages_name_the_persons_file_never_the_worker_path(
    tmp_path: Path, content: bytes
) -> None:
    """Guards the UX pitfall 'generic error messages', field kind 3: the downloading
    check's message names the person's file (the object name's last segment), never the
    worker's `downloads/<uuid>.export` copy."""
    worker_copy = tmp_path / "downloads" / "5f0c1e7a-2b8e-4d7c-9a51-0e1f2a3b4c5d.export"
    worker_copy.parent.mkdir()
    worker_copy.write_bytes(content)
    try:
        check_is_export(worker_copy, "my-chatgpt-export.json")
    except StageError as exc:
        message = exc.message
    else:  # "[1, 2" is an export cut short: the parsing stage says where it broke
        reader = ExportReader(worker_copy, name="my-chatgpt-export.json")
        list(reader)
        message = reader.stats.error or ""
    assert "my-chatgpt-export.json" in message
    assert "downloads" not in message and "5f0c1e7a" not in message and ".export" not in message


def test_truncation_message_names_the_persons_zip(tmp_path: Path) -> None:
    """Guards kind 3: where a cut zip broke is said with the person's file name."""
    worker_copy = tmp_path / "0d9c.export"
    worker_copy.write_bytes(fx.cut_zip(tmp_path).read_bytes())
    reader = ExportReader(worker_copy, name="export.zip")
    assert len(list(reader)) == 3
    assert reader.stats.error.startswith("export.zip:conversations.json")
    assert "0d9c" not in reader.stats.error


# --- kind 4: CESU-8 ----------------------------------------------------------------------


def _through_stream(data: bytes, read_size: int) -> bytes:
    class Raw:
        def __init__(self) -> None:
            self.buf = io.BytesIO(data)

        def read(self, n: int = -1) -> bytes:
            return self.buf.read(read_size)

    stream, out = SafeJSONStream(Raw()), b""
    while block := stream.read(read_size):
        out += block
    return out


def test_cesu8_pair_decodes_to_the_emoji_and_a_lone_half_to_one_replacement(
    tmp_path: Path,
) -> None:
    """Guards pitfall 4 (encoding), field kind 4: raw bytes ED A0 BD ED B8 82 are U+1F602,
    not six U+FFFD; a lone half is one U+FFFD, not three; through the whole reader too."""
    data = b'["a\xed\xa0\xbd\xed\xb8\x82b", "c\xed\xa0\xbdd", "e\xed\xb8\x82f"]'
    for size in (1, 2, 3, 4, 5, 7, 64):
        assert json.loads(_through_stream(data, size)) == ["a\U0001f602b", "c\ufffdd", "e\ufffdf"]
    convs = list(ExportReader(fx.cesu_json(tmp_path)))
    assert convs[0].title == "Jokes \U0001f602"
    assert convs[0].messages[0].text == "I laughed so hard \U0001f602 today"


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=60), read_size=st.integers(min_value=1, max_value=9))
def test_cesu8_round_trips_any_valid_string(text: str, read_size: int) -> None:
    """Guards pitfall 4 (encoding), field kind 4 (property): any valid string written as
    CESU-8 inside JSON comes back equal, however the bytes are split into reads."""
    data = fx.cesu8(json.dumps([text], ensure_ascii=False))
    assert json.loads(_through_stream(data, read_size)) == [text]


# --- kind 5: do not remember -------------------------------------------------------------


def test_do_not_remember_conversations_are_excluded_and_counted(tmp_path: Path) -> None:
    """Guards kind 5 (a broken promise): a conversation marked is_do_not_remember yields
    nothing (no conversation, chunk or note) and is counted in `excluded`, not in
    `conversations`; resuming past it keeps the count right."""
    path = fx.do_not_remember(tmp_path)
    summary = _parse(path)
    assert summary["conversations"] == 2 and summary["excluded"] == 1
    reader = ExportReader(path)
    texts = [m.text for c in reader for m in c.messages]
    assert not any(fx.SECRET in t for t in texts)
    (tmp_path / "p").mkdir()
    person = ExportReader(fx.person(tmp_path / "p"))
    convs = list(person)
    assert person.stats.excluded == 1
    assert all(fx.SECRET not in n.text for n in person.notes.items())
    assert all(fx.SECRET not in ch.text for c in convs for ch in chunk_conversation(c))


# --- kind 6: canvas documents ------------------------------------------------------------


def test_canvas_documents_in_all_three_shapes_keep_their_final_text(tmp_path: Path) -> None:
    """Guards kind 6 (drafts lost): canvases whose JSON is a code message's text, a string
    in parts, or an object in parts are replayed (create, then updates in thread order; a
    bad pattern keeps the last good text) into document chunks labelled with their name;
    they are not messages."""
    reader = ExportReader(fx.canvas(tmp_path))
    conv = next(iter(reader))
    assert [d.name for d in conv.documents] == ["Letter to Ana", "Ode to bread", "Garden plan"]
    assert [d.text for d in conv.documents] == [
        fx.CANVAS_FINAL[k] for k in ("code", "string", "dict")
    ]
    # 3 user + 2 plain assistant messages; the canvas tool calls are not messages.
    assert len(conv.messages) == 5
    chunks = chunk_conversation(conv)
    doc_chunks = [c for c in chunks if c.text.startswith("Document “")]
    assert len(doc_chunks) == 3 and all(c.message_count == 0 for c in doc_chunks)
    for final in fx.CANVAS_FINAL.values():
        assert any(final in c.text for c in doc_chunks)


# --- kind 7: one conversation object -----------------------------------------------------


def test_a_single_conversation_object_is_a_one_conversation_export(tmp_path: Path) -> None:
    """Guards pitfall 4 (format variations), kind 7: a file holding one conversation
    object (not an array) reads as one conversation instead of 'not an export'."""
    path = fx.single_object(tmp_path)
    check_is_export(path, path.name)
    summary = _parse(path)
    assert summary["conversations"] == 1 and summary["messages"] == 4


# --- issue 14 ----------------------------------------------------------------------------


@pytest.mark.parametrize("eras", [("2023", "2024"), ("2023", "2025"), ("2023", "2026")])
def test_custom_instructions_and_memory_notes_are_kept_once(
    tmp_path: Path, eras: tuple[str, str]
) -> None:
    """Guards issue 14 (the person's own description thrown away): custom instructions of
    both eras (2023 metadata; 2024+ user_editable_context inside ChatGPT's fenced preamble)
    are kept once each with the dates they were in use, memory notes (assistant to `bio`)
    once each in thread order; neither counts as a message, tool replies stay dropped."""
    path = ef.write_zip(tmp_path / "export.zip", fx.person_export(eras))
    reader = ExportReader(path)
    convs = list(reader)
    own = [(n.kind, n.text) for n in reader.notes.items() if n.kind != "memory_note"]
    assert own == [
        ("about_user", fx.ABOUT["2023"][0]),
        ("about_model", fx.ABOUT["2023"][1]),
        ("about_user", fx.ABOUT["new"][0]),
        ("about_model", fx.ABOUT["new"][1]),
    ]
    first = reader.notes.items()[0]
    assert first.first_time < first.last_time  # seen in two conversations of its era
    assert [n.text for n in reader.notes.items("memory_note")] == list(fx.MEMORY_NOTES)
    texts = [m.text for c in convs for m in c.messages]
    assert not any("Model set context updated" in t or "User is vegetarian" in t for t in texts)
    assert not any("The user provided" in t for t in texts)
    summary = _parse(path)
    assert summary["custom_instructions"] == 4 and summary["memory_notes"] == 2
    assert summary["messages"] == sum(len(c.messages) for c in convs) == 16


def test_citation_markup_is_stripped_from_assistant_text_only() -> None:
    """Guards issue 14 (noise embedded): 【…†…】 and private-use cite/entity markers leave
    assistant text, the sentence around them stays; user text is never altered."""
    assert strip_citations(fx.CITED) == fx.CITED_CLEAN
    user_text = "I typed 【1†source】 and \ue200 myself"
    conv = ef.make_conversation(
        0,
        messages=[
            ef.make_message("user", user_text, create_time=1.0e9),
            ef.make_message("assistant", fx.CITED, create_time=1.0e9 + 5),
            ef.make_message("assistant", "【3†source】", create_time=1.0e9 + 9),
        ],
    )
    from pipeline.exports.reader import normalize_conversation

    got = normalize_conversation(conv, 0)
    assert [m.text for m in got.messages] == [user_text, fx.CITED_CLEAN, ""]
    chunks = chunk_conversation(got)
    assert "†" in chunks[0].text  # the person's own words, as typed
    answers = [
        part for c in chunks for part in c.text.split("\n\n") if part.startswith("Assistant:")
    ]
    assert answers == [f"Assistant: {fx.CITED_CLEAN}"]  # the bare citation left no chunk text


def test_is_starred_is_kept_in_conversation_metadata(tmp_path: Path) -> None:
    """Guards issue 14: the person's own signal that a conversation matters is kept."""
    convs = list(ExportReader(fx.person(tmp_path)))
    assert [c.metadata.get("is_starred") for c in convs] == [None, None, None, True]


def test_invalid_json_gets_its_own_message_with_where_it_broke(tmp_path: Path) -> None:
    """Guards issue 14 and the UX pitfall 'generic error messages': a file that is not
    valid JSON is reported as such, naming the file and the line and column it breaks at
    (not as 'a JSON object without conversations')."""
    path = tmp_path / "conversations.json"
    path.write_text('{\n  "title": "x"\n  "mapping": {}\n}')
    with pytest.raises(NotAnExportError) as info:
        open_export(path, name="conversations.json")
    message = str(info.value)
    assert "not valid JSON" in message and "line 3, column 3" in message
    assert "without" not in message
