"""One retry policy (SQL's release_import_job / sweep_import_jobs), on the real database as
the worker role: transient failures count, back off and end readably; shutdowns do not count."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from pipeline.errors import TransientError
from pipeline.jobstore import JobStore
from pipeline.settings import Settings
from pipeline.stages import run_stage
from pipeline.sweeper import run_sweep
from tests.dbutil import create_user, events_for, jobs_for, upload_object


@pytest.fixture
def store(worker_db_url: str):
    with JobStore(worker_db_url) as s:
        yield s


def _queued_job(db_url: str) -> uuid.UUID:
    user = create_user(db_url)
    upload_object(db_url, user)
    return jobs_for(db_url, user)[0]["id"]


def _end_backoff(db_url: str, job_id: uuid.UUID) -> None:
    """Time passing, without waiting for it: the backoff is over."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "update public.import_jobs set retry_at = now() - interval '1 s' where id = %s",
            (job_id,),
        )


def _outage(monkeypatch: pytest.MonkeyPatch) -> None:
    """The queued stage meets a dependency that answers 503 every time."""
    from pipeline import stages

    def failing(ctx: object) -> None:
        raise TransientError("Storage answered 503")

    monkeypatch.setitem(stages.HANDLERS, "queued", failing)


def test_a_dependency_outage_fails_the_job_readably_after_max_attempts(
    db_url: str,
    worker_db_url: str,
    store: JobStore,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path,
) -> None:
    """Guards pitfall 9 (user stuck): a stage raising TransientError on every attempt used to
    be released with the attempt subtracted and redelivered at once, for ever. Now each
    attempt counts, the next one waits a doubling backoff, and at MAX_ATTEMPTS the job is
    `failed` with a sentence the person can read."""
    _outage(monkeypatch)
    job_id = _queued_job(db_url)
    settings = Settings(max_attempts=3, retry_backoff_seconds=10, data_dir=tmp_path)
    delays = []
    outcomes = []
    for _ in range(8):
        outcomes.append(run_stage(job_id, "queued", settings, store, worker_db_url))
        if outcomes[-1] == "failed":
            break
        job = store.get(job_id)
        last = events_for(db_url, job_id)[-1]
        delays.append((last["next_attempt_at"] - last["created_at"]).total_seconds())
        assert job.lease_owner is None and job.retry_at is not None
        assert last["payload"]["data"]["reason"] == "transient"
        # The relay would deliver this event no earlier; a claim before then finds nothing.
        assert run_stage(job_id, "queued", settings, store, worker_db_url) == "not_claimed"
        _end_backoff(db_url, job_id)
    assert outcomes == ["released", "released", "failed"]
    assert [round(d) for d in delays] == [10, 20]
    job = store.get(job_id)
    assert job.stage == "failed" and job.failed_stage == "queued"
    assert job.attempts == 3 and job.error_code == "service_unavailable"
    assert "kept failing" in job.error_message and "retry" in job.error_message


def test_a_shutdown_release_does_not_count_and_is_due_at_once(
    db_url: str,
    store: JobStore,
) -> None:
    """Guards pitfall 9: Ctrl-C or SIGTERM is not the stage's fault. However often a worker is
    stopped, the attempt is given back and the next worker is invited immediately."""
    job_id = _queued_job(db_url)
    for n in range(7):
        assert store.claim(job_id, "queued", f"w{n}") is not None
        assert store.release(job_id, f"w{n}", "shutdown", max_attempts=3) == "released"
    job = store.get(job_id)
    assert job.stage == "queued" and job.attempts == 0 and job.retry_at is None
    last = events_for(db_url, job_id)[-1]
    assert last["payload"]["data"]["reason"] == "released"
    assert last["next_attempt_at"] <= last["created_at"]


def test_the_sweeper_and_a_transient_release_share_one_attempt_count(
    db_url: str,
    worker_db_url: str,
    store: JobStore,
) -> None:
    """Guards pitfall 9: a worker that died (lease lapsed, found by the sweeper) and a
    dependency that failed count against the same MAX_ATTEMPTS, through one SQL policy."""
    job_id = _queued_job(db_url)
    settings = Settings(max_attempts=2, lease_seconds=60)
    assert store.claim(job_id, "queued", "dies", lease_seconds=0) is not None
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "update public.import_jobs set lease_expires_at = now() - interval '1 s' where id = %s",
            (job_id,),
        )
    assert [a.action for a in run_sweep(worker_db_url, settings)] == ["reemitted"]
    assert store.claim(job_id, "queued", "flaky") is not None
    assert store.release(job_id, "flaky", "transient", max_attempts=2, backoff_s=1) == "failed"
    assert store.get(job_id).error_code == "service_unavailable"


def test_the_sweeper_leaves_a_job_in_backoff_alone_then_announces_it(
    db_url: str,
    worker_db_url: str,
    store: JobStore,
) -> None:
    """Guards pitfall 1 (work vanishes): where events are posted at commit (pg_net) the
    re-announcement arrives during the backoff and finds nothing to claim; the sweeper
    announces the job again once the backoff (and the usual grace) has passed."""
    job_id = _queued_job(db_url)
    assert store.claim(job_id, "queued", "flaky") is not None
    assert store.release(job_id, "flaky", "transient", max_attempts=5, backoff_s=600) == "retrying"
    settings = Settings(lease_seconds=60)
    assert run_sweep(worker_db_url, settings, stale_after=0) == []
    _end_backoff(db_url, job_id)
    assert [a.action for a in run_sweep(worker_db_url, settings, stale_after=0)] == ["reemitted"]
    assert store.claim(job_id, "queued", "next") is not None


def test_an_unknown_release_reason_is_refused(db_url: str, store: JobStore) -> None:
    """A release must say why: anything but shutdown/transient is a bug, not a retry."""
    job_id = _queued_job(db_url)
    assert store.claim(job_id, "queued", "w") is not None
    with pytest.raises(psycopg.errors.RaiseException):
        store.release(job_id, "w", "bored")  # type: ignore[arg-type]
