"""The lease keeper on the real database: a live stage keeps its job, a hung one lets go."""

from __future__ import annotations

import time

from pipeline.jobstore import JobStore
from pipeline.stages.lease import LeaseKeeper
from tests.delivery_helpers import upload_job, wait_for


def test_a_stage_making_progress_keeps_its_job(db_url, worker_db_url):
    """Guards pitfall 7 (duplicates): a slow but living stage is never taken over, however
    short its lease, because the keeper renews it."""
    job_id, _ = upload_job(db_url)
    store = JobStore(worker_db_url)
    assert store.claim(job_id, "queued", "alive", 2) is not None
    with LeaseKeeper(
        store, job_id, "alive", 2, progressed=time.monotonic, stall_seconds=1.5
    ) as keeper:
        time.sleep(4)  # twice the lease: only renewals keep it
        assert store.claim(job_id, "queued", "rival", 30) is None
        assert not keeper.stalled
    store.close()


def test_a_hung_stage_lets_its_lease_lapse_for_another_worker(db_url, worker_db_url):
    """Guards pitfall 9 (a job stuck forever): a stage hung on a dead connection shows no
    progress; after the stall limit its lease is no longer renewed, so the job can be
    claimed by another worker (the sweeper re-announces it) instead of staying stuck."""
    job_id, _ = upload_job(db_url)
    store = JobStore(worker_db_url)
    assert store.claim(job_id, "queued", "hung", 1) is not None
    last_sign_of_life = time.monotonic()
    with LeaseKeeper(
        store, job_id, "hung", 1, progressed=lambda: last_sign_of_life, stall_seconds=1.5
    ) as keeper:
        wait_for(lambda: keeper.stalled, timeout=10)
        wait_for(lambda: store.claim(job_id, "queued", "rescuer", 30) is not None, timeout=10)
        assert store.get(job_id).lease_owner == "rescuer"
    store.close()
