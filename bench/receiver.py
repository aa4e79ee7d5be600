"""Receiver throughput and latency on loopback, against a bare Starlette endpoint.

Both servers run in their own process (uvicorn, as `serve` runs it); this process sends
pre-signed events with httpx, first one at a time (latency), then from several threads
(throughput). The receiver does everything it does in production (size check, signature
verification, pydantic parse, receipt + acknowledgement in PostgreSQL, hand-off to the stage
pool) with a no-op stage. Bounded request counts, loopback only.

    python bench/receiver.py [--requests 2000] [--concurrency 8]

Uses DATABASE_URL (a superuser URL; migrated here) or a throwaway embedded PostgreSQL.
"""

from __future__ import annotations

import argparse
import base64
import multiprocessing as mp
import os
import secrets
import socket
import statistics
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx

# Runnable from a checkout without installing (the spawned servers inherit it via PYTHONPATH).
ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
HOOK = "/webhooks/supabase"


def _serve(kind: str, conninfo: str, secret: str, urls: mp.Queue, stop: mp.Event) -> None:
    """Child process: one server until ``stop``."""
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse
    from starlette.routing import Route

    from handlers.server import serve_in_thread

    if kind == "receiver":
        from handlers.app import create_app
        from pipeline.settings import Settings

        # Pool sized for the client's concurrency: a no-op stage is never the bottleneck.
        settings = Settings(webhook_secret=secret, stage_pool_size=64)
        app = create_app(settings, conninfo=conninfo)
    else:

        async def ok(request: Request) -> JSONResponse:
            await request.body()
            return JSONResponse({"status": "ok"})

        app = Starlette(routes=[Route(HOOK, ok, methods=["POST"])])
    handle = serve_in_thread(app)
    urls.put(handle.url)
    stop.wait()
    handle.stop()


def nodelay_transport() -> httpx.HTTPTransport:
    # httpx writes headers and body separately: without TCP_NODELAY, Nagle plus delayed
    # ACKs add ~40 ms to every request and the bench measures the kernel, not the server.
    return httpx.HTTPTransport(socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)])


def peak_rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def signed_requests(n: int) -> list[tuple[bytes, dict[str, str]]]:
    """Distinct events (fresh webhook-ids, so none is a duplicate), signed ahead of time."""
    from tests.delivery_helpers import event_body, signed

    out = []
    for _ in range(n):
        body = event_body(uuid.uuid4(), uuid.uuid4(), "parsing", reason="stage_changed")
        out.append((body.encode(), signed(SECRET, body)))
    return out


@dataclass
class Result:
    name: str
    sequential_rps: float
    p50_ms: float
    p99_ms: float
    concurrent_rps: float
    concurrent_p99_ms: float
    statuses: dict[int, int]
    peak_rss_mib: float


def run_one(kind: str, conninfo: str, requests: int, concurrency: int) -> Result:
    ctx = mp.get_context("spawn")
    urls: mp.Queue = ctx.Queue()
    stop = ctx.Event()
    proc = ctx.Process(target=_serve, args=(kind, conninfo, SECRET, urls, stop), daemon=True)
    proc.start()
    url = urls.get(timeout=60) + HOOK
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    local = threading.local()

    def send(req: tuple[bytes, dict[str, str]]) -> float:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(transport=nodelay_transport(), timeout=30)
        started = time.perf_counter()
        resp = client.post(url, content=req[0], headers=req[1])
        elapsed = time.perf_counter() - started
        with lock:
            statuses[resp.status_code] = statuses.get(resp.status_code, 0) + 1
        return elapsed

    try:
        for req in signed_requests(200):  # warm-up: connections, pools, caches
            send(req)
        statuses.clear()
        batch = signed_requests(requests)
        started = time.perf_counter()
        latencies = [send(req) for req in batch]
        sequential = requests / (time.perf_counter() - started)
        batch = signed_requests(requests)
        with ThreadPoolExecutor(concurrency) as pool:
            started = time.perf_counter()
            loaded = list(pool.map(send, batch))
            concurrent = requests / (time.perf_counter() - started)
        rss = peak_rss_mib(proc.pid)
    finally:
        stop.set()
        proc.join(30)
    q = statistics.quantiles(latencies, n=100)
    under_load = statistics.quantiles(loaded, n=100)[98] * 1000
    return Result(
        kind, sequential, q[49] * 1000, q[98] * 1000, concurrent, under_load, statuses, rss
    )


def database() -> tuple[str, object | None]:
    """Worker URL of a migrated database, and what to clean up afterwards."""
    from pipeline.embedded import ensure_embedded, stop_embedded, worker_url
    from pipeline.migrate import apply_migrations

    admin = os.environ.get("DATABASE_URL")
    if admin:
        apply_migrations(admin)
        return worker_url(admin), None
    tmp = Path(tempfile.mkdtemp(prefix="soulprint-bench-"))
    tmp.chmod(0o755)
    return worker_url(ensure_embedded(tmp)), lambda: stop_embedded(tmp)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()
    conninfo, cleanup = database()
    try:
        results = [
            run_one(k, conninfo, args.requests, args.concurrency) for k in ("receiver", "bare")
        ]
    finally:
        if callable(cleanup):
            cleanup()
    print(f"{args.requests} signed events per phase, loopback, concurrency {args.concurrency}")
    header = ("", "seq ev/s", "p50 ms", "p99 ms", "conc ev/s", "conc p99", "peak RSS")
    print("{:10} {:>9} {:>7} {:>7} {:>10} {:>9} {:>9}  statuses".format(*header))
    for r in results:
        print(
            f"{r.name:10} {r.sequential_rps:9.0f} {r.p50_ms:7.2f} {r.p99_ms:7.2f} "
            f"{r.concurrent_rps:10.0f} {r.concurrent_p99_ms:9.2f} {r.peak_rss_mib:7.1f}Mi  "
            f"{r.statuses}"
        )
    rx, bare = results
    print(
        f"receiver/bare: sequential throughput {rx.sequential_rps / bare.sequential_rps:.2f}x, "
        f"concurrent throughput {rx.concurrent_rps / bare.concurrent_rps:.2f}x, "
        f"p50 {rx.p50_ms / bare.p50_ms:.2f}x, p99 {rx.p99_ms / bare.p99_ms:.2f}x"
    )
    verdict = "PASS" if rx.p99_ms < 20 else "FAIL"
    print(f"receiver p99 {rx.p99_ms:.2f} ms (target < 20 ms with verification): {verdict}")


if __name__ == "__main__":
    main()
