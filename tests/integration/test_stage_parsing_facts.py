"""The parsing stage on the real database as the least-privilege worker: excluded
conversations, the person's notes and the export's break, across batches and a resume."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pipeline import lifecycle
from pipeline.jobstore import JobStore
from pipeline.stages import parsing, run_stage
from tests import export_factory as ef
from tests import field_exports as fx
from tests.dbutil import create_user, finish_import, upload_object, walk_to
from tests.fake_storage import fake_storage, worker_settings


@pytest.fixture
def stop_after_first_batch(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """SIGTERM right after the first committed batch (the stage then releases its lease)."""
    real = parsing.StageContext.commit_batch
    calls = []

    def commit_then_stop(self, conn, checkpoint):  # type: ignore[no-untyped-def]
        calls.append(checkpoint)
        if len(calls) == 1:
            lifecycle.request_shutdown()
        return real(self, conn, checkpoint)

    monkeypatch.setattr(parsing.StageContext, "commit_batch", commit_then_stop)
    yield
    lifecycle.reset()


def _notes(db_url: str, job_id: object) -> list[tuple[str, str, float, float]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "select kind, note, extract(epoch from first_seen_at)::float8, "
            "extract(epoch from last_seen_at)::float8 from import_person_notes "
            "where job_id = %s order by conversation_index, ordinal",
            (job_id,),
        ).fetchall()


def test_resumed_parsing_keeps_excluded_count_and_notes_once(
    db_url: str,
    worker_db_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    stop_after_first_batch: None,
) -> None:
    """Guards pitfall 9 (restartable batches) for kind 5 and issue 14: parsing stopped after
    its first batch and resumed counts the do-not-remember conversation once in `excluded`,
    stores each custom-instruction text and memory note once (first and last sighting
    widened across batches), and writes them as the worker role."""
    monkeypatch.setattr(parsing, "BATCH_CONVERSATIONS", 1)
    user = create_user(db_url)
    folder = tmp_path / "bucket" / "imports" / str(user)
    folder.mkdir(parents=True)
    convs = fx.person_export()
    convs.insert(0, convs.pop(1))  # the do-not-remember one first: read in batch 1
    export = ef.write_zip(folder / "export.zip", convs)
    upload_object(db_url, user, name="export.zip", size=export.stat().st_size)
    store = JobStore(worker_db_url)
    job_id = store.latest_for_user(user).id
    with fake_storage(tmp_path / "bucket") as storage:
        settings = worker_settings(tmp_path / "worker", storage.url)
        for stage in ("queued", "downloading"):
            assert run_stage(job_id, stage, settings, store, worker_db_url) == "done"
        assert run_stage(job_id, "parsing", settings, store, worker_db_url) == "released"
        assert store.get(job_id).conversations == 1
        lifecycle.reset()
        assert run_stage(job_id, "parsing", settings, store, worker_db_url) == "done"
    job = store.get(job_id)
    store.close()
    assert (job.conversations, job.excluded, job.export_truncated) == (4, 1, False)
    notes = _notes(db_url, job_id)
    assert [(k, n) for k, n, _, _ in notes] == [
        ("about_user", fx.ABOUT["2023"][0]),
        ("about_model", fx.ABOUT["2023"][1]),
        ("about_user", fx.ABOUT["new"][0]),
        ("about_model", fx.ABOUT["new"][1]),
        *(("memory_note", n) for n in fx.MEMORY_NOTES),
    ]
    # The 2023 instructions were seen in item 1 (batch 1) and item 2 (after the resume):
    # their message has no time, so their conversations' times bound their use.
    assert notes[0][2:] == (
        pytest.approx(convs[1]["create_time"]),
        pytest.approx(convs[2]["update_time"]),
    )


def _add_note(db_url: str, job_id: object, user: object, text: str) -> None:
    with psycopg.connect(db_url) as conn:
        conn.execute(
            "insert into import_person_notes (job_id, user_id, kind, note, "
            "conversation_index, ordinal) values (%s, %s, 'memory_note', %s, 0, 0)",
            (job_id, user, text),
        )


def _notes_of(db_url: str, user: object) -> set[str]:
    with psycopg.connect(db_url) as conn:
        return {
            r[0]
            for r in conn.execute(
                "select note from import_person_notes where user_id = %s", (user,)
            )
        }


def test_notes_follow_their_import_replaced_on_reimport_gone_on_cancel(
    db_url: str,
    worker_db_url: str,
) -> None:
    """Guards pitfall 9 / the swap contract: a completed re-import replaces the person's
    older notes (as it does chunks), and a cancelled import leaves no notes behind."""
    user = create_user(db_url)
    store = JobStore(worker_db_url)
    texts = []
    for n in range(2):
        upload_object(db_url, user, name=f"export-{n}.zip", size=100)
        job_id = store.latest_for_user(user).id
        walk_to(db_url, job_id, "generating_soulprint")
        texts.append(f"note of import {n}")
        _add_note(db_url, job_id, user, texts[-1])
        finish_import(store, db_url, job_id, "# Your soulprint", {"version": 1}, "owner-1")
        assert _notes_of(db_url, user) == {texts[-1]}
    upload_object(db_url, user, name="export-2.zip", size=100)
    job_id = store.latest_for_user(user).id
    walk_to(db_url, job_id, "parsing")
    _add_note(db_url, job_id, user, "note of a cancelled import")
    assert store.request_cancel(job_id) == "cancelled"
    store.close()
    assert _notes_of(db_url, user) == {texts[-1]}
