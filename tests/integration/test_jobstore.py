"""The job store against the real database, as the least-privilege worker role."""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest

from pipeline.jobstore import Job, JobStore
from tests.dbutil import create_user, events_for, jobs_for, upload_object, walk_to


@pytest.fixture
def store(worker_db_url: str) -> JobStore:
    """A job store logged in as import_worker, as the stages use it."""
    with JobStore(worker_db_url) as s:
        yield s


def _queued_job(db_url: str) -> tuple[uuid.UUID, uuid.UUID]:
    user = create_user(db_url)
    upload_object(db_url, user)
    return user, jobs_for(db_url, user)[0]["id"]


def _expire_lease(db_url: str, job_id: uuid.UUID) -> None:
    # Time passing, without waiting for it.
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "update public.import_jobs set lease_expires_at = now() - interval '1 s' where id = %s",
            (job_id,),
        )


def test_two_workers_claiming_one_job_exactly_one_wins(
    db_url: str, store: JobStore, worker_db_url: str
) -> None:
    """Guards pitfall 7 (duplicate imports): a duplicated event reaching two workers at once
    runs the stage once."""
    for _ in range(5):
        _, job_id = _queued_job(db_url)
        other = JobStore(worker_db_url)
        barrier = threading.Barrier(2)

        def claim(
            s: JobStore,
            owner: str,
            job_id: uuid.UUID = job_id,
            barrier: threading.Barrier = barrier,
        ) -> Job | None:
            barrier.wait()
            return s.claim(job_id, "queued", owner, 60)

        with ThreadPoolExecutor(2) as pool:
            results = list(pool.map(claim, (store, other), ("w1", "w2")))
        other.close()
        winners = [r for r in results if r is not None]
        assert len(winners) == 1
        assert winners[0].attempts == 1
        assert store.get(job_id).lease_owner == winners[0].lease_owner


def test_claim_wrong_stage_or_held_lease_is_not_yours(db_url: str, store: JobStore) -> None:
    """Guards pitfall 7 (duplicate imports): a stale event (job already past that stage) or a
    live lease of another worker means: do nothing."""
    _, job_id = _queued_job(db_url)
    assert store.claim(job_id, "parsing", "w1") is None
    job = store.claim(job_id, "queued", "w1")
    assert job is not None and job.stage == "queued" and job.lease_owner == "w1"
    assert store.claim(job_id, "queued", "w2") is None
    # A retried claim by the same owner (reply lost) is still ours.
    assert store.claim(job_id, "queued", "w1") is not None
    assert store.claim(uuid.uuid4(), "queued", "w1") is None


def test_an_expired_lease_can_be_reclaimed(db_url: str, store: JobStore) -> None:
    """Guards pitfall 1 (work that vanishes): a worker that died mid-stage does not hold the
    import forever; after the lease runs out another worker takes over, and the dead one's
    late reports are refused."""
    _, job_id = _queued_job(db_url)
    assert store.claim(job_id, "queued", "dead") is not None
    _expire_lease(db_url, job_id)
    job = store.claim(job_id, "queued", "alive")
    assert job is not None and job.lease_owner == "alive" and job.attempts == 2
    assert store.progress(job_id, "dead", {"bytes_done": 1}, force=True) == "not_yours"
    assert store.advance(job_id, "dead", "queued") is None
    assert store.fail(job_id, "dead", "x", "y") is False
    assert store.advance(job_id, "alive", "queued") == "downloading"


def test_progress_is_absolute_throttled_and_renews_the_lease(
    db_url: str, worker_db_url: str
) -> None:
    """Guards pitfall 5 (no progress): counters land on the job row, about once a second at
    most; a report leaves the lease alone (one renewer, the LeaseKeeper: issue 10)."""
    _, job_id = _queued_job(db_url)
    store = JobStore(worker_db_url, progress_interval_s=3600, lease_seconds=600)
    store.claim(job_id, "queued", "w", 1)
    before = store.get(job_id).lease_expires_at
    assert (
        store.progress(
            job_id, "w", {"bytes_done": 10, "bytes_total": 100, "sha256": "ab", "not_a_counter": 5}
        )
        == "ok"
    )
    after = store.get(job_id)
    assert (after.bytes_done, after.bytes_total, after.sha256) == (10, 100, "ab")
    assert after.lease_expires_at == before

    # Within the interval: not written.
    assert store.progress(job_id, "w", {"bytes_done": 20}) == "ok"
    assert store.get(job_id).bytes_done == 10
    # Forced (end of a batch with a checkpoint): written.
    assert store.progress(job_id, "w", {"bytes_done": 30}, {"offset": 30}, force=True) == "ok"
    job = store.get(job_id)
    assert (job.bytes_done, job.checkpoint) == (30, {"offset": 30})
    store.close()


