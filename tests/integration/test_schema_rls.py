"""Who may see and do what: people, anon, the worker role, Storage policies."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg.rows import dict_row

from pipeline.jobstore import JobStore
from tests.dbutil import (
    create_user,
    finish_import,
    jobs_for,
    upload_object,
    user_session,
    walk_to,
)

DENIED = (psycopg.errors.InsufficientPrivilege,)


def _two_people_with_imports(db_url: str) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID, uuid.UUID]:
    """A and B, each with a completed import holding one conversation and one chunk."""
    people = []
    for tag in ("a", "b"):
        user = create_user(db_url)
        upload_object(db_url, user)
        job_id = jobs_for(db_url, user)[0]["id"]
        walk_to(db_url, job_id, "parsing")
        store = JobStore(db_url)
        store.claim(job_id, "parsing", "w")
        with psycopg.connect(db_url) as conn:
            conn.execute(
                "insert into public.import_conversations (job_id, conversation_id, user_id,"
                " title) values (%s, 'c1', %s, %s)",
                (job_id, user, f"conv {tag}"),
            )
            conn.execute(
                "insert into public.memory_chunks (id, job_id, user_id, conversation_id,"
                " chunk_index, content, embedding, embedding_model, embedding_dim)"
                " values (%s, %s, %s, 'c1', 0, %s, '{0.1,0.2,0.3}'::real[], 'm', 3)",
                (uuid.uuid4(), job_id, user, f"chunk {tag}"),
            )
            conn.commit()
        store.advance(job_id, "w", "parsing")
        finish_import(store, db_url, job_id, f"soulprint {tag}")
        people += [user, job_id]
    return people[0], people[1], people[2], people[3]


def test_a_person_sees_only_their_own_jobs_and_data(db_url: str) -> None:
    """Guards pitfall 3 (service key in the worker): row level security, not app code,
    keeps one person's imports, chunks and soulprint from another."""
    a, job_a, b, job_b = _two_people_with_imports(db_url)
    with user_session(db_url, a) as conn:
        assert [r["id"] for r in conn.execute("select id from public.import_jobs")] == [job_a]
        assert [r["content"] for r in conn.execute("select content from public.memory_chunks")] == [
            "chunk a"
        ]
        assert [
            r["title"] for r in conn.execute("select title from public.import_conversations")
        ] == ["conv a"]
        assert [
            r["soulprint_text"]
            for r in conn.execute("select soulprint_text from public.soulprints")
        ] == ["soulprint a"]
        assert [r["user_id"] for r in conn.execute("select user_id from public.user_profiles")] == [
            a
        ]
        # Asking for B's rows by id finds nothing.
        assert (
            conn.execute("select id from public.import_jobs where id = %s", (job_b,)).fetchone()
            is None
        )
        assert (
            conn.execute("select * from public.memory_chunks where user_id = %s", (b,)).fetchone()
            is None
        )


def test_a_person_can_cancel_only_their_own_job_and_change_nothing_else(db_url: str) -> None:
    """Guards pitfall 3 (service key in the worker): a person may request the cancel of their
    own active import, nothing more; B's import is out of A's reach."""
    a, b = create_user(db_url), create_user(db_url)
    upload_object(db_url, a)
    upload_object(db_url, b)
    job_a, job_b = jobs_for(db_url, a)[0]["id"], jobs_for(db_url, b)[0]["id"]

    with user_session(db_url, a) as conn:
        assert (
            conn.execute("select public.request_import_cancel(%s) as s", (job_b,)).fetchone()["s"]
            is None
        )
        conn.commit()
    assert jobs_for(db_url, b)[0]["stage"] == "queued"
    assert jobs_for(db_url, b)[0]["cancel_requested_at"] is None

    for sql in (
        "update public.import_jobs set stage = 'cancelled' where id = %s",
        "update public.import_jobs set cancel_requested_at = now() where id = %s",
        "delete from public.import_jobs where id = %s",
    ):
        with user_session(db_url, a) as conn, pytest.raises(DENIED):
            conn.execute(sql, (job_a,))
    with user_session(db_url, a) as conn, pytest.raises(DENIED):
        conn.execute("select public.advance_import_job(%s, 'me', 'queued')", (job_a,))
    # The app may let people edit their own profile row; even then the import columns stay
    # the pipeline's.
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "create policy app_edits_own_profile on public.user_profiles for update"
            " to authenticated using (user_id = auth.uid())"
        )
    with user_session(db_url, a) as conn, pytest.raises(DENIED):
        conn.execute(
            "update public.user_profiles set soulprint_text = 'forged' where user_id = %s", (a,)
        )

    # A held job: the request is recorded for the worker to honour.
    store = JobStore(db_url)
    assert store.claim(job_a, "queued", "w") is not None
    with user_session(db_url, a) as conn:
        assert (
            conn.execute("select public.request_import_cancel(%s) as s", (job_a,)).fetchone()["s"]
            == "queued"
        )
        conn.commit()
    assert store.progress(job_a, "w", {}, force=True) == "cancel_requested"
    assert store.finish_cancel(job_a, "w")
    assert jobs_for(db_url, a)[0]["stage"] == "cancelled"


