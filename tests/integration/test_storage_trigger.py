"""The upload trigger and the `imports` policies against Storage as it is today and as it was.

Hosted Storage added object versioning (archived_at, is_delete_marker, is_versioned): the
trigger must treat a delete marker or an archived row as no upload and a versioned
overwrite as one. And the attacks of the security review: a path that climbs into another
person's folder (F2), an upload into someone else's folder (F4), a flood of uploads (F8), a
person unable to delete their own export (F7).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from tests.dbutil import (
    as_user,
    create_user,
    events_for,
    jobs_for,
    upload_object,
    user_session,
)

DENIED = (psycopg.errors.InsufficientPrivilege,)
VERSIONING_COLUMNS = ("archived_at", "is_delete_marker", "is_versioned")


@pytest.fixture(params=["storage-2024", "storage-current"])
def storage_db(request: pytest.FixtureRequest, db_url: str) -> Iterator[str]:
    """A migrated database whose storage.objects has the columns of Storage before object
    versioning ("storage-2024") or today's ("storage-current")."""
    if request.param == "storage-2024":
        with psycopg.connect(db_url, autocommit=True) as conn:
            for col in VERSIONING_COLUMNS:
                conn.execute(f"alter table storage.objects drop column {col}")
    yield db_url


def insert_object(
    conn: psycopg.Connection[Any],
    name: str,
    *,
    owner: uuid.UUID | None,
    version: str | None = None,
    **columns: Any,
) -> uuid.UUID:
    """One storage.objects row in bucket `imports`, as Storage writes it (extra columns as
    given, e.g. the versioning ones)."""
    values: dict[str, Any] = {
        "bucket_id": "imports",
        "name": name,
        "owner_id": str(owner) if owner else None,
        "owner": owner,
        "version": version or str(uuid.uuid4()),
        "metadata": Jsonb({"size": 1234, "mimetype": "application/zip"}),
        **columns,
    }
    cols = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    row = conn.execute(
        f"insert into storage.objects ({cols}) values ({marks}) returning id", list(values.values())
    ).fetchone()
    assert row is not None
    return row[0] if not isinstance(row, dict) else row["id"]


def stages(db_url: str, user: uuid.UUID) -> list[str]:
    return [str(j["stage"]) for j in jobs_for(db_url, user)]


# -- versioning -----------------------------------------------------------------------


def test_plain_upload_and_reupload_still_start_imports(storage_db: str) -> None:
    """Guards pitfall 1 (work that vanishes): on the old and the current storage.objects
    shape alike, an upload queues an import and an upsert with a new version while it runs
    is a rejected job that says why."""
    user = create_user(storage_db)
    upload_object(storage_db, user, version="v1")
    upload_object(storage_db, user, version="v2")
    assert stages(storage_db, user) == ["queued", "rejected"]