def test_renew_extends_the_lease_by_the_length_claimed(db_url: str, worker_db_url: str) -> None:
    """Guards pitfall 1 (work that vanishes): a lease claimed short (local mode, quick
    takeover after a crash) stays short when renewed, and a long one stays long."""
    _, job_id = _queued_job(db_url)
    with JobStore(worker_db_url, lease_seconds=60) as store:
        store.claim(job_id, "queued", "w", 3600)
        assert store.renew(job_id, "w") == "ok"
        with psycopg.connect(db_url) as conn:
            left = conn.execute(
                "select lease_expires_at - now() from public.import_jobs where id = %s", (job_id,)
            ).fetchone()[0]
    assert left.total_seconds() > 1800


def test_advance_walks_the_pipeline_and_resets_the_stage_state(
    db_url: str, store: JobStore
) -> None:
    """Guards pitfall 9 (status never written): each advance moves one stage on, conditional
    on the stage and the lease, soulprint before embedding; the soulprint is shown through
    show_soulprint() and the import finished through complete()."""
    _, job_id = _queued_job(db_url)
    order = []
    stage = "queued"
    while stage != "generating_soulprint":
        assert store.claim(job_id, stage, "w") is not None
        store.progress(job_id, "w", {"messages": 7}, {"k": stage}, force=True)
        wrong = "downloading" if stage != "downloading" else "queued"
        assert store.advance(job_id, "w", wrong) is None
        nxt = store.advance(job_id, "w", stage, {"chunks": 3, "embedded_chunks": 3})
        order.append(nxt)
        job = store.get(job_id)
        assert (job.lease_owner, job.attempts, job.checkpoint) == (None, 0, {})
        assert (job.messages, job.chunks) == (7, 3)
        stage = nxt
    assert order == ["downloading", "parsing", "generating_soulprint"]
    store.claim(job_id, stage, "w")
    with pytest.raises(psycopg.errors.RaiseException):
        store.advance(job_id, "w", "generating_soulprint")  # a bug, not a race
    assert (
        store.show_soulprint(job_id, "w", {"traits": ["curious"]}, "You are curious.")
        == "embedding"
    )
    assert store.show_soulprint(job_id, "w", {}, "again") is None  # repeated: no effect
    job = store.get(job_id)
    assert (job.stage, job.lease_owner, job.attempts) == ("embedding", None, 0)
    assert job.soulprint_at is not None
    store.claim(job_id, "embedding", "w")
    with pytest.raises(psycopg.errors.RaiseException):
        store.advance(job_id, "w", "embedding")  # finishing is complete()
    assert store.complete(job_id, "w")
    job = store.get(job_id)
    assert job.stage == "complete" and job.completed_at is not None
    assert not store.complete(job_id, "w")  # repeated delivery: no effect
    assert [e["type"] for e in events_for(db_url, job_id)] == [
        "import.queued",
        "import.downloading",
        "import.parsing",
        "import.generating_soulprint",
        "import.embedding",
        "import.complete",
    ]


def test_cancel_unheld_is_immediate_held_is_honoured_at_next_report(
    db_url: str, store: JobStore, worker_db_url: str
) -> None:
    """Guards pitfall 5 (no progress): a person who cancels sees it take effect: at once when
    no worker holds the import, at the worker's next batch otherwise; partial data goes."""
    _, job_id = _queued_job(db_url)
    assert store.request_cancel(job_id) == "cancelled"
    assert store.get(job_id).stage == "cancelled"
    assert store.request_cancel(job_id) == "cancelled"  # idempotent
    assert store.request_cancel(uuid.uuid4()) is None

    user, job_id = _queued_job(db_url)
    walk_to(db_url, job_id, "parsing")
    store.claim(job_id, "parsing", "w")
    with psycopg.connect(worker_db_url) as conn:
        conn.execute(
            "insert into public.memory_chunks (id, job_id, user_id, conversation_id,"
            " chunk_index, content) values (%s, %s, %s, 'c', 0, 'partial')",
            (uuid.uuid4(), job_id, user),
        )
        conn.commit()
    assert store.request_cancel(job_id) == "parsing"
    assert store.claim(job_id, "parsing", "other") is None
    assert store.progress(job_id, "w", {"conversations": 1}, force=True) == "cancel_requested"
    assert store.finish_cancel(job_id, "w")
    job = store.get(job_id)
    assert job.stage == "cancelled" and job.error_message == "The import was cancelled."
    with psycopg.connect(db_url) as conn:
        assert (
            conn.execute(
                "select count(*) from public.memory_chunks where job_id = %s", (job_id,)
            ).fetchone()[0]
            == 0
        )

    # A pending cancel also wins over advance.
    _, job_id = _queued_job(db_url)
    store.claim(job_id, "queued", "w")
    store.request_cancel(job_id)
    assert store.advance(job_id, "w", "queued") == "cancelled"


