"""Fan-out benchmark: one large import's embedding on 1 instance vs 2 (issue 15, item 2).

One parsed job in a real database (the embedded one, or DATABASE_URL). Instance 1 is the
embedding stage's holder, in this process (plan, work batches, wait for the others');
instance 2 is another process calling ``run_next_batch`` in a loop, as a pull loop would,
with its own connections, started and warmed up before the clock starts. Runs in the order
1 2 1 2 (--rounds pairs), vectors and plan reset in between; prints the better time of
each, chunks/s and the ratio 2 instances / 1.

Embedders:
  openai stand-in  the loopback stand-in of the embeddings API (tests/fake_openai.py) in a
                   process of its own, --api-latency seconds per request (default 0.2),
                   --concurrency requests in flight per instance (default 4), --dims-d
                   vectors: 256 by default, which no HNSW index covers, because here the
                   database shares the 2 cores with both instances and at 1536-d its HNSW
                   inserts, not the API, set the pace (in production the database is
                   another machine); --dims 1536 measures that case too;
  minilm           the offline model on this machine's CPU (skip with --skip-minilm): two
                   instances on the same 2 cores cannot halve it, and the bench says so.

    python bench/fanout.py [--conversations 1500] [--minilm-conversations 200] [--rounds 2]
                           [--dims 256] [--batch-chunks N] [--skip-minilm] [--skip-openai]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402

from pipeline.embedded import stop_embedded, worker_url  # noqa: E402
from pipeline.embedding import clear_embedder_cache, get_embedder  # noqa: E402
from pipeline.jobstore import JobStore  # noqa: E402
from pipeline.local import LocalRuntime, admin_url_for  # noqa: E402
from pipeline.settings import Settings  # noqa: E402
from pipeline.stages import run_stage  # noqa: E402
from pipeline.stages.context import StageContext  # noqa: E402
from pipeline.stages.embedding import _embed_all  # noqa: E402
from tests import export_factory as ef  # noqa: E402

OWNER = "bench-fanout-holder"


# -- the other processes -------------------------------------------------------------------


def serve_standin(latency: float) -> None:
    """Child process: the embeddings stand-in; prints its URL and key, serves until killed."""
    from tests.fake_openai import fake_openai

    with fake_openai(latency_s=latency) as srv:
        print(json.dumps({"base_url": srv.base_url, "api_key": srv.api_key}), flush=True)
        while True:
            time.sleep(3600)


def run_instance(settings_json: str, conninfo: str) -> None:
    """Child process: instance 2. Warms its embedder, says 'ready', then pulls batches."""
    from pipeline.stages.context import worker_identity
    from pipeline.stages.embedding_batches import run_next_batch

    settings = Settings.model_validate_json(settings_json)
    get_embedder(settings).embed(["warm up"])
    print("ready", flush=True)
    owner = worker_identity()
    batches = 0
    while True:
        if run_next_batch(settings, conninfo, owner):
            batches += 1
            print(f"batch {batches}", flush=True)
        else:
            time.sleep(0.02)


def start_instance(settings: Settings, conninfo: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, __file__, "--instance", conninfo],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdin is not None and proc.stdout is not None
    proc.stdin.write(settings.model_dump_json() + "\n")
    proc.stdin.close()
    line = proc.stdout.readline().strip()
    assert line == "ready", f"instance 2 did not start: {line!r}"
    return proc


def stop(proc: subprocess.Popen[str]) -> int:
    """Kill a child; for instance 2, the number of batches it reported."""
    proc.kill()
    proc.stdin = None  # closed already (instance 2 reads its settings, then nothing)
    out = proc.communicate()[0] or ""
    return sum(1 for line in out.splitlines() if line.startswith("batch"))


# -- the job -------------------------------------------------------------------------------


def parsed_job(settings: Settings, admin: str, worker: str, n_conversations: int) -> uuid.UUID:
    """Upload a synthetic export as the app would and run it up to `embedding`."""
    export = ef.write_zip(
        settings.data_dir / f"export-{n_conversations}.zip",
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
    settings: Settings, admin: str, worker: str, job_id: uuid.UUID, instances: int
) -> tuple[float, int]:
    """Seconds for the holder to see every chunk embedded, and instance 2's batch count."""
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("delete from import_embedding_batches where job_id = %s", (job_id,))
        conn.execute(
            "update memory_chunks set embedding = null, embedding_model = null, "
            "embedding_dim = null where job_id = %s",
            (job_id,),
        )
        conn.execute("vacuum memory_chunks")  # each run starts from the same table state
    other = start_instance(settings, worker) if instances == 2 else None
    store = JobStore(worker)
    job = store.claim(job_id, "embedding", OWNER, 600)
    assert job is not None
    ctx = StageContext(job=job, store=store, settings=settings, conninfo=worker, owner=OWNER)
    try:
        start = time.perf_counter()
        _embed_all(ctx)
        wall = time.perf_counter() - start
    finally:
        batches = stop(other) if other is not None else 0
        store.release(job_id, OWNER)
        store.close()
    return wall, batches


