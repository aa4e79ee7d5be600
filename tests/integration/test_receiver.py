"""The webhook receiver over real HTTP on loopback, real signatures, real PostgreSQL."""

from __future__ import annotations

import base64
import json
import secrets
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import psycopg
import pytest

from handlers.app import create_app
from handlers.pool import WorkSource
from handlers.server import ServerHandle, serve_in_thread
from pipeline import lifecycle
from pipeline.events import StageEvent
from pipeline.jobstore import JobStore
from pipeline.settings import Settings
from pipeline.stages import import_work
from tests.delivery_helpers import StepRunner, event_body, signed, upload_job, wait_for


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


SECRET = new_secret()


@pytest.fixture
def start_receiver(worker_db_url: str) -> Iterator[Callable[..., ServerHandle]]:
    """Start receivers on loopback; all are stopped (lifespan shutdown) at teardown."""
    handles: list[ServerHandle] = []

    def start(
        runner: Callable[[StageEvent], None] | None = None,
        conninfo: str | None = None,
        sources: Sequence[WorkSource] = (),
        **overrides: object,
    ) -> ServerHandle:
        settings = Settings(**{"webhook_secret": SECRET, "stage_pool_size": 2, **overrides})
        if isinstance(runner, StepRunner):
            sources = [runner.pull, *sources]
        app = create_app(
            settings,
            conninfo=conninfo or worker_db_url,
            sources=sources,
            on_event=runner,
            shutdown_grace_s=10,
        )
        handle = serve_in_thread(app)
        handles.append(handle)
        return handle

    lifecycle.reset()
    yield start
    for handle in handles:
        handle.stop()
    lifecycle.reset()


