"""Fresh-eyes review of the export reader: canvas patterns, citations in canvases, 2023
custom instructions without their structured copy, and the rest of the review's reader
findings. Each test failed before its fix."""

from __future__ import annotations

import json
import time
import zipfile
from pathlib import Path
from typing import Any

from pipeline.commands.parse import summarize
from pipeline.exports.chunker import chunk_conversation
from pipeline.exports.citations import strip_citations
from pipeline.exports.reader import ExportReader, normalize_conversation
from tests import export_factory as ef

ROOT = Path(__file__).resolve().parents[2]


def _parse(path: Path) -> dict[str, Any]:
    return summarize(path, max_message_chars=200_000, chunk_chars=1000)


def _canvas_conversation(updates: list[dict[str, Any]], content: str) -> dict[str, Any]:
    """A conversation whose assistant creates one canvas and then sends ``updates``."""
    create = {"name": "Notes", "type": "document", "content": content}
    return ef.make_conversation(
        0,
        messages=[
            ef.make_message("user", "Start a document.", create_time=1.0e9),
            ef.make_message(
                "assistant",
                json.dumps(create),
                content_type="code",
                recipient="canmore.create_textdoc",
                create_time=1.0e9 + 1,
            ),
            ef.make_message(
                "assistant",
                json.dumps({"updates": updates}),
                content_type="code",
                recipient="canmore.update_textdoc",
                create_time=1.0e9 + 2,
            ),
            ef.make_message("assistant", "Done.", create_time=1.0e9 + 3),
        ],
    )


# --- finding 2: catastrophic canvas patterns ---------------------------------------------


def test_a_catastrophic_canvas_pattern_times_out_and_keeps_the_last_good_text() -> None:
    """Guards pitfall 4 (untrusted export content) / worker hang: a canvas update whose
    pattern backtracks exponentially ("(a|aa)+$" on 60 a's and a "!") used to hold the
    worker for hours under `re`. It now stops within its budget, the document keeps the
    text it had, and the timeout is counted in the conversation's metadata."""
    text = "a" * 60 + "!"
    conv = _canvas_conversation(
        [{"pattern": "(a|aa)+$", "multiple": False, "replacement": "gone"}], text
    )
    started = time.monotonic()
    got = normalize_conversation(conv, 0)
    assert time.monotonic() - started < 5.0
    assert [d.text for d in got.documents] == [text]
    assert got.metadata["canvas_updates_timed_out"] == 1


def test_ordinary_canvas_patterns_still_apply_with_re_syntax() -> None:
    """The bounded matcher speaks Python's `re` syntax: groups, classes, DOTALL, multiple."""
    conv = _canvas_conversation(
        [
            {"pattern": r"\bcat(s?)\b", "multiple": True, "replacement": "dog"},
            {"pattern": "First.*line", "multiple": False, "replacement": "One line"},
        ],
        "First\nline: cats and a cat.",
    )
    got = normalize_conversation(conv, 0)
    assert [d.text for d in got.documents] == ["One line: dog and a dog."]
    assert "canvas_updates_timed_out" not in got.metadata


# --- finding 3: citation markup in canvases, unclosed markers ----------------------------


def test_citation_markup_in_a_canvas_document_does_not_reach_memory() -> None:
    """Guards issue 14 (citation noise embedded): a canvas the assistant wrote with web
    results carries the same 【…†…】 and private-use cite markers as its answers; the
    document chunk holds the words without them."""
    cited = (
        "Oslo has long winters 【4†source】 and bright summers \ue200cite\ue202turn0search3\ue201."
    )
    conv = _canvas_conversation([], cited)
    got = normalize_conversation(conv, 0)
    assert [d.text for d in got.documents] == ["Oslo has long winters and bright summers."]
    doc_chunks = [c.text for c in chunk_conversation(got) if c.text.startswith("Document")]
    assert doc_chunks and not any("†" in t or "\ue200" in t or "turn0" in t for t in doc_chunks)


