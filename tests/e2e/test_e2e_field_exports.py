"""`run` end to end on the field export shapes (issue 9) and the person's notes (issue 14).

Every shape in tests/field_exports.py is imported with `run --json` as a separate process
(real PostgreSQL, real receiver on loopback, real signed events; the OpenAI stand-in as
embedder, which is not what these tests are about) and must report the very counts
`parse --json` reports. Shapes of kinds 1, 2, 5 and 6 and issue 14's export then check
what a person would notice.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from tests import field_exports as fx
from tests.cli_helpers import cli, cli_env, parse_counts, run_import, scalar
from tests.dbutil import user_session

# parse --json key -> run --json key
AGREED = {
    "conversations": "conversations",
    "skipped": "skipped_conversations",
    "messages": "messages",
    "user_messages": "user_messages",
    "assistant_messages": "assistant_messages",
    "chunks": "chunks",
    "excluded": "excluded",
    "truncated": "truncated",
    "custom_instructions": "custom_instructions",
    "memory_notes": "memory_notes",
}


@pytest.fixture(scope="module")
def embedder() -> Iterator[dict[str, str]]:
    from tests.fake_openai import fake_openai

    with fake_openai() as srv:
        yield dict(
            EMBEDDING_PROVIDER="openai",
            OPENAI_BASE_URL=srv.base_url,
            OPENAI_API_KEY=srv.api_key,
            EMBEDDING_MODEL="text-embedding-3-small",
            EMBEDDING_DIMENSIONS="32",
        )


def _chunks(db_url: str, job_id: str) -> list[str]:
    with psycopg.connect(db_url) as conn:
        return [
            r[0]
            for r in conn.execute("select content from memory_chunks where job_id = %s", (job_id,))
        ]


def _soulprint(db_url: str, job_id: str) -> dict:
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        return conn.execute(
            "select profile, soulprint_text from soulprints where job_id = %s", (job_id,)
        ).fetchone()


def check_cut_zip(result: dict, db_url: str) -> None:
    """Kind 1: the cut zip imports its 3 conversations through `run`, and the job row
    records the break, naming the person's file (never the worker's copy)."""
    assert result["conversations"] == 3 and result["truncated"] is True
    warning = result["export_warning"]
    assert warning.startswith("export.zip:conversations.json")
    assert "downloads" not in warning and ".export" not in warning
    assert (
        scalar(
            db_url, "select export_truncated from import_jobs where id = %s", result["import_id"]
        )
        is True
    )


def check_nested_zip(result: dict, db_url: str) -> None:
    """Kind 2: the export inside the privacy-request archive is imported."""
    assert result["conversations"] == 4 and result["messages"] == 16
    assert result["truncated"] is False


def check_do_not_remember(result: dict, db_url: str) -> None:
    """Kind 5: the do-not-remember conversation has no row, no chunk, nothing in the
    soulprint, and is counted in `excluded` on the job row."""
    job = result["import_id"]
    assert result["excluded"] == 1 and result["conversations"] == 2
    assert scalar(db_url, "select excluded from import_jobs where id = %s", job) == 1
    assert scalar(db_url, "select count(*) from import_conversations where job_id = %s", job) == 2
    assert not any(fx.SECRET in c for c in _chunks(db_url, job))
    soul = _soulprint(db_url, job)
    assert fx.SECRET not in soul["soulprint_text"] and fx.SECRET not in str(soul["profile"])


def check_canvas(result: dict, db_url: str) -> None:
    """Kind 6: every canvas's final text is searchable memory of its conversation,
    labelled as a document; the messages count stays the contract's."""
    chunks = _chunks(db_url, result["import_id"])
    for final in fx.CANVAS_FINAL.values():
        assert any(final in c and c.startswith("Document “") for c in chunks), final
    assert not any("canmore" in c or '"updates"' in c for c in chunks)