def test_anon_reads_nothing(db_url: str) -> None:
    """Guards pitfall 3 (service key in the worker): without a signed-in person the API
    exposes no import data at all."""
    _two_people_with_imports(db_url)
    for table in (
        "import_jobs",
        "import_conversations",
        "memory_chunks",
        "soulprints",
        "import_events",
        "event_deliveries",
        "webhook_receipts",
        "user_profiles",
        "import_progress",
    ):
        with user_session(db_url, None) as conn, pytest.raises(DENIED):
            conn.execute(f"select * from public.{table}")
    with user_session(db_url, None) as conn:
        assert conn.execute("select * from storage.objects").fetchall() == []
    with user_session(db_url, None) as conn, pytest.raises(DENIED):
        conn.execute("select public.request_import_cancel(gen_random_uuid())")


def test_people_upload_and_read_only_in_their_own_folder(db_url: str) -> None:
    """Guards pitfall 3 (service key in the worker): Storage policies let a person write and
    read `imports/{their id}/...` only; the upload as the person starts the import."""
    a, b = create_user(db_url), create_user(db_url)
    upload_object(db_url, b, name="b.zip")
    with user_session(db_url, a) as conn:
        upload_object(conn, a, name="mine.zip")
        conn.commit()
    assert [j["stage"] for j in jobs_for(db_url, a)] == ["queued"]

    with user_session(db_url, a) as conn:
        names = [r["name"] for r in conn.execute("select name from storage.objects")]
        assert names == [f"{a}/mine.zip"]
    with user_session(db_url, a) as conn, pytest.raises(DENIED):
        upload_object(conn, b, name="planted.zip")


def test_worker_role_has_exactly_what_the_stages_need(db_url: str, worker_db_url: str) -> None:
    """Guards pitfall 3 (service key in the worker): the worker logs in as import_worker, not
    service_role: it reads jobs, writes data of active imports, works the outbox, and cannot
    read auth.users, change jobs directly, or read Storage (that is the JWT's role)."""
    user = create_user(db_url)
    upload_object(db_url, user)
    job_id = jobs_for(db_url, user)[0]["id"]
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("insert into storage.buckets (id, name) values ('avatars', 'avatars')")
        conn.execute(
            "insert into storage.objects (bucket_id, name, version) values ('avatars', %s, 'v1')",
            (f"{user}/face.png",),
        )

    with psycopg.connect(worker_db_url, row_factory=dict_row) as w:
        assert w.execute("select current_user as u").fetchone()["u"] == "import_worker"
        assert (
            w.execute("select stage from public.import_jobs where id = %s", (job_id,)).fetchone()[
                "stage"
            ]
            == "queued"
        )
        event = w.execute("select id from public.import_events").fetchone()["id"]
        w.execute(
            "update public.import_events set attempts = attempts + 1,"
            " next_attempt_at = now() where id = %s",
            (event,),
        )
        assert w.execute("select public.ack_import_event(%s) as ok", (event,)).fetchone()["ok"]
        w.execute(
            "insert into public.event_deliveries (event_id, status_code, via)"
            " values (%s, 200, 'relay')",
            (event,),
        )
        w.execute("insert into public.webhook_receipts (webhook_id) values (%s)", (str(event),))
        w.commit()

    denied = [
        "select * from auth.users",
        # Downloads go through Storage with the JWT's own role (import_storage_reader).
        "select bucket_id from storage.objects",
        "update public.import_jobs set stage = 'complete'",
        "update public.import_jobs set attempts = 0",
        "insert into public.import_events (job_id, type, payload)"
        " select id, 'import.x', '{}' from public.import_jobs",
        "update public.user_profiles set soulprint_text = 'x'",
        "insert into public.soulprints (job_id, user_id) select id, user_id"
        " from public.import_jobs",
    ]
    for sql in denied:
        with psycopg.connect(worker_db_url) as w, pytest.raises(DENIED):
            w.execute(sql)


def test_worker_cannot_rewrite_a_finished_import(db_url: str, worker_db_url: str) -> None:
    """Guards pitfall 7 (duplicate imports): a late or duplicate stage run cannot add rows to,
    or delete rows of, an import that is already complete."""
    a, job_a, _b, _job_b = _two_people_with_imports(db_url)
    with psycopg.connect(worker_db_url) as w:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            w.execute(
                "insert into public.memory_chunks (id, job_id, user_id, conversation_id,"
                " chunk_index, content) values (%s, %s, %s, 'c2', 0, 'late')",
                (uuid.uuid4(), job_a, a),
            )
        w.rollback()
        # No stage deletes data or edits a conversation or a chunk (vectors are written by
        # write_import_embedding_batch): the worker may not at all.
        for sql in (
            "delete from public.memory_chunks where job_id = %s",
            "update public.import_conversations set title = 'x' where job_id = %s",
            "update public.memory_chunks set content = 'x' where job_id = %s",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                w.execute(sql, (job_a,))
            w.rollback()
    with user_session(db_url, a) as conn:
        assert conn.execute("select count(*) as n from public.memory_chunks").fetchone()["n"] == 1


def test_an_api_caller_without_identity_cancels_nothing(db_url: str) -> None:
    """Guards pitfall 3 (service key in the worker): a request as `authenticated` without a
    user id in its claims is nobody, not an operator."""
    user = create_user(db_url)
    upload_object(db_url, user)
    job_id = jobs_for(db_url, user)[0]["id"]
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        conn.execute("set local role authenticated")
        assert (
            conn.execute("select public.request_import_cancel(%s) as s", (job_id,)).fetchone()["s"]
            is None
        )
        conn.commit()
    assert jobs_for(db_url, user)[0]["stage"] == "queued"