def test_a_delete_marker_starts_no_import(db_url: str) -> None:
    """Guards pitfall 7 (duplicate imports): on a versioned bucket a delete inserts a
    delete-marker row; that is not an upload and must start nothing."""
    user = create_user(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        insert_object(
            conn, f"{user}/export.zip", owner=user, is_delete_marker=True, is_versioned=True
        )
    assert stages(db_url, user) == []


def test_an_archived_row_starts_no_import(db_url: str) -> None:
    """Guards pitfall 7 (duplicate imports): an archived (non-current) version written or
    updated with a new version string starts nothing."""
    user = create_user(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        insert_object(
            conn,
            f"{user}/old.zip",
            owner=user,
            archived_at="2026-01-01T00:00:00Z",
            is_versioned=True,
        )
        oid = insert_object(conn, f"{user}/live.zip", owner=user, is_versioned=True)
        conn.execute(
            "update public.import_jobs set stage = 'cancelled' where user_id = %s", (user,)
        )
        conn.execute(
            "update storage.objects set archived_at = now(), version = 'archived' where id = %s",
            (oid,),
        )
    assert stages(db_url, user) == ["cancelled"]


@pytest.mark.parametrize("shape", ["archive-then-insert", "copy-then-update"])
def test_a_versioned_overwrite_starts_exactly_one_import(db_url: str, shape: str) -> None:
    """Guards pitfall 7 (duplicate imports): a versioned overwrite writes two rows (the old
    version archived, the new one current) in one transaction; whichever way round Storage
    writes them, exactly one import starts."""
    user = create_user(db_url)
    name = f"{user}/export.zip"
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("drop index storage.bucketid_objname")  # versioned: one name, many rows
        first = insert_object(conn, name, owner=user, version="v1", is_versioned=True)
        conn.execute(
            "update public.import_jobs set stage = 'cancelled' where user_id = %s", (user,)
        )
    with psycopg.connect(db_url) as conn:
        if shape == "archive-then-insert":
            conn.execute("update storage.objects set archived_at = now() where id = %s", (first,))
            insert_object(conn, name, owner=user, version="v2", is_versioned=True)
        else:
            insert_object(
                conn,
                name,
                owner=user,
                version="v1",
                is_versioned=True,
                archived_at="2026-11-30T00:00:00Z",
            )
            conn.execute("update storage.objects set version = 'v2' where id = %s", (first,))
        conn.commit()
    jobs = jobs_for(db_url, user)
    assert [str(j["stage"]) for j in jobs] == ["cancelled", "queued"]
    assert jobs[-1]["object_version"] == "v2"


# -- F2: path traversal --------------------------------------------------------------


@pytest.mark.parametrize(
    "tail",
    [
        "../{other}/export.zip",
        "./export.zip",
        "a//export.zip",
        "..\\{other}\\export.zip",
        "export.zip/",
    ],
)
def test_path_traversal_into_another_folder_is_refused_and_rejected(
    storage_db: str, tail: str
) -> None:
    """F2: `{own id}/../{other id}/x.zip` passed the folder check. The Storage policy now
    refuses such a name for a person, and an object written with it anyway (a service
    upload) becomes a rejected job with a message, never an import."""
    me, other = create_user(storage_db), create_user(storage_db)
    name = f"{me}/" + tail.format(other=other)
    with user_session(storage_db, me) as conn, pytest.raises(DENIED):
        insert_object(conn, name, owner=me)

    with psycopg.connect(storage_db, autocommit=True) as conn:
        insert_object(conn, name, owner=me)
    [job] = jobs_for(storage_db, me)
    assert job["stage"] == "rejected"
    assert job["error_code"] == "invalid_object_name"
    assert "not valid" in job["error_message"]
    assert jobs_for(storage_db, other) == []


# -- F4: owner must be the folder's person -------------------------------------------


def test_upload_into_a_victims_folder_never_imports_for_the_victim(storage_db: str) -> None:
    """F4: with a permissive "any signed-in user may upload" policy (a common tutorial
    policy), M inserting `{victim}/x.zip` queued an import that replaced the victim's
    memory. The restrictive policy refuses it; and a row whose owner is not the folder's
    person (written past RLS) is a rejected job, not an import."""
    victim, mallory = create_user(storage_db), create_user(storage_db)
    with psycopg.connect(storage_db, autocommit=True) as conn:
        conn.execute(
            'create policy "tutorial: authenticated uploads" on storage.objects'
            " for insert to authenticated with check (true)"
        )
    with user_session(storage_db, mallory) as conn, pytest.raises(DENIED):
        insert_object(conn, f"{victim}/x.zip", owner=mallory)

    with psycopg.connect(storage_db, autocommit=True) as conn:
        insert_object(conn, f"{victim}/x.zip", owner=mallory)
        insert_object(conn, f"{victim}/y.zip", owner=None)  # a service-key upload
    jobs = jobs_for(storage_db, victim)
    assert [str(j["stage"]) for j in jobs] == ["rejected", "rejected"]
    assert {j["error_code"] for j in jobs} == {"not_uploaded_by_owner"}

    # The victim's own upload still works.
    upload_object(storage_db, victim, name="mine.zip")
    assert stages(storage_db, victim)[-1] == "queued"


# -- F8: rejected-job cap ------------------------------------------------------------


def test_fifty_reuploads_during_an_import_make_at_most_ten_rejected_jobs(storage_db: str) -> None:
    """F8: 50 version changes during one import made 50 rejected jobs and 51 events. Now at
    most 10 rejected jobs per person per hour; further uploads get no job and no event."""
    user = create_user(storage_db)
    for i in range(51):
        upload_object(storage_db, user, version=f"v{i}")
    jobs = jobs_for(storage_db, user)
    assert [str(j["stage"]) for j in jobs] == ["queued"] + ["rejected"] * 10
    with psycopg.connect(storage_db) as conn:
        n_events = conn.execute(
            "select count(*) from public.import_events e"
            " join public.import_jobs j on j.id = e.job_id"
            " where j.user_id = %s",
            (user,),
        ).fetchone()[0]
    assert n_events == 11
    assert len(events_for(storage_db, jobs[0]["id"])) == 1

    # Older rejections age out of the window; the queued import was never disturbed.
    with psycopg.connect(storage_db, autocommit=True) as conn:
        conn.execute(
            "update public.import_jobs set created_at = now() - interval '2 hours'"
            " where user_id = %s and stage = 'rejected'",
            (user,),
        )
    upload_object(storage_db, user, version="later")
    assert stages(storage_db, user).count("rejected") == 11


# -- F7: people delete their own export ----------------------------------------------


def _delete_as(conn: psycopg.Connection[Any], name: str) -> int:
    # The Storage API deletes rows itself, with this flag set (direct deletes are refused).
    conn.execute("select set_config('storage.allow_delete_query', 'true', true)")
    return conn.execute(
        "delete from storage.objects where bucket_id = 'imports' and name = %s", (name,)
    ).rowcount


def test_a_person_can_delete_their_own_export_and_no_one_elses(storage_db: str) -> None:
    """F7: a person could not delete their own raw export. Now they can, and only theirs."""
    me, other = create_user(storage_db), create_user(storage_db)
    upload_object(storage_db, me, name="mine.zip")
    upload_object(storage_db, other, name="theirs.zip")
    with psycopg.connect(storage_db) as conn:
        as_user(conn, me)
        assert _delete_as(conn, f"{other}/theirs.zip") == 0
        assert _delete_as(conn, f"{me}/mine.zip") == 1
        conn.commit()
    with psycopg.connect(storage_db) as conn:
        names = [r[0] for r in conn.execute("select name from storage.objects")]
    assert names == [f"{other}/theirs.zip"]