def check_person(result: dict, db_url: str) -> None:
    """Issue 14: self-description and memory notes stored once each on the import and
    readable by the person (their current import); in the soulprint, clearly labelled;
    no citation marker in any chunk; every canvas's final text in memory."""
    job = result["import_id"]
    user = uuid.UUID(result["user_id"])
    with user_session(db_url, user) as conn:
        rows = conn.execute(
            "select kind, note from import_person_notes where job_id = %s "
            "order by conversation_index, ordinal",
            (job,),
        ).fetchall()
    assert [(r["kind"], r["note"]) for r in rows] == [
        ("about_user", fx.ABOUT["2023"][0]),
        ("about_model", fx.ABOUT["2023"][1]),
        ("about_user", fx.ABOUT["new"][0]),
        ("about_model", fx.ABOUT["new"][1]),
        *(("memory_note", n) for n in fx.MEMORY_NOTES),
    ]
    with user_session(db_url, uuid.uuid4()) as conn:  # somebody else sees nothing
        assert conn.execute("select count(*) as n from import_person_notes").fetchone()["n"] == 0
    soul = _soulprint(db_url, job)
    profile = soul["profile"]
    assert [e["text"] for e in profile["self_description"]] == [
        fx.ABOUT["2023"][0],
        fx.ABOUT["2023"][1],
        fx.ABOUT["new"][0],
        fx.ABOUT["new"][1],
    ]
    assert [e["text"] for e in profile["memory_notes"]] == list(fx.MEMORY_NOTES)
    assert "## What ChatGPT remembered about you" in soul["soulprint_text"]
    chunks = _chunks(db_url, job)
    assert not any(m in c for c in chunks for m in ("【", "†", "\ue200", "\ue202", "turn0"))
    assert any(fx.CITED_CLEAN in c for c in chunks)
    for final in fx.CANVAS_FINAL.values():
        assert any(final in c for c in chunks)
    assert result["excluded"] == 1


CHECKS: dict[str, Callable[[dict, str], None]] = {
    "cut_zip": check_cut_zip,
    "nested_zip": check_nested_zip,
    "do_not_remember": check_do_not_remember,
    "canvas": check_canvas,
    "person": check_person,
}


@pytest.mark.parametrize("shape", sorted(fx.SHAPES))
def test_parse_and_run_agree_on_every_export_shape(
    shape: str, db_url: str, tmp_path: Path, embedder: dict[str, str]
) -> None:
    """Guards pitfall 4 (format variations; parse and run disagreeing): every export
    shape the tests use imports through `run` with the counts `parse --json` reports
    (excluded and truncated included); the field shapes then check their kind."""
    path = fx.SHAPES[shape](tmp_path)
    env = cli_env(db_url, tmp_path / "data", **embedder)
    code, result = run_import(path, env)
    assert code == 0, result
    expected = parse_counts(path, env)
    assert {k: result[v] for k, v in AGREED.items()} == {k: expected[k] for k in AGREED}
    assert result["embedded_chunks"] == result["chunks"]
    if shape in CHECKS:
        CHECKS[shape](result, db_url)


def test_status_reports_excluded_conversations(
    db_url: str, tmp_path: Path, embedder: dict[str, str]
) -> None:
    """Kind 5: `status` (JSON and text) shows the excluded count of the import."""
    env = cli_env(db_url, tmp_path / "data", **embedder)
    code, result = run_import(fx.do_not_remember(tmp_path), env)
    assert code == 0, result
    out = cli("status", result["import_id"], "--json", env=env)
    assert '"excluded":1' in out.stdout
    text = cli("status", result["import_id"], env=env)
    assert "1 conversation left out" in text.stdout


def test_not_an_export_message_names_the_uploaded_file(
    db_url: str, tmp_path: Path, embedder: dict[str, str]
) -> None:
    """Guards the UX pitfall 'generic error messages', kind 3: the failed job's message
    names the person's file, never the worker's temp path."""
    path = tmp_path / "my notes.txt"
    path.write_text("these are my notes, not an export\n")
    env = cli_env(db_url, tmp_path / "data", **embedder)
    code, result = run_import(path, env)
    assert code == 1 and result["error_code"] == "not_an_export"
    message = result["error_message"]
    assert "“my notes.txt”" in message and "not valid JSON" in message
    assert "downloads" not in message and ".export" not in message
