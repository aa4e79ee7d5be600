"""The counter list exists once per language, and the two agree: Python's
``pipeline.jobstore.COUNTERS``/``FACTS`` and SQL's ``public._import_apply_counters``."""

from __future__ import annotations

import re
import uuid
from typing import Any

import psycopg
import pytest

from pipeline.jobstore import COUNTERS, FACTS, JobStore
from tests.dbutil import create_user, jobs_for, upload_object

# A value per key that no stage would report by accident.
VALUES: dict[str, Any] = {
    **{name: 1000 + i for i, name in enumerate(COUNTERS)},
    "sha256": "ab" * 32,
    "embedding_model": "test-model",
    "embedding_dim": 7,
}


@pytest.fixture
def store(worker_db_url: str) -> JobStore:
    """A job store logged in as import_worker, as the stages use it."""
    with JobStore(worker_db_url) as s:
        yield s


def _claimed_job(db_url: str, store: JobStore) -> uuid.UUID:
    user = create_user(db_url)
    upload_object(db_url, user)
    job_id = jobs_for(db_url, user)[0]["id"]
    assert store.claim(job_id, "queued", "w1", 60) is not None
    return job_id


def _helper_keys(db_url: str) -> set[str]:
    """The keys the SQL helper reads from its counters argument (its source's literals)."""
    with psycopg.connect(db_url) as conn:
        row = conn.execute(
            "select prosrc from pg_proc"
            " where oid = 'public._import_apply_counters(uuid, jsonb)'::regprocedure"
        ).fetchone()
    assert row is not None
    return set(re.findall(r"'([a-z_0-9]+)'", row[0])) - {"{}"}


def test_sql_helper_sets_exactly_the_python_counters_and_facts(db_url: str) -> None:
    """Guards the counter list drifting apart (issue 10, "Counters"): a counter added on one
    side only would be dropped silently by the other."""
    assert _helper_keys(db_url) == set(COUNTERS) | set(FACTS)


def test_every_key_reported_as_progress_reads_back(db_url: str, store: JobStore) -> None:
    """Every counter and fact a stage reports is stored (progress: report_import_progress);
    the lease is the holder's only, and a key left out keeps its value."""
    job_id = _claimed_job(db_url, store)
    for key, value in VALUES.items():
        assert store.progress(job_id, "w1", {key: value}, force=True) == "ok"
        job = store.get(job_id)
        assert job is not None
        assert getattr(job, key) == value, key
    job = store.get(job_id)
    assert job is not None
    assert {k: getattr(job, k) for k in VALUES} == VALUES  # nothing reset by later reports
    # Not the lease holder: nothing written.
    assert store.progress(job_id, "w2", {"chunks": 1}, force=True) == "not_yours"
    job = store.get(job_id)
    assert job is not None and job.chunks == VALUES["chunks"]


def test_every_key_given_to_advance_reads_back(db_url: str, store: JobStore) -> None:
    """advance_import_job stores the stage's final counters and facts with the new stage."""
    job_id = _claimed_job(db_url, store)
    assert store.advance(job_id, "w1", "queued", VALUES) == "downloading"
    job = store.get(job_id)
    assert job is not None
    assert job.stage == "downloading"
    assert {k: getattr(job, k) for k in VALUES} == VALUES
    assert job.lease_owner is None and job.attempts == 0


def test_renewal_keeps_counters_and_extends_the_lease(db_url: str, store: JobStore) -> None:
    """A bare renewal ('{}' counters) touches no counter; a NULL lease (progress) does not
    renew (the pull queue's rule, 20261201100000_pull_queue.sql)."""
    job_id = _claimed_job(db_url, store)
    assert store.progress(job_id, "w1", {"chunks": 5}, force=True) == "ok"
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "update public.import_jobs set lease_expires_at = now() + interval '2 s' where id = %s",
            (job_id,),
        )
    assert store.progress(job_id, "w1", {"chunks": 6}, force=True) == "ok"
    job = store.get(job_id)
    assert job is not None and job.chunks == 6
    before = job.lease_expires_at
    assert store.renew(job_id, "w1") == "ok"
    job = store.get(job_id)
    assert job is not None and job.chunks == 6
    assert job.lease_expires_at is not None and before is not None
    assert job.lease_expires_at > before
