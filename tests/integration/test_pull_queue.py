"""The pull queue's timings and the one lease mechanism, on the real database."""

from __future__ import annotations

import time
from datetime import datetime

import psycopg
import pytest

from pipeline.commands.status import stage_duration
from pipeline.errors import LeaseLost
from pipeline.jobstore import JobStore
from pipeline.settings import Settings
from pipeline.stages.context import StageContext
from pipeline.stages.lease import LeaseKeeper
from tests.delivery_helpers import upload_job, wait_for


def test_waiting_for_a_worker_is_not_counted_as_the_stage_s_time(db_url, worker_db_url):
    """Guards pitfall 5 (progress people can trust) and issue 15 ("timings lie under
    load"): a job that waited 1.5 s for a free worker shows that wait as waited_s, and its
    stage time starts at the first claim; a second claim of the same stage changes
    neither."""
    job_id, _ = upload_job(db_url)
    time.sleep(1.5)  # no free worker
    with JobStore(worker_db_url) as store:
        job = store.claim_next("w1", ["queued"])
        assert job is not None and job.id == job_id
        timing = job.stage_timings["queued"]
        assert 1.4 <= timing["waited_s"] < 10
        entered = datetime.fromisoformat(store.get(job_id).stage_changed_at.isoformat())
        started = datetime.fromisoformat(timing["started_at"])
        assert (started - entered).total_seconds() >= 1.4

        store.release(job_id, "w1")  # shutdown: another worker takes it on
        again = store.claim_next("w2", ["queued"])
        assert again is not None and again.stage_timings["queued"] == timing

        time.sleep(0.2)
        assert store.advance(job_id, "w2", "queued") == "downloading"
        done = store.get(job_id).stage_timings["queued"]
    # What `status` prints: the stage's own time, and the wait beside it.
    shown = stage_duration("queued", done, active=False)
    assert shown.startswith("0.") and "waited 1." in shown


def test_a_dead_holder_s_time_is_waiting_not_the_stage_s_time(db_url, worker_db_url):
    """Guards pitfall 5 (progress people can trust; review of issue 15, F5): a worker claims
    the job with a 1 s lease and dies. The worker that takes over the lapsed lease 2.5 s
    later records the time since the dead holder's last renewal as waited_s, and the stage's
    own time starts after it, so `status` does not show the crash as parsing time."""
    job_id, _ = upload_job(db_url)
    claim = "select (public.claim_import_job(%s, 'queued', %s, 1)).stage_timings"
    with psycopg.connect(worker_db_url, autocommit=True) as conn:
        first = conn.execute(claim, (job_id, "dead")).fetchone()[0]["queued"]
        time.sleep(2.5)  # the lease (1 s) lapses; nobody renews it
        taken = conn.execute(claim, (job_id, "alive")).fetchone()[0]["queued"]
    assert taken["waited_s"] >= first["waited_s"] + 2.3
    moved = datetime.fromisoformat(taken["started_at"]) - datetime.fromisoformat(
        first["started_at"]
    )
    assert moved.total_seconds() >= 2.3
    with JobStore(worker_db_url) as store:
        assert store.advance(job_id, "alive", "queued") == "downloading"
        done = store.get(job_id).stage_timings["queued"]
    shown = stage_duration("queued", done, active=False)
    assert shown.startswith("0.") and "waited 2." in shown


def test_claim_next_leaves_a_job_that_died_every_attempt_to_the_sweeper(db_url, worker_db_url):
    """Guards pitfall 9 (a job stuck forever, or retried forever): a lapsed lease is taken
    over only below MAX_ATTEMPTS; at the limit the sweeper fails it readably."""
    job_id, _ = upload_job(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("select public.claim_import_job(%s, 'queued', 'dead', 0)", (job_id,))
        conn.execute("update import_jobs set attempts = 3 where id = %s", (job_id,))
    with JobStore(worker_db_url) as store:
        assert store.claim_next("w", ["queued"], max_attempts=3) is None
        assert store.sweep(60, 3) == [(job_id, "failed")]


@pytest.fixture
def claimed(db_url, worker_db_url, tmp_path):
    job_id, _ = upload_job(db_url)
    store = JobStore(worker_db_url, progress_interval_s=3600)
    job = store.claim(job_id, "queued", "me", 1)
    assert job is not None
    settings = Settings(data_dir=tmp_path, lease_seconds=1)
    ctx = StageContext(job=job, store=store, settings=settings, conninfo=worker_db_url, owner="me")
    yield ctx
    store.close()


def test_a_stage_whose_lease_was_taken_stops_at_its_next_batch(claimed, db_url):
    """Guards pitfall 7 (duplicates) and issue 10 (LeaseKeeper.lost set but never read):
    once another worker holds the job, the keeper notices at its next renewal and the
    stage stops at its next report, even one the progress throttle would not write."""
    ctx = claimed
    with LeaseKeeper(ctx.store, ctx.job_id, "me", 1) as ctx.lease:
        ctx.report(force=True)  # written: still ours
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(
                "update import_jobs set lease_owner = 'rival' where id = %s", (ctx.job_id,)
            )
        wait_for(lambda: ctx.lease.lost, timeout=5)
        with pytest.raises(LeaseLost):
            ctx.report()  # throttled: no write, but the keeper's word stops it


def test_only_the_keeper_renews_the_lease(claimed, db_url):
    """Guards issue 10 (three mechanisms renewed one lease): progress reports and batch
    commits leave lease_expires_at alone; the LeaseKeeper alone keeps it alive."""
    ctx = claimed
    before = ctx.store.get(ctx.job_id).lease_expires_at
    ctx.counters["bytes_done"] = 5
    ctx.report(force=True)
    with ctx.connect() as conn:
        ctx.commit_batch(conn, {"offset": 5})
    job = ctx.store.get(ctx.job_id)
    assert job.bytes_done == 5 and job.lease_expires_at == before
    with LeaseKeeper(ctx.store, ctx.job_id, "me", 1):
        wait_for(lambda: ctx.store.get(ctx.job_id).lease_expires_at > before, timeout=5)