def test_an_unclosed_cite_marker_leaves_no_citeturn_word() -> None:
    """Guards issue 14 (citation noise embedded): an answer cut before the closing U+E201
    used to keep "citeturn9search9" once the private-use characters were removed."""
    assert (
        strip_citations("Oslo is cold \ue200cite\ue202turn9search9. Bring a coat.")
        == "Oslo is cold. Bring a coat."
    )
    assert (
        strip_citations("Oslo is cold \ue200cite\ue202turn9search9\ue202turn1news2")
        == "Oslo is cold"
    )


# --- finding 4: 2023 custom instructions without user_context_message_data ---------------

_RENDERED_2023 = (
    "The user provided the following information about themselves. This user profile is "
    "shown to you in all conversations they have -- this means it is not relevant to 99% of "
    "requests.\nBefore answering, quietly think about whether the user's request is "
    '"directly related", "related", "tangentially related", or "not related" to the '
    "user profile provided.\nUser profile:\n```I am a marine biologist in Oslo.```\n"
    "The user provided the additional info about how they would like you to respond:\n"
    "```Answer briefly.```"
)


def test_2023_rendered_custom_instructions_yield_the_persons_two_texts() -> None:
    """Guards issue 14 (the person's description kept in ChatGPT's words): a 2023 system
    message with is_user_system_message but no user_context_message_data kept ChatGPT's
    whole preamble as one 'about_user' text. It gives the person's two texts."""
    conv = ef.make_conversation(
        0,
        messages=[
            ef.make_message(
                "system",
                _RENDERED_2023,
                era="2023",
                hidden=True,
                metadata={"is_user_system_message": True},
            ),
            ef.make_message("user", "Hello", era="2023", create_time=1.0e9),
        ],
    )
    got = normalize_conversation(conv, 0)
    assert [(n.kind, n.text) for n in got.notes] == [
        ("about_user", "I am a marine biologist in Oslo."),
        ("about_model", "Answer briefly."),
    ]


def test_sample_export_self_description_is_kept_once() -> None:
    """Guards issue 14: the shipped sample holds the same custom instructions in both eras
    (2023 rendered text only, 2024+ user_editable_context); they are one description."""
    reader = ExportReader(ROOT / "examples" / "sample-export.zip")
    for _ in reader:
        pass
    own = [(n.kind, n.text) for n in reader.notes.items()]
    assert [k for k, _ in own] == ["about_user", "about_model"]
    assert not any("The user provided" in t or "```" in t for _, t in own)


# --- finding 5: a privacy archive with several export zips -------------------------------


def _multi_part_archive(d: Path) -> Path:
    """archive.zip holding an export split over three zips (-0001, -0002, -0010, stored
    out of name order) beside an image zip of another product."""
    convs = ef.make_export(6, 2, era="2026")
    parts = {"0002": convs[2:3], "0010": convs[3:6], "0001": convs[0:2]}
    path = d / "archive.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("index.html", "<html><body>Your data report</body></html>")
        for number, part in parts.items():
            inner = ef.write_zip(d / f"part-{number}.zip", part, split=True)
            zf.write(inner, f"User Online Activity/Conversations_abc-chatgpt-{number}.zip")
        images = d / "images.zip"
        with zipfile.ZipFile(images, "w") as other:
            other.writestr("images/readme.txt", "no conversations here")
        zf.write(images, "User Online Activity/Other_abc-dalle-0001.zip")
    return path


def test_every_export_zip_of_a_privacy_archive_is_read_in_name_order(tmp_path: Path) -> None:
    """Guards pitfall 4 (format variations) and silent data loss: a privacy archive with
    several export zips (...-chatgpt-0001.zip, -0002.zip, ...) used to import only the
    first one. All are read, as one export, in number order."""
    path = _multi_part_archive(tmp_path)
    convs = list(ExportReader(path))
    assert [c.title for c in convs] == [c["title"] for c in ef.make_export(6, 2, era="2026")]
    assert _parse(path)["conversations"] == 6


