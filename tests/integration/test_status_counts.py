"""`status` wording and the export facts `run --json` / `status --json` report (fresh-eyes
review, minor findings)."""

from __future__ import annotations

import uuid
from pathlib import Path

import orjson
import psycopg
import pytest

from pipeline.cli import main
from pipeline.embedded import worker_url
from tests.dbutil import create_user, jobs_for, upload_object


def _job_with_facts(db_url: str) -> uuid.UUID:
    """A job that read one conversation, two custom-instruction texts and one memory note
    (rows as the parsing stage writes them)."""
    user = create_user(db_url)
    upload_object(db_url, user)
    job = jobs_for(db_url, user)[0]["id"]
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "update public.import_jobs set conversations = 1, messages = 1,"
            " chunks = 1 where id = %s",
            (job,),
        )
        for k, (kind, note) in enumerate(
            [
                ("about_user", "I sail."),
                ("about_model", "Be brief."),
                ("memory_note", "User sails."),
            ]
        ):
            conn.execute(
                "insert into public.import_person_notes (job_id, user_id, kind,"
                " note, conversation_index, ordinal) values (%s, %s, %s, %s, 0, %s)",
                (job, user, kind, note, k),
            )
    return job


def test_status_counts_agree_with_their_nouns_and_report_export_facts(
    db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Guards pitfall 5 (progress a person can read): status said "1 conversations"; and
    status --json did not say how many custom-instruction texts and memory notes the import
    kept (parse --json does). Read as the worker role."""
    job = _job_with_facts(db_url)
    monkeypatch.setenv("DATABASE_URL", worker_url(db_url))
    monkeypatch.setenv("SOULPRINT_DATA_DIR", str(tmp_path / "data"))
    assert main(["status", str(job)]) == 0
    out = capsys.readouterr().out
    assert "1 conversation (" in out and "1 message," in out and "1 chunk," in out
    assert main(["status", str(job), "--json"]) == 0
    summary = orjson.loads(capsys.readouterr().out)
    assert (summary["custom_instructions"], summary["memory_notes"]) == (2, 1)
