"""Helpers for tests on the real database: people, uploads as Storage makes them, acting as a
person, and reading jobs and events back. Plain functions, no fixtures (see conftest.py)."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from pipeline.jobstore import JobStore

BUCKET = "imports"


def with_dbname(url: str, dbname: str) -> str:
    """The same server and user as ``url``, database ``dbname`` (URL or key=value form)."""
    if url.startswith(("postgres://", "postgresql://")):
        parts = urlsplit(url)
        return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, ""))
    from psycopg.conninfo import make_conninfo

    return make_conninfo(url, dbname=dbname)


def create_user(admin_url: str, email: str | None = None) -> uuid.UUID:
    """A row in auth.users (what sign-up does); returns the user id."""
    user_id = uuid.uuid4()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            "insert into auth.users (id, aud, role, email) values (%s, 'authenticated',"
            " 'authenticated', %s)",
            (user_id, email or f"{user_id}@test.invalid"),
        )
    return user_id


def upload_object(
    target: str | psycopg.Connection[Any],
    user_id: uuid.UUID,
    name: str = "export.zip",
    size: int = 1234,
    version: str | None = None,
    mimetype: str = "application/zip",
) -> uuid.UUID:
    """Insert (or, for the same path, upsert) the storage.objects row exactly as Supabase
    Storage does once all bytes are stored: bucket 'imports', name '{user_id}/<name>',
    metadata {size, mimetype, eTag}, a fresh version. Returns the object id.

    ``target`` is a URL (committed at once) or an open connection (left to the caller's
    transaction, e.g. to roll it back).
    """
    version = version or str(uuid.uuid4())
    path = f"{user_id}/{name}"
    etag = hashlib.md5(f"{path}:{version}".encode()).hexdigest()
    metadata = {
        "size": size,
        "mimetype": mimetype,
        "eTag": f'"{etag}"',
        "contentLength": size,
        "cacheControl": "max-age=3600",
    }
    sql = """
        insert into storage.objects (bucket_id, name, owner, owner_id, metadata, version)
        values (%s, %s, %s, %s, %s, %s)
        on conflict (bucket_id, name) do update
           set metadata = excluded.metadata, version = excluded.version, updated_at = now()
        returning id
    """
    params = (BUCKET, path, user_id, str(user_id), Jsonb(metadata), version)
    if isinstance(target, psycopg.Connection):
        row = target.execute(sql, params).fetchone()
    else:
        with psycopg.connect(target, autocommit=True) as conn:
            row = conn.execute(sql, params).fetchone()
    assert row is not None
    return row[0] if not isinstance(row, dict) else row["id"]


def as_user(conn: psycopg.Connection[Any], user_id: uuid.UUID) -> None:
    """Act as the signed-in person for the rest of the current transaction, the way
    PostgREST does: JWT claims in request.jwt.claims, role authenticated. The connection
    must not be in autocommit (both settings are transaction-local)."""
    claims = f'{{"sub": "{user_id}", "role": "authenticated"}}'
    conn.execute("select set_config('request.jwt.claims', %s, true)", (claims,))
    conn.execute("set local role authenticated")


def as_anon(conn: psycopg.Connection[Any]) -> None:
    """Act as an anonymous API caller for the rest of the current transaction."""
    conn.execute("select set_config('request.jwt.claims', '{\"role\": \"anon\"}', true)")
    conn.execute("set local role anon")


@contextmanager
def user_session(url: str, user_id: uuid.UUID | None) -> Iterator[psycopg.Connection[Any]]:
    """A connection inside a transaction acting as ``user_id`` (None: anon); rolled back
    at the end, so a test can try anything."""
    with psycopg.connect(url, row_factory=dict_row) as conn:
        if user_id is None:
            as_anon(conn)
        else:
            as_user(conn, user_id)
        try:
            yield conn
        finally:
            conn.rollback()


def jobs_for(conninfo: str, user_id: uuid.UUID) -> list[dict[str, Any]]:
    """All import_jobs rows of a person, oldest first (read as admin)."""
    with psycopg.connect(conninfo, row_factory=dict_row) as conn:
        return conn.execute(
            "select * from public.import_jobs where user_id = %s order by created_at, id",
            (user_id,),
        ).fetchall()


def events_for(conninfo: str, job_id: uuid.UUID) -> list[dict[str, Any]]:
    """The outbox rows of a job, in the order they were appended."""
    with psycopg.connect(conninfo, row_factory=dict_row) as conn:
        return conn.execute(
            "select * from public.import_events where job_id = %s"
            " order by created_at, payload->>'timestamp', id",
            (job_id,),
        ).fetchall()


SOULPRINT_OF_WALK_TO = "A soulprint written by walk_to."


def walk_to(conninfo: str, job_id: uuid.UUID, target: str, owner: str = "test-walker") -> None:
    """Move a job through the real transition functions until it sits in ``target`` (an
    active stage), unheld. For tests that need a job in a given stage. Passing
    generating_soulprint shows SOULPRINT_OF_WALK_TO; use ``finish_import`` to choose it."""
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for _ in range(10):
            stage = conn.execute(
                "select stage::text from public.import_jobs where id = %s", (job_id,)
            ).fetchone()[0]
            if stage == target:
                return
            conn.execute("select public.claim_import_job(%s, %s, %s, 60)", (job_id, stage, owner))
            if stage == "generating_soulprint":  # its own transition: the soulprint shows
                nxt = conn.execute(
                    "select public.show_import_soulprint(%s, %s, '{}', %s)",
                    (job_id, owner, SOULPRINT_OF_WALK_TO),
                ).fetchone()[0]
            else:
                nxt = conn.execute(
                    "select public.advance_import_job(%s, %s, %s)", (job_id, owner, stage)
                ).fetchone()[0]
            if nxt is None:
                raise AssertionError(f"could not advance job {job_id} from {stage}")
    raise AssertionError(f"job {job_id} never reached {target}")


def finish_import(
    store: JobStore,
    conninfo: str,
    job_id: uuid.UUID,
    soulprint_text: str,
    profile: dict[str, object] | None = None,
    owner: str = "w",
) -> None:
    """From wherever the job is to `complete` through the real transitions, showing
    ``soulprint_text`` when the soulprint stage ends (``conninfo``: an admin URL)."""
    walk_to(conninfo, job_id, "generating_soulprint")
    assert store.claim(job_id, "generating_soulprint", owner) is not None
    assert store.show_soulprint(job_id, owner, profile or {}, soulprint_text) == "embedding"
    assert store.claim(job_id, "embedding", owner) is not None
    assert store.complete(job_id, owner)
