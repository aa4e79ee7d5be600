"""Embedding stage benchmark: embed-while-writing against embed-then-write, same run, same job.

One parsed job in a real database (the embedded one, or DATABASE_URL); the embedding stage
runs over all its chunks once per mode and provider, in the order A B A B, vectors reset
in between. Providers:
  minilm          the offline default, on this machine's CPU;
  openai (fake)   the loopback stand-in of the embeddings API with --api-latency seconds per
                  request (a real API is that far away), 1536-d so the HNSW index is kept up;
                  one request in flight, then EMBEDDING_CONCURRENCY=4 (the default).
Prints seconds per mode (the better of two), chunks/s, the ratio overlap / sequential and
peak RSS.

    python bench/embed_stage.py [--conversations 150] [--api-latency 0.2]
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from pipeline.embedded import stop_embedded, worker_url  # noqa: E402
from pipeline.embedding import clear_embedder_cache  # noqa: E402
from pipeline.jobstore import JobStore  # noqa: E402
from pipeline.local import LocalRuntime, admin_url_for  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.stages import run_stage  # noqa: E402
from pipeline.stages.context import StageContext  # noqa: E402
from pipeline.stages.embedding import _embed_all  # noqa: E402
from tests import export_factory as ef  # noqa: E402
from tests.fake_openai import fake_openai  # noqa: E402

OWNER = "bench-embed-stage"


def parsed_job(settings: Settings, admin: str, worker: str, n_conversations: int) -> uuid.UUID:
    """Upload a synthetic export as the app would and run it up to `embedding`."""
    export = ef.write_zip(
        settings.data_dir / "export.zip",
        ef.make_export(n_conversations, 4, era="mixed", assistant_chars=700),
    )
    runtime = LocalRuntime(settings)
    runtime.admin_url = admin  # upload only: no receiver or relay, stages are run here
    user = uuid.uuid4()
    runtime.ensure_user(user)
    job_id = runtime.upload(export, user)
    store = JobStore(worker)
    for stage in ("queued", "downloading", "parsing", "generating_soulprint"):
        assert run_stage(job_id, stage, settings, store, worker) == "done", stage
    store.close()
    return job_id


def embed_once(
    settings: Settings, admin: str, worker: str, job_id: uuid.UUID, overlap: bool
) -> float:
    with psycopg.connect(admin, autocommit=True) as conn:
        # The embedding plan goes with the vectors (the stage plans again).
        conn.execute("delete from import_embedding_batches where job_id = %s", (job_id,))
        conn.execute(
            "update memory_chunks set embedding = null, embedding_model = null, "
            "embedding_dim = null where job_id = %s",
            (job_id,),
        )
    store = JobStore(worker)
    job = store.claim(job_id, "embedding", OWNER, 600)
    assert job is not None
    ctx = StageContext(job=job, store=store, settings=settings, conninfo=worker, owner=OWNER)
    start = time.perf_counter()
    _embed_all(ctx, overlap=overlap)
    wall = time.perf_counter() - start
    store.release(job_id, OWNER)
    store.close()
    return wall


def compare(
    label: str, settings: Settings, admin: str, worker: str, job_id: uuid.UUID, chunks: int
) -> tuple[float, float]:
    clear_embedder_cache()
    embed_once(settings, admin, worker, job_id, overlap=False)  # warm-up: weights, caches
    times: dict[bool, list[float]] = {False: [], True: []}
    for overlap in (False, True, False, True):
        times[overlap].append(embed_once(settings, admin, worker, job_id, overlap))
    seq, ovl = min(times[False]), min(times[True])
    print(
        f"{label:<34} sequential {seq:7.2f} s ({chunks / seq:6.1f} chunks/s)   "
        f"overlapped {ovl:7.2f} s ({chunks / ovl:6.1f} chunks/s)   ratio {ovl / seq:.2f}"
    )
    return seq, ovl


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conversations", type=int, default=150)
    ap.add_argument("--api-latency", type=float, default=0.2)
    args = ap.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="soulprint-bench-embed-"))
    settings = Settings(data_dir=data_dir, database_url=os.environ.get("DATABASE_URL"))
    admin = admin_url_for(settings)
    worker = worker_url(admin)
    try:
        job_id = parsed_job(settings, admin, worker, args.conversations)
        with psycopg.connect(admin) as conn:
            chunks = conn.execute(
                "select count(*) from memory_chunks where job_id = %s", (job_id,)
            ).fetchone()[0]
        print(f"{chunks} chunks of ~1000 characters")
        compare("minilm (this CPU)", settings, admin, worker, job_id, chunks)
        with fake_openai(latency_s=args.api_latency) as srv:
            ms = f"{args.api_latency * 1000:.0f} ms"
            results = {}
            for concurrency in (1, 4):
                remote = settings.model_copy(
                    update=dict(
                        embedding_provider="openai",
                        openai_base_url=srv.base_url,
                        openai_api_key=srv.api_key,
                        embedding_model="text-embedding-3-small",
                        embedding_concurrency=concurrency,
                    )
                )
                results[concurrency] = compare(
                    f"openai fake {ms}, {concurrency} in flight",
                    remote,
                    admin,
                    worker,
                    job_id,
                    chunks,
                )
        one_at_a_time, now = results[1][0], results[4][1]
        print(
            f"openai: 4 requests in flight and overlapped vs one request at a time and "
            f"sequential: ratio {now / one_at_a_time:.2f}"
        )
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS {peak:,.0f} MB (this process; PostgreSQL runs apart)")
    finally:
        if not settings.database_url:
            stop_embedded(data_dir)


if __name__ == "__main__":
    main()
