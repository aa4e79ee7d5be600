"""Schema, upload trigger, events and the re-import swap, on the real embedded PostgreSQL."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from psycopg.rows import dict_row

from pipeline.jobstore import JobStore
from pipeline.migrate import apply_migrations, list_migrations
from tests.dbutil import (
    create_user,
    events_for,
    finish_import,
    jobs_for,
    upload_object,
    user_session,
    walk_to,
    with_dbname,
)


def test_upload_creates_queued_job_and_event_in_same_transaction(db_url: str) -> None:
    """Guards pitfall 1 (work that vanishes): the upload row, the job and its first event
    commit together, or not at all."""
    user = create_user(db_url)
    upload_object(db_url, user, size=4242)
    [job] = jobs_for(db_url, user)
    assert job["stage"] == "queued"
    assert job["file_size"] == job["bytes_total"] == 4242
    assert job["object_name"] == f"{user}/export.zip"
    assert job["bucket_id"] == "imports"
    [event] = events_for(db_url, job["id"])
    assert event["type"] == "import.queued"
    assert event["acknowledged_at"] is None
    assert event["payload"]["type"] == "import.queued"
    assert event["payload"]["data"] == {
        "job_id": str(job["id"]),
        "user_id": str(user),
        "stage": "queued",
        "reason": "stage_changed",
    }

    # Storage's permission-test insert is rolled back: it must leave nothing behind.
    with psycopg.connect(db_url) as conn:
        upload_object(conn, user, name="second.zip")
        conn.rollback()
    assert len(jobs_for(db_url, user)) == 1
    with psycopg.connect(db_url) as conn:
        assert conn.execute("select count(*) from public.import_events").fetchone()[0] == 1


def test_event_is_notified_at_commit(db_url: str) -> None:
    """Guards pitfall 1 (work that vanishes): the relay is woken by NOTIFY with the id of an
    event that is already committed."""
    user = create_user(db_url)
    with psycopg.connect(db_url, autocommit=True) as listener:
        listener.execute("listen import_events")
        upload_object(db_url, user)
        note = next(listener.notifies(timeout=30, stop_after=1))
    [job] = jobs_for(db_url, user)
    [event] = events_for(db_url, job["id"])
    assert note.channel == "import_events"
    assert note.payload == str(event["id"])


def test_twenty_concurrent_uploads_give_exactly_one_active_job(db_url: str) -> None:
    """Guards pitfall 7 (duplicate imports): 20 uploads by one person from 20 connections at
    once: one queued job, and rejected ones that say why, at most 10 (the per-hour cap on
    rejected jobs, issue 8 F8)."""
    user = create_user(db_url)
    n = 20
    conns = [psycopg.connect(db_url) for _ in range(n)]
    barrier = threading.Barrier(n)

    def upload(i: int) -> None:
        conn = conns[i]
        conn.execute("select 1")
        barrier.wait()
        upload_object(conn, user, name=f"export-{i}.zip")
        conn.commit()

    try:
        with ThreadPoolExecutor(n) as pool:
            list(pool.map(upload, range(n)))
    finally:
        for c in conns:
            c.close()

    jobs = jobs_for(db_url, user)
    stages = sorted(j["stage"] for j in jobs)
    assert stages == ["queued"] + ["rejected"] * 10
    for job in jobs:
        if job["stage"] == "rejected":
            assert job["error_code"] == "import_already_running"
            assert "already running" in job["error_message"]
            assert job["completed_at"] is not None


def test_reupload_same_path_new_version_is_a_new_import(db_url: str) -> None:
    """Guards pitfall 7 (duplicate imports): an upsert over the same path is an UPDATE with a
    new version: rejected while one runs, a new job once it is over; a metadata-only update
    (same version) starts nothing."""
    user = create_user(db_url)
    upload_object(db_url, user, version="v1")
    upload_object(db_url, user, version="v1", size=99)  # same version: not a new upload
    assert [j["stage"] for j in jobs_for(db_url, user)] == ["queued"]

    upload_object(db_url, user, version="v2")
    assert [j["stage"] for j in jobs_for(db_url, user)] == ["queued", "rejected"]

    first = jobs_for(db_url, user)[0]["id"]
    assert JobStore(db_url).request_cancel(first) == "cancelled"
    upload_object(db_url, user, version="v3")
    jobs = jobs_for(db_url, user)
    assert [j["stage"] for j in jobs] == ["cancelled", "rejected", "queued"]
    assert jobs[-1]["object_version"] == "v3"


def test_uploads_outside_the_import_folders_start_nothing(db_url: str) -> None:
    """Guards pitfall 1 (work that vanishes): only `imports/{user_id}/...` of a real person
    starts an import; anything else is ignored without failing the upload."""
    user = create_user(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("insert into storage.buckets (id, name) values ('avatars', 'avatars')")
        conn.execute(
            "insert into storage.objects (bucket_id, name, metadata, version) values"
            " ('avatars', %s, '{}', 'v1'), ('imports', 'not-a-user/x.zip', '{}', 'v1'),"
            " ('imports', %s, '{}', 'v1'), ('imports', 'top-level.zip', '{}', 'v1')",
            (f"{user}/me.png", f"{uuid.uuid4()}/ghost.zip"),
        )
        assert conn.execute("select count(*) from public.import_jobs").fetchone()[0] == 0


def test_progress_updates_append_no_event_but_stage_changes_do(db_url: str) -> None:
    """Guards pitfall 5 (no progress): counters move on the job row (what Realtime shows)
    without flooding the outbox; each stage change appends exactly one event."""
    user = create_user(db_url)
    upload_object(db_url, user)
    job_id = jobs_for(db_url, user)[0]["id"]
    store = JobStore(db_url, progress_interval_s=0)
    assert store.claim(job_id, "queued", "w1") is not None
    for done in (10, 20, 30):
        assert store.progress(job_id, "w1", {"bytes_done": done}) == "ok"
    assert len(events_for(db_url, job_id)) == 1
    assert store.get(job_id).bytes_done == 30

    assert store.advance(job_id, "w1", "queued") == "downloading"
    events = events_for(db_url, job_id)
    assert [e["type"] for e in events] == ["import.queued", "import.downloading"]


def test_stage_timings_and_status_follow_the_stage(db_url: str) -> None:
    """Guards pitfall 9 (status never written): every stage records when it started and
    ended, and user_profiles.import_status follows the job."""
    user = create_user(db_url)
    upload_object(db_url, user)
    job_id = jobs_for(db_url, user)[0]["id"]

    def status() -> str | None:
        with psycopg.connect(db_url) as conn:
            row = conn.execute(
                "select import_status from public.user_profiles where user_id = %s", (user,)
            ).fetchone()
        return None if row is None else row[0]

    assert status() == "processing"
    walk_to(db_url, job_id, "embedding")
    job = JobStore(db_url).get(job_id)
    assert job is not None
    assert set(job.stage_timings) == {
        "queued",
        "downloading",
        "parsing",
        "generating_soulprint",
        "embedding",
    }
    assert "ended_at" in job.stage_timings["parsing"]
    assert "ended_at" not in job.stage_timings["embedding"]
    assert "chunking" not in job.stage_timings  # never entered

    store = JobStore(db_url)
    store.claim(job_id, "embedding", "w")
    assert store.fail(job_id, "w", "embedder_down", "We could not build your memory.")
    assert status() == "failed"
    assert store.get(job_id).completed_at is not None


def _write_import_data(worker_url: str, job_id: uuid.UUID, user: uuid.UUID, tag: str) -> None:
    """What parsing and embedding write, as the worker."""
    with psycopg.connect(worker_url) as conn:
        conn.execute("set search_path = public, extensions")
        conn.execute(
            "insert into public.import_conversations (job_id, conversation_id, user_id, title,"
            " message_count) values (%s, %s, %s, %s, 2)",
            (job_id, f"conv-{tag}", user, f"title {tag}"),
        )
        conn.execute(
            "insert into public.memory_chunks (id, job_id, user_id, conversation_id,"
            " chunk_index, content, embedding, embedding_model, embedding_dim)"
            " values (%s, %s, %s, %s, 0, %s, %s::vector, 'test', 3)",
            (uuid.uuid4(), job_id, user, f"conv-{tag}", f"chunk {tag}", "[1,0,0]"),
        )
        conn.commit()


def _finish(store: JobStore, worker_url: str, job_id: uuid.UUID, user: uuid.UUID, tag: str) -> None:
    admin = store.conninfo
    walk_to(admin, job_id, "parsing")
    assert store.claim(job_id, "parsing", "w") is not None
    _write_import_data(worker_url, job_id, user, tag)
    store.advance(job_id, "w", "parsing", {"conversations": 1, "chunks": 1, "embedded_chunks": 1})
    finish_import(store, admin, job_id, f"soulprint {tag}", {"tag": tag})


def _what_the_person_sees(url: str, user: uuid.UUID) -> dict[str, object]:
    with user_session(url, user) as conn:
        profile = conn.execute(
            "select import_status, soulprint_text, total_conversations"
            " from public.user_profiles where user_id = %s",
            (user,),
        ).fetchone()
        return {
            "profile": profile,
            "conversations": [
                r["title"]
                for r in conn.execute(
                    "select title from public.import_conversations order by title"
                )
            ],
            "chunks": [
                r["content"]
                for r in conn.execute("select content from public.memory_chunks order by content")
            ],
            "soulprints": [
                r["soulprint_text"]
                for r in conn.execute("select soulprint_text from public.soulprints")
            ],
        }


def test_reimport_swaps_data_atomically_at_completion(db_url: str, worker_db_url: str) -> None:
    """Guards pitfall 7 (duplicate imports): a re-import never shows half old, half new data:
    the person keeps the old import and soulprint until the new one completes, then sees only
    the new one, and the old rows are gone."""
    user = create_user(db_url)
    store = JobStore(worker_db_url)
    upload_object(db_url, user, name="first.zip")
    first = jobs_for(db_url, user)[0]["id"]
    _finish(store, worker_db_url, first, user, "old")
    old_view = {
        "profile": {
            "import_status": "complete",
            "soulprint_text": "soulprint old",
            "total_conversations": 1,
        },
        "conversations": ["title old"],
        "chunks": ["chunk old"],
        "soulprints": ["soulprint old"],
    }
    assert _what_the_person_sees(db_url, user) == old_view

    upload_object(db_url, user, name="second.zip")
    second = jobs_for(db_url, user)[-1]["id"]
    walk_to(db_url, second, "parsing")
    assert store.claim(second, "parsing", "w2") is not None
    _write_import_data(worker_db_url, second, user, "new")
    # Mid-import: the new rows exist, the person still sees exactly the old import.
    seen = _what_the_person_sees(db_url, user)
    assert seen["conversations"] == ["title old"]
    assert seen["chunks"] == ["chunk old"]
    assert seen["soulprints"] == ["soulprint old"]
    assert seen["profile"]["soulprint_text"] == "soulprint old"
    assert seen["profile"]["import_status"] == "processing"
    store.release(second, "w2")

    store2 = JobStore(worker_db_url)
    assert store2.claim(second, "parsing", "w") is not None
    store2.advance(second, "w", "parsing", {"conversations": 1, "chunks": 1, "embedded_chunks": 1})
    walk_to(db_url, second, "generating_soulprint")
    assert store2.claim(second, "generating_soulprint", "w") is not None
    assert store2.show_soulprint(second, "w", {"tag": "new"}, "soulprint new") == "embedding"
    # Soulprint first: the new soulprint shows while the memory is still the old import's.
    seen = _what_the_person_sees(db_url, user)
    assert seen["profile"]["soulprint_text"] == "soulprint new"
    assert sorted(seen["soulprints"]) == ["soulprint new", "soulprint old"]
    assert (seen["conversations"], seen["chunks"]) == (["title old"], ["chunk old"])
    assert store2.claim(second, "embedding", "w") is not None
    assert store2.complete(second, "w")

    assert _what_the_person_sees(db_url, user) == {
        "profile": {
            "import_status": "complete",
            "soulprint_text": "soulprint new",
            "total_conversations": 1,
        },
        "conversations": ["title new"],
        "chunks": ["chunk new"],
        "soulprints": ["soulprint new"],
    }
    with psycopg.connect(db_url) as conn:
        left = conn.execute(
            "select (select count(*) from public.memory_chunks where job_id = %s)"
            " + (select count(*) from public.import_conversations where job_id = %s)"
            " + (select count(*) from public.soulprints where job_id = %s)",
            (first, first, first),
        ).fetchone()[0]
    assert left == 0


def test_vector_dimension_follows_the_embedder(db_url: str) -> None:
    """Guards pitfall 6 (memory and size surprises): any embedder dimension is stored, and a
    vector that does not match its declared dimension is refused."""
    user = create_user(db_url)
    upload_object(db_url, user)
    job_id = jobs_for(db_url, user)[0]["id"]
    with psycopg.connect(db_url) as conn:
        conn.execute("set search_path = public, extensions")
        for dim in (3, 384, 1536):
            conn.execute(
                "insert into public.memory_chunks (id, job_id, user_id, conversation_id,"
                " chunk_index, content, embedding, embedding_dim)"
                " values (%s, %s, %s, 'c', 0, 'x', %s::vector, %s)",
                (uuid.uuid4(), job_id, user, str([0.5] * dim), dim),
            )
        conn.commit()
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute(
                "insert into public.memory_chunks (id, job_id, user_id, conversation_id,"
                " chunk_index, content, embedding, embedding_dim)"
                " values (%s, %s, %s, 'c', 0, 'x', '[1,2]'::vector, 384)",
                (uuid.uuid4(), job_id, user),
            )


def test_realtime_publishes_the_progress_row_not_the_job_row(pg_admin_url: str) -> None:
    """Guards pitfall 5 (no progress): the app follows its import live through Realtime,
    on import_progress; import_jobs (leases, checkpoints, attempts) is no longer published
    (issue 15: every claim and renewal streamed to every app)."""
    with psycopg.connect(pg_admin_url) as conn:
        published = {
            r[0]
            for r in conn.execute(
                "select tablename from pg_publication_tables where pubname = 'supabase_realtime'"
                " and schemaname = 'public'"
            )
        }
    assert "import_progress" in published and "import_jobs" not in published


def test_migrations_are_recorded_like_the_cli_and_idempotent(
    pg_server_url: str, db_url: str
) -> None:
    """Guards pitfall 1 (work that vanishes): a migrated database records every file the way
    `supabase db push` does, and migrating again, even concurrently, changes nothing."""
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        rows = conn.execute(
            "select version, name, statements from supabase_migrations.schema_migrations"
            " order by version"
        ).fetchall()
    assert [(r["version"], r["name"]) for r in rows] == [
        (m.version, m.name) for m in list_migrations()
    ]
    assert all(r["statements"] for r in rows)
    assert apply_migrations(db_url) == []

    name = f"sp_fresh_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}" template template0')
    fresh = with_dbname(pg_server_url, name)
    try:
        with ThreadPoolExecutor(4) as pool:
            results = list(pool.map(lambda _: apply_migrations(fresh), range(4)))
        assert sorted(len(r) for r in results) == [0, 0, 0, len(list_migrations())]
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(f'drop database "{name}" with (force)')


def test_bootstrap_is_skipped_where_supabase_is_present(pg_server_url: str) -> None:
    """Guards pitfall 3 (service key in the worker): on a real Supabase database the
    platform's own auth and storage schemas are left alone; only our migrations run."""
    name = f"sp_hosted_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f'create database "{name}" template template0')
    url = with_dbname(pg_server_url, name)
    try:
        # Stand-in for the platform: its schemas exist, with something bootstrap would add.
        from pipeline.migrate import sql_dir

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute((sql_dir() / "bootstrap.sql").read_text())
            conn.execute("drop function storage.filename(text)")
        assert len(apply_migrations(url)) == len(list_migrations())
        with psycopg.connect(url) as conn:
            assert (
                conn.execute("select to_regprocedure('storage.filename(text)')").fetchone()[0]
                is None
            )
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(f'drop database "{name}" with (force)')


def test_a_first_import_in_progress_is_invisible_until_complete(
    db_url: str, worker_db_url: str
) -> None:
    """Guards pitfall 5 (no progress): the person follows the job row, while its half-written
    data stays hidden until the import completes as a whole."""
    user = create_user(db_url)
    upload_object(db_url, user)
    job_id = jobs_for(db_url, user)[0]["id"]
    walk_to(db_url, job_id, "parsing")
    store = JobStore(worker_db_url)
    assert store.claim(job_id, "parsing", "w") is not None
    _write_import_data(worker_db_url, job_id, user, "first")
    seen = _what_the_person_sees(db_url, user)
    assert seen["conversations"] == seen["chunks"] == seen["soulprints"] == []
    assert seen["profile"]["import_status"] == "processing"
    with user_session(db_url, user) as conn:
        assert conn.execute("select stage from public.import_jobs").fetchone()["stage"] == (
            "parsing"
        )