def compare(
    label: str,
    settings: Settings,
    admin: str,
    worker: str,
    job_id: uuid.UUID,
    chunks: int,
    rounds: int,
) -> float:
    clear_embedder_cache()
    get_embedder(settings).embed(["warm up"])
    times: dict[int, list[float]] = {1: [], 2: []}
    for instances in (1, 2) * rounds:
        wall, batches = embed_once(settings, admin, worker, job_id, instances)
        times[instances].append(wall)
        extra = f", instance 2 came back from {batches} pulls with work" if instances == 2 else ""
        print(f"  {label}: {instances} instance(s) {wall:7.2f} s{extra}", flush=True)
    one, two = min(times[1]), min(times[2])
    print(
        f"{label:<40} 1 instance {one:7.2f} s ({chunks / one:6.1f} chunks/s)   "
        f"2 instances {two:7.2f} s ({chunks / two:6.1f} chunks/s)   ratio {two / one:.2f}",
        flush=True,
    )
    return two / one


def count_chunks(admin: str, job_id: uuid.UUID) -> int:
    with psycopg.connect(admin) as conn:
        return conn.execute(
            "select count(*) from memory_chunks where job_id = %s", (job_id,)
        ).fetchone()[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conversations", type=int, default=1500)
    ap.add_argument("--minilm-conversations", type=int, default=200)
    ap.add_argument("--api-latency", type=float, default=0.2)
    ap.add_argument("--dims", type=int, default=256)
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--batch-chunks", type=int, default=None, help="EMBEDDING_BATCH_CHUNKS")
    ap.add_argument("--rounds", type=int, default=2, help="1-2 pairs measured (ABAB...)")
    ap.add_argument("--skip-minilm", action="store_true")
    ap.add_argument("--skip-openai", action="store_true")
    ap.add_argument("--instance", metavar="CONNINFO", help=argparse.SUPPRESS)
    ap.add_argument("--serve-standin", type=float, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.instance:
        run_instance(sys.stdin.readline(), args.instance)
        return
    if args.serve_standin is not None:
        serve_standin(args.serve_standin)
        return

    data_dir = Path(tempfile.mkdtemp(prefix="soulprint-bench-fanout-"))
    base: dict[str, Any] = {"data_dir": data_dir, "database_url": os.environ.get("DATABASE_URL")}
    if args.batch_chunks:
        base["embedding_batch_chunks"] = args.batch_chunks
    settings = Settings(**base)
    admin = admin_url_for(settings)
    worker = worker_url(admin)
    print(f"EMBEDDING_BATCH_CHUNKS={settings.embedding_batch_chunks}, cpus={os.cpu_count()}")
    try:
        if not args.skip_openai:
            job_id = parsed_job(settings, admin, worker, args.conversations)
            chunks = count_chunks(admin, job_id)
            print(f"{chunks} chunks of ~1000 characters", flush=True)
            standin = subprocess.Popen(
                [sys.executable, __file__, "--serve-standin", str(args.api_latency)],
                stdout=subprocess.PIPE,
                text=True,
            )
            try:
                assert standin.stdout is not None
                where = json.loads(standin.stdout.readline())
                remote = settings.model_copy(
                    update=dict(
                        embedding_provider="openai",
                        openai_base_url=where["base_url"],
                        openai_api_key=where["api_key"],
                        embedding_model="text-embedding-3-small",
                        embedding_dimensions=args.dims,
                        embedding_concurrency=args.concurrency,
                    )
                )
                label = (
                    f"openai stand-in {args.api_latency * 1000:.0f} ms, {args.dims}-d, "
                    f"{args.concurrency} in flight"
                )
                compare(label, remote, admin, worker, job_id, chunks, args.rounds)
            finally:
                stop(standin)
        if not args.skip_minilm:
            job_id = parsed_job(settings, admin, worker, args.minilm_conversations)
            chunks = count_chunks(admin, job_id)
            # A job MiniLM embeds in seconds here is one default batch: cut it in four, or
            # there is nothing to share.
            local = settings.model_copy(
                update={"embedding_batch_chunks": args.batch_chunks or max(64, chunks // 4)}
            )
            print(
                f"{chunks} chunks for MiniLM, batches of {local.embedding_batch_chunks}",
                flush=True,
            )
            compare("minilm (this CPU)", local, admin, worker, job_id, chunks, args.rounds)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"peak RSS of the holder's process: {rss:.0f} MB")
    finally:
        if not os.environ.get("DATABASE_URL"):
            stop_embedded(data_dir)
        shutil.rmtree(data_dir, ignore_errors=True)  # the exports and the database


if __name__ == "__main__":
    main()