def post(handle: ServerHandle, body: str | bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(handle.url + "/webhooks/supabase", content=body, headers=headers)


def some_event(stage: str = "downloading") -> str:
    return event_body(uuid.uuid4(), uuid.uuid4(), stage)


def receipts(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        return conn.execute("select count(*) from webhook_receipts").fetchone()[0]


def test_unsigned_forged_and_wrong_secret_are_refused(start_receiver, db_url):
    """Guards the "no auth on the service" row (Security Mistakes): only signed events count."""
    calls: list[StageEvent] = []
    rx = start_receiver(runner=calls.append)
    body = some_event()

    missing = post(rx, body, {"content-type": "application/json"})
    assert missing.status_code == 401
    assert "missing" in missing.json()["error"]

    forged = signed(SECRET, body)
    forged["webhook-signature"] = "v1," + base64.b64encode(b"x" * 32).decode()
    assert post(rx, body, forged).status_code == 401

    assert post(rx, body, signed(new_secret(), body)).status_code == 401

    # A valid signature over a different body (tampered in transit).
    headers = signed(SECRET, body)
    assert post(rx, body.replace("downloading", "parsing"), headers).status_code == 401

    garbled = signed(SECRET, body)
    garbled["webhook-signature"] = "not-a-signature"
    assert post(rx, body, garbled).status_code == 401

    assert calls == [] and receipts(db_url) == 0


@pytest.mark.parametrize("skew_s, reason", [(-6 * 60, "too old"), (6 * 60, "too new")])
def test_stale_and_future_timestamps_are_refused(start_receiver, skew_s, reason):
    """Guards the "no auth on the service" row: a captured request cannot be replayed later."""
    rx = start_receiver()
    body = some_event()
    resp = post(rx, body, signed(SECRET, body, skew_s=skew_s))
    assert resp.status_code == 401
    assert reason in resp.json()["error"]
    # Inside the 5-minute tolerance it is fine.
    assert post(rx, body, signed(SECRET, body, skew_s=skew_s / 2)).status_code in (200, 202)


def test_previous_secret_is_accepted_during_rotation(start_receiver, db_url):
    """Guards the "no auth on the service" row: rotating the secret drops no event."""
    old, new = new_secret(), new_secret()
    rx = start_receiver(webhook_secret=new, webhook_secret_previous=old)
    job_id, user_id = upload_job(db_url)
    for secret in (old, new):
        body = event_body(job_id, user_id, "queued")
        assert post(rx, body, signed(secret, body)).status_code == 202
    body = some_event()
    assert post(rx, body, signed(new_secret(), body)).status_code == 401


def test_oversized_body_is_refused_without_reading_it(start_receiver):
    """Guards "No file size validation" (Security Mistakes): a huge body is cut off at once."""
    rx = start_receiver(max_body_bytes=1024)
    # Declare 50 MiB, send a few bytes: the answer comes without the rest ever being sent.
    parts = urlsplit(rx.url)
    with socket.create_connection((parts.hostname, parts.port)) as sock:
        sock.sendall(
            b"POST /webhooks/supabase HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 52428800\r\n\r\n{"type":'
        )
        reply = sock.recv(4096).decode()
    assert reply.startswith("HTTP/1.1 413")

    # Chunked, no Content-Length: refused once the limit is crossed.
    def chunks() -> Iterator[bytes]:
        for _ in range(64):
            yield b"x" * 512

    resp = httpx.post(rx.url + "/webhooks/supabase", content=chunks())
    assert resp.status_code == 413


def test_malformed_payload_is_a_400(start_receiver):
    """Guards pitfall 9 (status never written): a bad event is refused loudly, not dropped."""
    rx = start_receiver()
    for body in ("{not json", json.dumps({"type": "import.parsing", "data": {"job_id": "x"}})):
        resp = post(rx, body, signed(SECRET, body))
        assert resp.status_code == 400, body


def test_unknown_type_and_terminal_stage_are_acknowledged_and_ignored(start_receiver):
    """Guards pitfall 1 (fire-and-forget): the sender gets a clear 2xx and stops retrying."""
    calls: list[StageEvent] = []
    rx = start_receiver(runner=calls.append)
    other = json.dumps(
        {
            "type": "billing.paid",
            "data": {"job_id": str(uuid.uuid4()), "user_id": str(uuid.uuid4()), "stage": "x"},
        }
    )
    resp = post(rx, other, signed(SECRET, other))
    assert resp.status_code == 200 and resp.json()["status"] == "ignored"
    done = some_event("complete")
    resp = post(rx, done, signed(SECRET, done))
    assert resp.status_code == 200 and resp.json()["status"] == "ignored"
    assert calls == []


def test_same_webhook_id_is_handled_once(start_receiver, db_url):
    """Guards pitfall 1 (fire-and-forget): at-least-once delivery, exactly-once effect."""
    calls: list[StageEvent] = []
    done = threading.Event()
    rx = start_receiver(runner=lambda e: (calls.append(e), done.set()))
    job_id, user_id = upload_job(db_url)
    body = event_body(job_id, user_id, "queued")
    headers = signed(SECRET, body)
    first = post(rx, body, headers)
    assert first.status_code == 202
    done.wait(10)
    again = [post(rx, body, headers) for _ in range(2)]
    assert [r.status_code for r in again] == [200, 200]
    assert {r.json()["status"] for r in again} == {"duplicate"}
    assert len(calls) == 1


def queued_only(worker_db_url: str, **overrides: object) -> tuple[WorkSource, JobStore]:
    """The real import work source, limited to the `queued` stage (which only advances):
    jobs stop in `downloading`, where the test looks for them."""
    settings = Settings(**overrides)  # type: ignore[arg-type]
    store = JobStore(worker_db_url)
    return import_work(settings, store, worker_db_url, stages=["queued"]), store


def test_a_busy_receiver_takes_every_event_and_runs_them_all(start_receiver, db_url, worker_db_url):
    """Guards pitfall 2 (overload) and issue 15 (backpressure burnt the relay's retries):
    a receiver with one stage thread given 5 events at once answers 202 to every one (no
    503, no retry needed) and its pool runs all 5 jobs. No LISTEN and an hour-long poll:
    the events alone woke it."""
    source, store = queued_only(worker_db_url)
    rx = start_receiver(
        sources=[source], stage_pool_size=1, listen_for_work=False, work_poll_seconds=3600
    )
    jobs = [upload_job(db_url) for _ in range(5)]
    bodies = [event_body(job_id, user_id, "queued") for job_id, user_id in jobs]
    with ThreadPoolExecutor(5) as ex:
        codes = list(ex.map(lambda b: post(rx, b, signed(SECRET, b)).status_code, bodies))
    assert codes == [202] * 5
    wait_for(lambda: all(store.get(job_id).stage == "downloading" for job_id, _ in jobs))
    assert receipts(db_url) == 5
    store.close()


def test_two_instances_never_run_the_same_job_twice(start_receiver, db_url, worker_db_url):
    """Guards pitfall 7 (duplicates): two instances (distinct lease owners, two pools) pull
    from one database at once; SKIP LOCKED and the conditional claim give each job to
    exactly one of them."""
    store = JobStore(worker_db_url)
    runs: list[tuple[str, uuid.UUID]] = []
    lock = threading.Lock()

    def instance(name: str) -> WorkSource:
        def pull() -> bool:
            owner = f"{name}-{uuid.uuid4().hex[:6]}"
            job = store.claim_next(owner, ["queued"])
            if job is None:
                return False
            with lock:
                runs.append((name, job.id))
            time.sleep(0.02)  # a little work, so the pools overlap
            assert store.advance(job.id, owner, "queued") == "downloading"
            return True

        return pull

    jobs = [upload_job(db_url)[0] for _ in range(12)]
    for name in ("a", "b"):
        start_receiver(sources=[instance(name)], stage_pool_size=3, work_poll_seconds=0.2)
    wait_for(lambda: all(store.get(job_id).stage == "downloading" for job_id in jobs))
    ran = [job for _, job in runs if job in jobs]
    assert sorted(ran) == sorted(jobs)  # each once, none twice
    assert {name for name, _ in runs} == {"a", "b"}  # both instances took work
    store.close()


def test_a_lapsed_lease_is_taken_up_by_the_poll_without_an_event(
    start_receiver, db_url, worker_db_url
):
    """Guards pitfall 9 (a job stuck forever) and issue 15 (a dead instance's jobs waited
    for the sweeper): the worker holding the job died (its lease lapses); a live
    instance's poll claims it with no new event and no sweep."""
    job_id, _ = upload_job(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("select public.claim_import_job(%s, 'queued', 'dead-worker', 1)", (job_id,))
        events_before = conn.execute(
            "select count(*) from import_events where job_id = %s", (job_id,)
        ).fetchone()[0]
    source, store = queued_only(worker_db_url)
    start_receiver(sources=[source], listen_for_work=False, work_poll_seconds=0.3)
    wait_for(lambda: store.get(job_id).stage == "downloading", timeout=15)
    with psycopg.connect(db_url) as conn:
        reasons = [
            r[0]
            for r in conn.execute(
                "select payload->'data'->>'reason' from import_events where job_id = %s"
                " order by created_at",
                (job_id,),
            )
        ]
    # Only the stage change it made: nobody re-announced the queued stage.
    assert len(reasons) == events_before + 1 and "sweep" not in reasons
    store.close()


def test_a_notify_wakes_the_pool_without_a_webhook(start_receiver, db_url, worker_db_url):
    """Guards pitfall 1 (fire-and-forget): with no webhook delivered at all (relay down,
    pg_net dropped it), the NOTIFY the stage change sends wakes the instance's pool at once
    (the poll here is an hour)."""
    source, store = queued_only(worker_db_url)
    start_receiver(sources=[source], listen_for_work=True, work_poll_seconds=3600)
    time.sleep(0.5)  # the doorbell connects and LISTENs
    job_id, _ = upload_job(db_url)
    wait_for(lambda: store.get(job_id).stage == "downloading", timeout=10)
    store.close()


def rx_idle(rx: ServerHandle) -> bool:
    return httpx.get(rx.url + "/healthz").json()["stages"]["busy"] == 0


def test_healthz_reports_database_reachability(start_receiver):
    """Guards pitfall 2 (cold start): Render routes traffic only once the database answers."""
    ok = httpx.get(start_receiver().url + "/healthz")
    assert ok.status_code == 200 and ok.json()["database"] == "reachable"
    down = start_receiver(conninfo="postgresql://nobody@127.0.0.1:1/none?connect_timeout=1")
    resp = httpx.get(down.url + "/healthz", timeout=30)
    assert resp.status_code == 503 and resp.json()["database"] == "unreachable"


def test_shutdown_lets_the_running_stage_release_its_lease(start_receiver, db_url, worker_db_url):
    """Guards pitfall 9 (status never written): on SIGTERM the stage stops cleanly and the
    job is handed back (lease released, a 'released' event appended), never left stuck;
    events arriving meanwhile get 503 (the only 503 left: issue 15)."""
    store = JobStore(worker_db_url)
    saw_shutdown = threading.Event()

    def doomed() -> bool:
        job = store.claim_next("doomed-worker", ["queued"])
        if job is None:
            return False
        # A stage checks the flag between batches; here it has nothing else to do.
        wait_for(lifecycle.shutting_down, timeout=30)
        saw_shutdown.set()
        store.release(job.id, "doomed-worker")
        return True

    rx = start_receiver(sources=[doomed], listen_for_work=False, work_poll_seconds=3600)
    job_id, user_id = upload_job(db_url)
    body = event_body(job_id, user_id, "queued")
    assert post(rx, body, signed(SECRET, body)).status_code == 202
    wait_for(lambda: store.get(job_id).lease_owner == "doomed-worker")

    lifecycle.request_shutdown()  # what the lifespan does first on SIGTERM
    other = some_event("queued")
    refused = post(rx, other, signed(SECRET, other))
    assert refused.status_code == 503 and refused.json()["error"] == "shutting down"

    rx.stop()  # what uvicorn does on SIGTERM: stop serving, then lifespan shutdown
    assert saw_shutdown.is_set()
    job = store.get(job_id)
    assert job.stage == "queued" and job.lease_owner is None
    with psycopg.connect(db_url) as conn:
        reasons = [
            r[0]
            for r in conn.execute(
                "select payload->'data'->>'reason' from import_events where job_id = %s"
                " order by created_at",
                (job_id,),
            )
        ]
    assert reasons[-1] == "released"
    store.close()