# --- finding 6: one bad shard in an intact zip -------------------------------------------


def test_a_bad_shard_in_an_intact_zip_costs_only_that_shard(tmp_path: Path) -> None:
    """Guards pitfall 4 (damaged exports import as far as they read): an intact 2026 zip
    whose conversations-001.json is invalid used to drop every shard after it. The shards
    after it are read; the damage is recorded (truncated + a line naming the shard)."""
    convs = ef.make_export(4, 2, era="2026")
    path = tmp_path / "export.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("conversations-000.json", json.dumps(convs[:2]))
        zf.writestr("conversations-001.json", '[{"title": "broken", "mapping": {')
        zf.writestr("conversations-002.json", json.dumps(convs[2:]))
    reader = ExportReader(path)
    got = list(reader)
    assert [c.title for c in got] == [c["title"] for c in convs]
    assert reader.stats.truncated is True
    assert "conversations-001.json" in reader.stats.error
    assert _parse(path)["conversations"] == 4


# --- finding 7: 2023 nodes with children but no parent -----------------------------------


def test_nodes_without_parent_keys_take_their_parent_from_children() -> None:
    """Guards pitfall 4 (format variations): 2023 exports whose nodes carry `children`
    and `id` but no `parent` used to keep one message per conversation, silently. The
    parents are derived from `children`, so the whole thread is read, branches included."""
    conv = ef.make_conversation(6, era="2023")
    expected = [m.text for m in normalize_conversation(conv, 0).messages]
    assert len(expected) == 6
    for node in conv["mapping"].values():
        assert "children" in node
        del node["parent"]
    assert [m.text for m in normalize_conversation(conv, 0).messages] == expected
    conv.pop("current_node")  # the leaf is then found from the derived parents too
    assert [m.text for m in normalize_conversation(conv, 0).messages] == expected


# --- finding 8: a syntax error inside a top-level array -----------------------------------

_SYNTAX_ERROR = b'[{"title": "a", "mapping": {}, }]'


def test_a_syntax_error_in_an_array_is_invalid_json_with_its_place(tmp_path: Path) -> None:
    """Guards the UX pitfall 'generic error messages': a syntax error inside a top-level
    array was reported like a file cut short. It is reported as invalid JSON with the line
    and column, as for objects; a file that merely ends early still is not."""
    path = tmp_path / "conversations.json"
    path.write_bytes(_SYNTAX_ERROR)
    reader = ExportReader(path)
    assert list(reader) == []
    assert "not valid JSON (it breaks at line 1, column 32" in reader.stats.error
    cut = tmp_path / "cut.json"
    cut.write_bytes(_SYNTAX_ERROR[:20])
    reader = ExportReader(cut)
    list(reader)
    assert reader.stats.truncated and "not valid JSON" not in reader.stats.error


def test_parse_and_run_agree_on_exit_status_for_a_broken_empty_export(
    db_url: str, tmp_path: Path
) -> None:
    """Guards pitfall 4 (parse and run disagreeing): on an export of which no conversation
    can be read, `run` ends `failed` (exit 1) while `parse` said exit 0. Both exit 1; run's
    message names the place the JSON breaks."""
    from tests.cli_helpers import cli, cli_env

    path = tmp_path / "conversations.json"
    path.write_bytes(_SYNTAX_ERROR)
    env = cli_env(db_url, tmp_path / "data")
    parsed = cli("parse", str(path), "--json", env=env)
    assert parsed.returncode == 1 and json.loads(parsed.stdout)["conversations"] == 0
    ran = cli("run", str(path), "--json", env=env)
    result = json.loads(ran.stdout)
    assert ran.returncode == 1 and result["stage"] == "failed"
    assert "line 1, column 32" in result["error_message"]