def test_fail_then_retry_resumes_the_failed_stage(db_url: str, store: JobStore) -> None:
    """Guards pitfall 9 (status never written): a failure is recorded with a sentence a
    person understands, and a retry resumes where it failed, unless another import started."""
    user, job_id = _queued_job(db_url)
    walk_to(db_url, job_id, "embedding")
    store.claim(job_id, "embedding", "w")
    store.progress(job_id, "w", {"embedded_chunks": 5}, {"after": "x"}, force=True)
    assert store.fail(job_id, "w", "embedder_down", "We could not reach the embedding service.")
    job = store.get(job_id)
    assert (job.stage, job.failed_stage, job.error_code) == ("failed", "embedding", "embedder_down")
    assert job.checkpoint == {"after": "x"}  # kept for the retry

    assert store.retry(job_id) == "embedding"
    job = store.get(job_id)
    assert (job.stage, job.error_code, job.attempts) == ("embedding", None, 0)
    assert events_for(db_url, job_id)[-1]["payload"]["data"]["reason"] == "retry"
    assert store.retry(job_id) is None  # not failed any more

    store.claim(job_id, "embedding", "w")
    store.fail(job_id, "w", "embedder_down", "Again.")
    upload_object(db_url, user, name="newer.zip")
    assert store.retry(job_id) is None  # one active import per person
    assert store.get(job_id).stage == "failed"


def test_release_frees_the_lease_and_invites_another_worker(db_url: str, store: JobStore) -> None:
    """Guards pitfall 1 (work that vanishes): on SIGTERM a worker gives the job back at once
    (a 'released' event) instead of leaving it until the lease expires."""
    _, job_id = _queued_job(db_url)
    store.claim(job_id, "queued", "w")
    assert store.release(job_id, "w")
    assert not store.release(job_id, "w")
    job = store.get(job_id)
    assert (job.lease_owner, job.attempts, job.stage) == (None, 0, "queued")
    last = events_for(db_url, job_id)[-1]
    assert last["type"] == "import.queued" and last["payload"]["data"]["reason"] == "released"
    assert store.claim(job_id, "queued", "w2") is not None


def test_sweep_reemits_stalled_jobs_and_fails_hopeless_ones(db_url: str, store: JobStore) -> None:
    """Guards pitfall 1 (work that vanishes): a job whose worker died is announced again once,
    and after too many attempts fails with a sentence instead of hanging forever."""
    _, stalled = _queued_job(db_url)
    _, hopeless = _queued_job(db_url)
    _, cancelling = _queued_job(db_url)
    _, healthy = _queued_job(db_url)
    store.claim(stalled, "queued", "dead")
    for i in range(3):  # three workers died on it
        _expire_lease(db_url, hopeless)
        store.claim(hopeless, "queued", f"dead{i}")
    store.claim(cancelling, "queued", "dead")
    store.request_cancel(cancelling)
    store.claim(healthy, "queued", "alive")
    for j in (stalled, hopeless, cancelling):
        _expire_lease(db_url, j)

    actions = dict(store.sweep(3600, 3))
    assert actions == {stalled: "reemitted", hopeless: "failed", cancelling: "cancelled"}
    assert events_for(db_url, stalled)[-1]["payload"]["data"]["reason"] == "sweep"
    job = store.get(hopeless)
    assert job.stage == "failed" and "stopped responding 3 times" in job.error_message
    # Once per stale period, not on every pass.
    assert store.sweep(3600, 3) == []
    # A queued job whose event nobody acted on, after stale_after: while another job's
    # live lease shows a worker is busy, it is only waiting for a slot (the pools pull it;
    # 20261201800100_quiet_sweeper.sql); once no worker shows signs of life, it is
    # re-announced (an event can wake a sleeping service).
    assert dict(store.sweep(0, 3)).get(stalled) == "waiting"
    assert store.release(healthy, "alive") == "released"
    assert dict(store.sweep(0, 3)).get(stalled) == "reemitted"


def test_lost_races_never_raise(store: JobStore) -> None:
    """Guards pitfall 1 (work that vanishes): a stage that lost its job gets an answer it can
    act on, never an exception."""
    ghost = uuid.uuid4()
    assert store.claim(ghost, "queued", "w") is None
    assert store.progress(ghost, "w", {}, force=True) == "not_yours"
    assert store.advance(ghost, "w", "parsing") is None
    assert store.fail(ghost, "w", "c", "m") is False
    assert store.release(ghost, "w") is None
    assert store.finish_cancel(ghost, "w") is False
    assert store.show_soulprint(ghost, "w", {}, "t") is None
    assert store.complete(ghost, "w") is False
    assert store.retry(ghost) is None
    assert store.get(ghost) is None
    assert store.latest_for_user(uuid.uuid4()) is None


def test_calls_survive_the_database_dropping_connections(db_url: str, store: JobStore) -> None:
    """Guards pitfall 1 (work that vanishes): a database blip (connections killed, as on a
    Supabase restart or pooler reset) is retried, not surfaced to the stage."""
    user, job_id = _queued_job(db_url)
    assert store.get(job_id) is not None
    for _ in range(3):
        with psycopg.connect(db_url, autocommit=True) as conn:
            killed = conn.execute(
                "select count(*) from (select pg_terminate_backend(pid) from pg_stat_activity"
                " where usename = 'import_worker') t"
            ).fetchone()[0]
        assert killed >= 1
        assert store.claim(job_id, "queued", "w") is not None
    assert store.latest_for_user(user).id == job_id
