"""Fan-out of one import's embedding (issue 15, item 2), on the real database, against the
loopback stand-in of the embeddings API: the stage's holder and a second "instance"
(``run_next_batch`` in another thread, with its own connections) embed one import."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest

from pipeline.embedding import clear_embedder_cache
from pipeline.jobstore import JobStore
from pipeline.settings import Settings
from pipeline.stages import run_stage
from pipeline.stages.embedding_batches import Batch, release, run_next_batch
from tests import export_factory as ef
from tests.dbutil import create_user, upload_object
from tests.fake_openai import FakeOpenAI, fake_openai, fake_vector
from tests.fake_storage import fake_storage, worker_settings

DIMS = 32
MODEL = "text-embedding-3-small"
BATCH = 40  # chunks per fan-out batch: ~245 chunks make 7 batches
ROOT = Path(__file__).resolve().parents[2]

# Instance 2 as a process of its own: settings on stdin, then batches until killed.
INSTANCE = """
import sys, time
from pipeline.settings import Settings
from pipeline.stages.embedding_batches import Batch, release, run_next_batch
settings = Settings.model_validate_json(sys.stdin.readline())
while True:
    if not run_next_batch(settings, sys.argv[1], "instance-2-process"):
        time.sleep(0.02)
"""


@pytest.fixture
def parsed(db_url: str, worker_db_url: str, tmp_path: Path) -> Iterator[tuple[uuid.UUID, int]]:
    """A job of about 245 chunks, parsed, its soulprint shown, waiting in `embedding`."""
    user = create_user(db_url)
    folder = tmp_path / "bucket" / "imports" / str(user)
    folder.mkdir(parents=True)
    export = ef.write_zip(
        folder / "export.zip", ef.make_export(120, 4, era="mixed", assistant_chars=700)
    )
    upload_object(db_url, user, name="export.zip", size=export.stat().st_size)
    store = JobStore(worker_db_url)
    job_id = store.latest_for_user(user).id
    with fake_storage(tmp_path / "bucket") as storage:
        settings = worker_settings(tmp_path / "worker", storage.url)
        for stage in ("queued", "downloading", "parsing", "generating_soulprint"):
            assert run_stage(job_id, stage, settings, store, worker_db_url) == "done"
    chunks = store.get(job_id).chunks
    assert chunks > 5 * BATCH
    yield job_id, chunks
    store.close()


def settings_for(srv: FakeOpenAI, tmp_path: Path, **extra: Any) -> Settings:
    clear_embedder_cache()
    base: dict[str, Any] = dict(
        data_dir=tmp_path / "worker",
        embedding_provider="openai",
        openai_base_url=srv.base_url,
        openai_api_key=srv.api_key,
        embedding_model=MODEL,
        embedding_dimensions=DIMS,
        embedding_concurrency=1,
        embedding_batch_chunks=BATCH,
    )
    return Settings(**(base | extra))


def assert_own_vectors(db_url: str, job_id: uuid.UUID, chunks: int) -> None:
    """Every chunk of the job has exactly the vector of its own text."""
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "select content, embedding::text from memory_chunks where job_id = %s", (job_id,)
        ).fetchall()
    assert len(rows) == chunks
    for content, vector in rows:
        assert vector is not None
        got = np.asarray(vector.strip("[]").split(","), dtype=np.float32)
        assert np.allclose(got, fake_vector(content.strip() or " ", DIMS), atol=1e-5)


def embedded_texts(srv: FakeOpenAI) -> Counter[str]:
    """Texts the stand-in embedded (answered 200), each with how often."""
    return Counter(t for r in srv.embedding_requests for t in r.body["input"])


def completions(db_url: str, job_id: uuid.UUID) -> int:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "select count(*) from import_events where job_id = %s and type = 'import.complete'",
            (job_id,),
        ).fetchone()[0]


def batch_rows(db_url: str, job_id: uuid.UUID) -> list[dict[str, Any]]:
    with psycopg.connect(db_url, row_factory=psycopg.rows.dict_row) as conn:
        return conn.execute(
            "select * from import_embedding_batches where job_id = %s order by batch_no",
            (job_id,),
        ).fetchall()


class Instance2:
    """A second instance: its pull loop, reduced to calling run_next_batch until stopped."""

    def __init__(self, settings: Settings, conninfo: str) -> None:
        self.settings, self.conninfo = settings, conninfo
        self.owner = f"instance-2:{uuid.uuid4().hex[:8]}"
        self.batches = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        while not self.stop.is_set():
            if run_next_batch(self.settings, self.conninfo, self.owner):
                self.batches += 1
            else:
                time.sleep(0.02)

    def __enter__(self) -> Instance2:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def test_two_instances_embed_one_import_each_chunk_once(parsed, db_url, worker_db_url, tmp_path):
    """Guards pitfall 9 (a job marked done with wrong or missing data) and pitfall 7 (no
    duplicate work under concurrency): the stage's holder and a second instance share one
    import's batches; every chunk gets the vector of its own text, each text is embedded
    exactly once, both instances did batches, and the import completes exactly once."""
    job_id, chunks = parsed
    with fake_openai(latency_s=0.05) as srv:
        settings = settings_for(srv, tmp_path)
        store = JobStore(worker_db_url)
        with Instance2(settings, worker_db_url) as other:
            assert run_stage(job_id, "embedding", settings, store, worker_db_url) == "done"
        job = store.get(job_id)
        store.close()
    assert str(job.stage) == "complete" and job.embedded_chunks == chunks
    assert_own_vectors(db_url, job_id, chunks)
    texts = embedded_texts(srv)
    assert sum(texts.values()) == chunks and max(texts.values()) == 1
    assert other.batches >= 1  # the second instance did its share
    assert completions(db_url, job_id) == 1
    assert batch_rows(db_url, job_id) == []  # a completed import keeps no plan


def test_a_holder_and_an_instance_killed_mid_batch_lose_nothing(
    parsed, db_url, worker_db_url, tmp_path
):
    """Guards pitfall 9 (user stuck when a process dies) and pitfall 6 (no work repeated):
    the first holder plans and dies; an instance claims a batch, writes half of it and dies
    (no more renewals). Once their leases lapse, the next holder continues the same plan,
    reclaims the dead instance's batch, keeps what it wrote and embeds only the rest; the
    dead instance's late write is refused."""
    job_id, chunks = parsed
    with fake_openai() as srv:
        settings = settings_for(srv, tmp_path, lease_seconds=1)
        store = JobStore(worker_db_url)
        with psycopg.connect(worker_db_url, autocommit=True) as w:
            assert store.claim(job_id, "embedding", "holder-1", 1) is not None
            planned = w.execute(
                "select public.plan_import_embedding(%s, 'holder-1', %s, %s, %s)",
                (job_id, BATCH, MODEL, DIMS),
            ).fetchone()[0]
            assert planned == len(batch_rows(db_url, job_id)) > 5
            batch = w.execute(
                "select * from public.claim_import_embedding_batch('dead', 1, %s, %s, 5)",
                (MODEL, DIMS),
            ).fetchone()
            _, batch_no, first, last = batch
            rows = w.execute(
                "select id, content from memory_chunks where job_id = %s and id between %s"
                " and %s order by id",
                (job_id, first, last),
            ).fetchall()
            half = rows[: len(rows) // 2]

            def write(owner: str, part: list[tuple[Any, str]]) -> str:
                vecs = [
                    "[" + ",".join(map(str, fake_vector(c.strip() or " ", DIMS))) + "]"
                    for _, c in part
                ]
                return w.execute(
                    "select public.write_import_embedding_batch(%s, %s, %s, %s, %s, 1)",
                    (job_id, batch_no, owner, [i for i, _ in part], vecs),
                ).fetchone()[0]

            assert write("dead", half) == "ok"
            time.sleep(1.5)  # both leases lapse: the holder and the instance are gone

            assert run_stage(job_id, "embedding", settings, store, worker_db_url) == "done"
            assert write("dead", rows[len(rows) // 2 :]) == "not_yours"
        job = store.get(job_id)
        store.close()
    assert str(job.stage) == "complete" and job.embedded_chunks == chunks
    assert_own_vectors(db_url, job_id, chunks)
    texts = embedded_texts(srv)
    assert sum(texts.values()) == chunks - len(half) and max(texts.values()) == 1
    assert not any(texts[c.strip() or " "] for _, c in half)


def test_cancel_mid_fanout_stops_every_instance_and_removes_the_data(
    parsed, db_url, worker_db_url, tmp_path
):
    """Guards pitfall 5/9 (the person's cancel is obeyed, nothing half-done remains): while
    two instances hold batches, the person cancels; both stop at their next write or
    renewal, the holder cancels the job, its chunks and plan are gone, and no request
    follows."""
    job_id, _ = parsed
    with fake_openai(latency_s=0.4) as srv:
        settings = settings_for(srv, tmp_path)
        store = JobStore(worker_db_url)
        outcome: list[str] = []
        with Instance2(settings, worker_db_url) as other:
            holder = threading.Thread(
                target=lambda: outcome.append(
                    run_stage(job_id, "embedding", settings, store, worker_db_url)
                )
            )
            holder.start()
            deadline = time.monotonic() + 30
            held: set[str] = set()
            while time.monotonic() < deadline and len(held) < 2:  # both instances at work
                held = {b["lease_owner"] for b in batch_rows(db_url, job_id) if b["lease_owner"]}
                time.sleep(0.02)
            assert other.owner in held
            assert JobStore(db_url).request_cancel(job_id) == "embedding"  # held: at next check
            holder.join(timeout=30)
            time.sleep(0.5)
            requests_after = len(srv.embedding_requests)
            time.sleep(0.5)
        assert outcome == ["cancelled"]
        assert len(srv.embedding_requests) == requests_after  # nobody still embedding
        job = store.get(job_id)
        store.close()
    assert str(job.stage) == "cancelled"
    with psycopg.connect(db_url) as conn:
        left = conn.execute(
            "select count(*) from memory_chunks where job_id = %s", (job_id,)
        ).fetchone()[0]
    assert left == 0 and batch_rows(db_url, job_id) == []


def test_a_batch_refused_on_another_instance_fails_the_job_readably_and_retry_finishes(
    parsed, db_url, worker_db_url, tmp_path
):
    """Guards pitfall 9 (a failing stage must say so and be retryable) and pitfall 6 (no work
    repeated): the embeddings service refuses the second instance's batch (400); the holder
    fails the job with the service's readable sentence, what was written stays, and a retry
    continues the same plan, embedding each chunk still without a vector once."""
    job_id, chunks = parsed
    with fake_openai() as srv:
        settings = settings_for(srv, tmp_path, lease_seconds=1)
        store = JobStore(worker_db_url)
        # A holder plans, then is gone (its lease lapses); the other instance takes a batch.
        assert store.claim(job_id, "embedding", "holder-1", 1) is not None
        with psycopg.connect(worker_db_url, autocommit=True) as w:
            w.execute(
                "select public.plan_import_embedding(%s, 'holder-1', %s, %s, %s)",
                (job_id, BATCH, MODEL, DIMS),
            )
        # Two refusals: the batch as asked (base64), then the same batch asked for floats
        # (what the embedder does when a server refuses base64).
        srv.fail_next(2, status=400)
        assert run_next_batch(settings, worker_db_url, "instance-2")
        # The refused batch, and the next one it had claimed to embed in the same pipeline.
        failed = [b for b in batch_rows(db_url, job_id) if b["error_code"]]
        assert failed and all("refused" in b["error_message"] for b in failed)
        time.sleep(1.2)

        assert run_stage(job_id, "embedding", settings, store, worker_db_url) == "failed"
        job = store.get(job_id)
        assert str(job.stage) == "failed" and job.error_message == failed[0]["error_message"]
        assert "Traceback" not in job.error_message and srv.api_key not in job.error_message
        # The holder stopped at its first look at the plan; what it wrote is kept.
        with psycopg.connect(db_url) as conn:
            written = conn.execute(
                "select count(*) from memory_chunks where job_id = %s and embedding is not null",
                (job_id,),
            ).fetchone()[0]
        assert job.embedded_chunks == written < chunks - sum(b["chunks"] for b in failed)

        with psycopg.connect(db_url) as conn:
            kept = {
                r[0].strip() or " "
                for r in conn.execute(
                    "select content from memory_chunks where job_id = %s and embedding is not null",
                    (job_id,),
                )
            }
        first_run = len(srv.embedding_requests)

        assert store.retry(job_id) == "embedding"
        assert run_stage(job_id, "embedding", settings, store, worker_db_url) == "done"
        job = store.get(job_id)
        store.close()
    assert str(job.stage) == "complete" and job.embedded_chunks == chunks
    assert_own_vectors(db_url, job_id, chunks)
    retried = Counter(t for r in srv.embedding_requests[first_run:] for t in r.body["input"])
    assert not kept & set(retried)  # what was written is kept, not embedded again
    assert sum(retried.values()) == chunks - len(kept) and max(retried.values()) == 1


def test_the_plan_is_idempotent_and_only_covers_chunks_without_a_vector(
    parsed, db_url, worker_db_url
):
    """Guards pitfall 7 (a repeated delivery changes nothing): planning twice keeps one plan;
    chunks that already have a vector are in no batch's count; only the job's lease holder
    may plan."""
    job_id, chunks = parsed
    store = JobStore(worker_db_url)
    assert store.claim(job_id, "embedding", "holder", 60) is not None
    with psycopg.connect(db_url, autocommit=True) as admin:
        admin.execute(
            "update memory_chunks set embedding = array_fill(0.1, array[%s])::real[],"
            " embedding_model = %s, embedding_dim = %s where job_id = %s and id in"
            " (select id from memory_chunks where job_id = %s order by id limit 10)",
            (DIMS, MODEL, DIMS, job_id, job_id),
        )
    with psycopg.connect(worker_db_url, autocommit=True) as w:
        plan = "select public.plan_import_embedding(%s, %s, %s, %s, %s)"
        first = w.execute(plan, (job_id, "holder", BATCH, MODEL, DIMS)).fetchone()[0]
        again = w.execute(plan, (job_id, "holder", BATCH, MODEL, DIMS)).fetchone()[0]
        assert w.execute(plan, (job_id, "someone", BATCH, MODEL, DIMS)).fetchone()[0] is None
    rows = batch_rows(db_url, job_id)
    assert first == again == len(rows) == -(-(chunks - 10) // BATCH)
    assert sum(b["chunks"] for b in rows) == chunks - 10
    store.close()


def test_the_batches_table_is_the_workers_alone(db_url):
    """Guards pitfall 3 (a credential good for more than its job) and issue 15's quiet
    Realtime: the plan is not published, RLS is on with no policy, and neither people nor the
    worker hold any privilege on the table (the worker acts through functions only)."""
    with psycopg.connect(db_url) as conn:
        published = conn.execute(
            "select count(*) from pg_publication_tables where pubname = 'supabase_realtime'"
            " and tablename = 'import_embedding_batches'"
        ).fetchone()[0]
        rls, policies = conn.execute(
            "select c.relrowsecurity, (select count(*) from pg_policy p where p.polrelid = c.oid)"
            " from pg_class c where c.oid = 'public.import_embedding_batches'::regclass"
        ).fetchone()
    assert published == 0 and rls and policies == 0


def test_an_instance_killed_with_sigkill_mid_batch_loses_nothing(
    parsed, db_url, worker_db_url, tmp_path
):
    """Guards pitfall 9 (user stuck when a process dies) and pitfall 6 (no work repeated):
    a second instance, a real process, is killed with SIGKILL while it holds a batch it has
    partly written; once its lease lapses the stage's holder takes the batch over, keeps
    what was written and completes the import with every chunk's own vector."""
    job_id, chunks = parsed
    with fake_openai(latency_s=0.3) as srv:
        settings = settings_for(srv, tmp_path, lease_seconds=1)
        store = JobStore(worker_db_url)
        # A holder plans and is gone; the process takes the first batch. Batches of 200
        # chunks take three writes of one request (96 chunks) each.
        assert store.claim(job_id, "embedding", "holder-1", 1) is not None
        with psycopg.connect(worker_db_url, autocommit=True) as w:
            w.execute(
                "select public.plan_import_embedding(%s, 'holder-1', 200, %s, %s)",
                (job_id, MODEL, DIMS),
            )
        proc = subprocess.Popen(
            [sys.executable, "-c", INSTANCE, worker_db_url],
            stdin=subprocess.PIPE,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            text=True,
        )
        try:
            proc.stdin.write(settings.model_dump_json() + "\n")
            proc.stdin.close()
            deadline = time.monotonic() + 60
            held: list[dict[str, Any]] = []
            while time.monotonic() < deadline:
                held = [
                    b
                    for b in batch_rows(db_url, job_id)
                    if b["lease_owner"] == "instance-2-process"
                    and b["embedded"] > 0
                    and b["done_at"] is None
                ]
                if held:
                    break
                time.sleep(0.01)
            assert held, "the instance never wrote part of a batch"
        finally:
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        requests_before = len(srv.embedding_requests)
        with psycopg.connect(db_url) as conn:
            kept = {
                r[0].strip() or " "
                for r in conn.execute(
                    "select content from memory_chunks where job_id = %s and embedding is not null",
                    (job_id,),
                )
            }
        assert kept
        time.sleep(1.2)  # its lease lapses

        assert run_stage(job_id, "embedding", settings, store, worker_db_url) == "done"
        job = store.get(job_id)
        store.close()
    assert str(job.stage) == "complete" and job.embedded_chunks == chunks
    assert_own_vectors(db_url, job_id, chunks)
    assert completions(db_url, job_id) == 1
    redone = {t for r in srv.embedding_requests[requests_before:] for t in r.body["input"]}
    assert not kept & redone  # what the killed instance wrote was not embedded again


def test_planning_wakes_idle_instances(parsed, worker_db_url):
    """Guards pitfall 1 (work nobody picks up): planning a job's batches notifies channel
    import_events (empty payload, at commit), which idle instances LISTEN on."""
    job_id, _ = parsed
    store = JobStore(worker_db_url)
    assert store.claim(job_id, "embedding", "holder", 60) is not None
    with (
        psycopg.connect(worker_db_url, autocommit=True) as listener,
        psycopg.connect(worker_db_url, autocommit=True) as w,
    ):
        listener.execute("listen import_events")
        w.execute(
            "select public.plan_import_embedding(%s, 'holder', %s, %s, %s)",
            (job_id, BATCH, MODEL, DIMS),
        )
        got = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
    store.close()
    assert got == [""]


def test_five_shutdowns_holding_one_batch_do_not_exhaust_it(
    parsed, db_url, worker_db_url, tmp_path
):
    """Guards pitfall 9 (a user stuck by our own restarts; review of issue 15, F4): five
    instances in turn claim the same batch and are stopped (SIGTERM: the batch is given
    back as a shutdown). The claims are not counted against the batch, so it is not
    exhausted, and the import then completes with every chunk embedded."""
    job_id, chunks = parsed
    store = JobStore(worker_db_url)
    assert store.claim(job_id, "embedding", "holder", 60) is not None
    with psycopg.connect(worker_db_url, autocommit=True) as w:
        w.execute(
            "select public.plan_import_embedding(%s, 'holder', %s, %s, %s)",
            (job_id, BATCH, MODEL, DIMS),
        )
        for i in range(5):
            row = w.execute(
                "select * from public.claim_import_embedding_batch(%s, 60, %s, %s, 5, %s)",
                (f"inst-{i}", MODEL, DIMS, job_id),
            ).fetchone()
            assert row[1] == 1  # the same batch every time
            release(worker_db_url, Batch(*row), f"inst-{i}", "shutdown")
        state = w.execute(
            "select exhausted, error_code from public.import_embedding_plan_state(%s, 5)",
            (job_id,),
        ).fetchone()
    assert state == (0, None)
    assert batch_rows(db_url, job_id)[0]["attempts"] == 0
    store.release(job_id, "holder")
    with fake_openai() as srv:
        settings = settings_for(srv, tmp_path)
        assert run_stage(job_id, "embedding", settings, store, worker_db_url) == "done"
    job = store.get(job_id)
    store.close()
    assert str(job.stage) == "complete" and job.embedded_chunks == chunks


def test_a_transient_release_counts_and_backs_off(parsed, db_url, worker_db_url):
    """Guards pitfall 9 (retry storms; review of issue 15, F4): a batch given back after a
    transient failure keeps its attempt and cannot be claimed again until its backoff has
    run, so one failing write does not burn every attempt in seconds; another batch of the
    same import stays claimable meanwhile."""
    job_id, _ = parsed
    store = JobStore(worker_db_url)
    assert store.claim(job_id, "embedding", "holder", 60) is not None
    claim = "select * from public.claim_import_embedding_batch(%s, 60, %s, %s, 5, %s)"
    with psycopg.connect(worker_db_url, autocommit=True) as w:
        w.execute(
            "select public.plan_import_embedding(%s, 'holder', %s, %s, %s)",
            (job_id, BATCH, MODEL, DIMS),
        )
        first = w.execute(claim, ("inst-a", MODEL, DIMS, job_id)).fetchone()
        release(worker_db_url, Batch(*first), "inst-a", "transient", 30.0)
        again = w.execute(claim, ("inst-b", MODEL, DIMS, job_id)).fetchone()
    store.close()
    assert again is not None and again[1] != first[1]  # not the batch that just failed
    row = batch_rows(db_url, job_id)[first[1] - 1]
    assert row["attempts"] == 1 and row["lease_owner"] is None
    assert row["retry_at"] is not None and row["retry_at"] > row["created_at"]


def claim_batch(
    w: psycopg.Connection, job_id: uuid.UUID, owner: str, model: str = MODEL, dim: int = DIMS
) -> tuple[int, list[uuid.UUID]] | None:
    """Claim the job's next open batch as ``owner``: (batch_no, its chunk ids in id order)."""
    row = w.execute(
        "select * from public.claim_import_embedding_batch(%s, 60, %s, %s, 5, %s)",
        (owner, model, dim, job_id),
    ).fetchone()
    if row is None:
        return None
    _, batch_no, first, last = row
    ids = w.execute(
        "select id from memory_chunks where job_id = %s and id between %s and %s order by id",
        (job_id, first, last),
    )
    return batch_no, [r[0] for r in ids]


def constant_vector(dim: int) -> str:
    return "[" + ",".join(["0.1"] * dim) + "]"


def completion_refused(w: psycopg.Connection, job_id: uuid.UUID, counters: str, match: str) -> None:
    """The holder ("holder") reports ``counters`` (JSON) and asks to complete: refused."""
    w.execute(
        "select public.report_import_progress(%s, %s, %s::jsonb, null, 60)",
        (job_id, "holder", counters),
    )
    with pytest.raises(psycopg.errors.ObjectNotInPrerequisiteState, match=match):
        w.execute("select public.complete_import_job(%s, %s)", (job_id, "holder"))


def test_a_job_whose_chunks_lack_vectors_never_completes_whatever_its_counter_says(
    parsed, db_url, worker_db_url
):
    """Guards pitfall 9 (a job marked done with missing data): a holder that reports every
    chunk embedded (a bug, an older instance in a rolling deploy) while the plan's batches
    are still open cannot complete the import; the database counts the vectors itself."""
    job_id, chunks = parsed
    store = JobStore(worker_db_url)
    assert store.claim(job_id, "embedding", "holder", 60) is not None
    with psycopg.connect(worker_db_url, autocommit=True) as w:
        plan = "select public.plan_import_embedding(%s, %s, %s, %s, %s)"
        assert w.execute(plan, (job_id, "holder", BATCH, MODEL, DIMS)).fetchone()[0] > 1
        completion_refused(w, job_id, f'{{"embedded_chunks": {chunks}}}', "no vector")
    assert store.get(job_id).stage == "embedding"
    store.close()


def test_a_write_with_fewer_vectors_than_chunks_is_refused_and_counts_nothing(
    parsed, db_url, worker_db_url
):
    """Guards pitfall 9 (progress that says more than was done): vectors missing from a
    batch write (an embedder that dropped rows) are refused, not counted as written, so
    the person's embedded count never runs ahead of the vectors or past the total."""
    job_id, _ = parsed
    store = JobStore(worker_db_url)
    assert store.claim(job_id, "embedding", "holder", 60) is not None
    with psycopg.connect(worker_db_url, autocommit=True) as w:
        plan = "select public.plan_import_embedding(%s, %s, %s, %s, %s)"
        w.execute(plan, (job_id, "holder", BATCH, MODEL, DIMS))
        claimed = claim_batch(w, job_id, "instance")
    assert claimed is not None
    batch_no, ids = claimed
    one = constant_vector(DIMS)
    write = "select public.write_import_embedding_batch(%s, %s, %s, %s, %s, 60)"
    for vecs in ([], [one] * (len(ids) - 1), [one] * (len(ids) - 1) + [None]):
        with (
            psycopg.connect(worker_db_url, autocommit=True) as w,
            pytest.raises(psycopg.errors.InvalidParameterValue),
        ):
            w.execute(write, (job_id, batch_no, "instance", ids, vecs))
    with psycopg.connect(db_url) as admin:
        embedded, written = admin.execute(
            "select b.embedded, (select count(*) from memory_chunks c where c.job_id = b.job_id"
            " and c.embedding is not null) from import_embedding_batches b"
            " where b.job_id = %s and b.batch_no = %s",
            (job_id, batch_no),
        ).fetchone()
    assert embedded == written == 0
    store.close()


def test_a_retry_with_another_model_embeds_every_chunk_again_and_never_completes_mixed(
    parsed, db_url, worker_db_url
):
    """Guards pitfall 9 (a job marked done with data search cannot use), review 15c H1: an
    import embedded in part at 32-d and retried after the settings changed to 16-d used to
    plan only the chunks without a vector and complete with vectors of two sizes; search,
    which reads the job's size, found a part of the memory. Now the new plan clears the
    other model's vectors, and the database refuses to complete while any remain."""
    job_id, chunks = parsed
    store = JobStore(worker_db_url)
    assert store.claim(job_id, "embedding", "holder", 60) is not None
    plan = "select public.plan_import_embedding(%s, %s, %s, %s, %s)"
    write = "select public.write_import_embedding_batch(%s, %s, %s, %s, %s, 60)"
    with psycopg.connect(worker_db_url, autocommit=True) as w:
        w.execute(plan, (job_id, "holder", BATCH, MODEL, DIMS))
        claimed = claim_batch(w, job_id, "holder")
        assert claimed is not None
        batch_no, ids = claimed
        one = constant_vector(DIMS)
        assert w.execute(write, (job_id, batch_no, "holder", ids, [one] * len(ids))).fetchone()
        # The settings changed: 16-d vectors of another model.
        opened = w.execute(plan, (job_id, "holder", BATCH, "other-model", 16)).fetchone()[0]
    with psycopg.connect(db_url, autocommit=True) as admin:
        kept = admin.execute(
            "select count(*) from memory_chunks where job_id = %s and embedding is not null",
            (job_id,),
        ).fetchone()[0]
        planned = admin.execute(
            "select sum(chunks) from import_embedding_batches where job_id = %s"
            " and done_at is null and embedding_dim = 16",
            (job_id,),
        ).fetchone()[0]
        assert kept == 0 and planned == chunks and opened == -(-chunks // BATCH)
        # And were a 32-d vector left among 16-d ones, the import could not complete.
        admin.execute(
            "update memory_chunks set embedding = array_fill(0.1, array[16])::real[],"
            " embedding_model = 'other-model', embedding_dim = 16 where job_id = %s",
            (job_id,),
        )
        admin.execute(
            "update memory_chunks set embedding = array_fill(0.1, array[32])::real[],"
            " embedding_dim = 32 where job_id = %s and id = %s",
            (job_id, ids[0]),
        )
    with psycopg.connect(worker_db_url, autocommit=True) as w:
        counters = f'{{"embedded_chunks": {chunks}, "embedding_dim": 16}}'
        completion_refused(w, job_id, counters, "another size")
    with psycopg.connect(db_url, autocommit=True) as admin:  # a vector of no recorded size
        admin.execute(
            "update memory_chunks set embedding = array_fill(0.1, array[3])::real[],"
            " embedding_dim = null where job_id = %s and id = %s",
            (job_id, ids[0]),
        )
    with psycopg.connect(worker_db_url, autocommit=True) as w:
        completion_refused(w, job_id, counters, "another size")
    assert store.get(job_id).stage == "embedding"
    store.close()


def test_a_retry_at_another_size_shows_true_progress_and_completes_with_one_model(
    parsed, db_url, worker_db_url, tmp_path
):
    """Guards pitfall 9 (progress that says more than was done), review 15d I2: the stage
    counted the job's vectors before its plan cleared the other model's, so a retry at
    another size showed e.g. 832 of 416 chunks embedded (the first attempt had embedded
    them all at 32-d). Now every count the person sees stays within the total, and the
    import completes with the new model's vectors only."""
    job_id, chunks = parsed
    store = JobStore(worker_db_url)
    assert store.claim(job_id, "embedding", "first", 60) is not None
    with psycopg.connect(worker_db_url, autocommit=True) as w:
        plan = "select public.plan_import_embedding(%s, %s, %s, %s, %s)"
        w.execute(plan, (job_id, "first", BATCH, "old-model", 32))
        old = constant_vector(32)
        while claimed := claim_batch(w, job_id, "first", "old-model", 32):
            batch_no, ids = claimed
            w.execute(
                "select public.write_import_embedding_batch(%s, %s, %s, %s, %s, 60)",
                (job_id, batch_no, "first", ids, [old] * len(ids)),
            )
    assert store.release(job_id, "first")
    with psycopg.connect(db_url, autocommit=True) as admin:  # every count the app is shown
        admin.execute("create table test_shown_counts (n bigint)")
        admin.execute(
            "create function test_record_count() returns trigger language plpgsql as"
            " $$ begin insert into public.test_shown_counts values (new.embedded_chunks);"
            " return new; end $$"
        )
        admin.execute(
            "create trigger test_record_count after update on import_jobs for each row"
            " execute function test_record_count()"
        )
    try:
        with fake_openai(latency_s=0.3) as srv:  # slow enough for counts shown on the way
            settings = settings_for(srv, tmp_path, embedding_dimensions=16)
            assert run_stage(job_id, "embedding", settings, store, worker_db_url) == "done"
        with psycopg.connect(db_url) as admin:
            shown = [r[0] for r in admin.execute("select n from test_shown_counts")]
            dims = admin.execute(
                "select array_agg(distinct embedding_dim) from memory_chunks where job_id = %s",
                (job_id,),
            ).fetchone()[0]
    finally:
        with psycopg.connect(db_url, autocommit=True) as admin:
            admin.execute("drop trigger test_record_count on import_jobs")
            admin.execute("drop function test_record_count()")
            admin.execute("drop table test_shown_counts")
        store.close()
    assert shown and max(shown) <= chunks and shown[-1] == chunks
    assert dims == [16] and store_stage(worker_db_url, job_id) == "complete"


def store_stage(worker_db_url: str, job_id: uuid.UUID) -> str:
    with JobStore(worker_db_url) as s:
        return str(s.get(job_id).stage)


def test_a_retry_refused_before_embedding_keeps_the_count_the_person_saw(
    parsed, db_url, worker_db_url, tmp_path
):
    """Guards pitfall 9 (a failing stage must say what it kept), review 15e F1: a retry that
    fails before its embedder exists (settings MiniLM cannot serve) used to publish "0 of
    N" embedded, as if the vectors written by the first attempt were gone; they are kept,
    and the count says so."""
    job_id, _ = parsed
    store = JobStore(worker_db_url)
    with fake_openai(fail_after=3, fail_first=100, fail_status=400) as srv:
        assert run_stage(job_id, "embedding", settings_for(srv, tmp_path), store, worker_db_url)
    with psycopg.connect(db_url) as admin:
        kept = admin.execute(
            "select count(*) from memory_chunks where job_id = %s and embedding is not null",
            (job_id,),
        ).fetchone()[0]
    assert kept > 0 and store.get(job_id).embedded_chunks == kept
    assert store.retry(job_id) == "embedding"
    clear_embedder_cache()
    unservable = Settings(
        data_dir=tmp_path / "worker", embedding_provider="minilm", embedding_dimensions=512
    )
    assert run_stage(job_id, "embedding", unservable, store, worker_db_url) == "failed"
    assert store.get(job_id).embedded_chunks == kept
    store.close()
