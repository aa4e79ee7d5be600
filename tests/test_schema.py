"""Schema and state machine on the real embedded PostgreSQL (issue 3)."""

from __future__ import annotations

import psycopg

from tests.dbutil import create_user, events_for, jobs_for, upload_object


def test_upload_creates_queued_job_and_event_in_same_transaction(db_url: str) -> None:
    """Guards pitfall 1 (work that vanishes): the upload row, the job and its first event
    commit together, or not at all."""
    user = create_user(db_url)
    upload_object(db_url, user, size=4242)
    [job] = jobs_for(db_url, user)
    assert job["stage"] == "queued"
    assert job["file_size"] == 4242
    assert job["object_name"] == f"{user}/export.zip"
    [event] = events_for(db_url, job["id"])
    assert event["type"] == "import.queued"
    assert event["payload"]["data"] == {
        "job_id": str(job["id"]), "user_id": str(user), "stage": "queued",
        "reason": "stage_changed"}

    with psycopg.connect(db_url) as conn:
        upload_object(conn, user, name="second.zip")
        conn.rollback()
    assert len(jobs_for(db_url, user)) == 1
