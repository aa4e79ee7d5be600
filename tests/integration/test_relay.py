"""The outbox relay against the real receiver over loopback and the real database."""

from __future__ import annotations

import base64
import random
import secrets
import threading
import uuid
from collections import Counter
from collections.abc import Iterator

import httpx
import psycopg
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from handlers.app import create_app
from handlers.server import ServerHandle, serve_in_thread
from handlers.signature import Verifier
from pipeline import lifecycle
from pipeline.delivery.relay import Relay
from pipeline.settings import Settings
from tests.delivery_helpers import StepRunner, signed, stage_of, upload_job, wait_for

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
HOOK = "/webhooks/supabase"


@pytest.fixture
def pipeline_rx(worker_db_url: str) -> Iterator[tuple[ServerHandle, StepRunner]]:
    """The real receiver with a StepRunner walking jobs through the state machine."""
    lifecycle.reset()
    runner = StepRunner(worker_db_url)
    app = create_app(
        Settings(webhook_secret=SECRET, stage_pool_size=4),
        conninfo=worker_db_url,
        sources=[runner.pull],
        on_event=runner,
    )
    handle = serve_in_thread(app)
    yield handle, runner
    handle.stop()
    runner.close()
    lifecycle.reset()


def snapshot(db_url: str, job_id: uuid.UUID) -> dict[str, object]:
    """What a person (and the next stage) can observe of one import."""
    with psycopg.connect(db_url) as conn:
        stage, conversations, attempts = conn.execute(
            "select stage::text, conversations, attempts from import_jobs where id = %s", (job_id,)
        ).fetchone()
        rows = sorted(
            r[0]
            for r in conn.execute(
                "select conversation_id from import_conversations where job_id = %s", (job_id,)
            )
        )
        types = [
            r[0]
            for r in conn.execute(
                "select type from import_events where job_id = %s order by created_at", (job_id,)
            )
        ]
        soulprint = conn.execute(
            "select soulprint_text from soulprints where job_id = %s", (job_id,)
        ).fetchone()
    return {
        "stage": stage,
        "conversations": conversations,
        "attempts": attempts,
        "rows": rows,
        "events": types,
        "soulprint": soulprint and soulprint[0],
    }


def pending(db_url: str) -> int:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "select count(*) from import_events where relayed_at is null"
        ).fetchone()[0]


def outbox(db_url: str, job_id: uuid.UUID) -> list[tuple[uuid.UUID, str]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "select id, payload::text from import_events where job_id = %s order by created_at",
            (job_id,),
        ).fetchall()


def test_relay_walks_a_job_to_complete_through_listen_notify(pipeline_rx, db_url, worker_db_url):
    """Guards pitfall 1 (fire-and-forget): every stage change reaches the receiver, signed,
    and every attempt is on record."""
    rx, _ = pipeline_rx
    # Polling every 10 minutes: only NOTIFY can make this finish in time.
    relay = Relay(worker_db_url, rx.url + HOOK, SECRET, poll_interval_s=600)
    relay.start()
    try:
        job_id, _ = upload_job(db_url)
        wait_for(lambda: stage_of(db_url, job_id) == "complete" and not pending(db_url))
    finally:
        relay.stop()
    snap = snapshot(db_url, job_id)
    assert snap["rows"] == ["downloading", "embedding", "parsing", "queued"]
    with psycopg.connect(db_url) as conn:
        log = conn.execute(
            "select d.status_code, d.via from event_deliveries d join import_events e"
            " on e.id = d.event_id where e.job_id = %s",
            (job_id,),
        ).fetchall()
        unacked = conn.execute(
            "select count(*) from import_events where job_id = %s"
            " and type <> 'import.complete' and acknowledged_at is null",
            (job_id,),
        ).fetchone()[0]
    assert len(log) == len(snap["events"]) and {s for s, _ in log} <= {200, 202}
    assert {v for _, v in log} == {"relay"} and unacked == 0


def test_triple_and_shuffled_delivery_change_nothing(pipeline_rx, db_url, worker_db_url):
    """Guards pitfall 1 (fire-and-forget) and pitfall 7 (duplicates): at-least-once delivery,
    repeated and out of order, leaves the same data as one clean delivery."""
    rx, runner = pipeline_rx
    relay = Relay(worker_db_url, rx.url + HOOK, SECRET)
    clean_job, _ = upload_job(db_url)
    wait_for(lambda: relay.deliver_pending() == 0 and stage_of(db_url, clean_job) == "complete")
    clean = snapshot(db_url, clean_job)
    relay.stop()

    # Now a noisy sender: every event three times at once, same webhook-id.
    noisy_job, _ = upload_job(db_url)
    sent: set[uuid.UUID] = set()

    def send_new_three_times() -> bool:
        for event_id, body in outbox(db_url, noisy_job):
            if event_id in sent:
                continue
            sent.add(event_id)
            headers = signed(SECRET, body, msg_id=str(event_id))
            threads = [
                threading.Thread(
                    target=httpx.post,
                    args=(rx.url + HOOK,),
                    kwargs={"content": body, "headers": headers},
                )
                for _ in range(3)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        return stage_of(db_url, noisy_job) == "complete"

    calls_before = sum(runner.calls.values())
    wait_for(send_new_three_times)
    stage_events = [b for _, b in outbox(db_url, noisy_job) if "import.complete" not in b]
    assert sum(runner.calls.values()) - calls_before == len(stage_events)  # once each, not 3x

    # Then every one of its events again, shuffled, as fresh deliveries (new webhook-ids,
    # as a sweep or a replay would make): the handlers' conditions make them no-ops.
    events = outbox(db_url, noisy_job)
    random.Random(7).shuffle(events)
    for _, body in events:
        assert httpx.post(
            rx.url + HOOK, content=body, headers=signed(SECRET, body)
        ).status_code in (200, 202)
    wait_for(lambda: httpx.get(rx.url + "/healthz").json()["stages"]["busy"] == 0)

    noisy = snapshot(db_url, noisy_job)
    assert noisy == clean


class FailTwice:
    """ASGI wrapper: the first two POSTs get a 500 (a cold or crashing receiver)."""

    def __init__(self, app: ASGIApp, failures: int = 2) -> None:
        self.app, self.left, self.seen = app, failures, 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            self.seen += 1
            if self.left > 0:
                self.left -= 1
                await JSONResponse({"error": "boom"}, status_code=500)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def test_relay_retries_through_a_failing_receiver(db_url, worker_db_url):
    """Guards pitfall 9 (status never written): a failed delivery is retried with backoff and
    every attempt (status, latency, error) is recorded."""
    lifecycle.reset()
    runner = StepRunner(worker_db_url)
    flaky = FailTwice(
        create_app(
            Settings(webhook_secret=SECRET),
            conninfo=worker_db_url,
            sources=[runner.pull],
            on_event=runner,
        )
    )
    rx = serve_in_thread(flaky)
    relay = Relay(worker_db_url, rx.url + HOOK, SECRET, backoff_s=0.01)
    try:
        job_id, _ = upload_job(db_url)
        assert relay.deliver_pending() == 0  # one try per round while the receiver fails
        wait_for(lambda: relay.deliver_pending() == 1)
        with psycopg.connect(db_url) as conn:
            log = conn.execute(
                "select status_code, error, latency_ms from event_deliveries d"
                " join import_events e on e.id = d.event_id where e.job_id = %s"
                " order by d.id",
                (job_id,),
            ).fetchall()
            acked = conn.execute(
                "select acknowledged_at is not null, attempts from import_events"
                " where job_id = %s and type = 'import.queued'",
                (job_id,),
            ).fetchone()
        assert [s for s, _, _ in log] == [500, 500, 202]
        assert "HTTP 500" in log[0][1] and log[2][1] is None
        assert all(latency > 0 for _, _, latency in log)
        assert acked == (True, 3)
        wait_for(lambda: stage_of(db_url, job_id) == "downloading")
    finally:
        relay.stop()
        rx.stop()
        runner.close()
        lifecycle.reset()


def test_receiver_down_holds_the_relay_not_the_event(db_url, worker_db_url):
    """Guards pitfall 2 (cold start): a receiver that is down does not lose the event; it
    stays in the outbox with the error on record, due at once for any other relay, while
    this relay backs off and sends nothing more to the dead endpoint."""
    relay = Relay(
        worker_db_url, "http://127.0.0.1:9/webhooks/supabase", SECRET, backoff_s=5, timeout_s=2
    )
    job_id, _ = upload_job(db_url)
    assert relay.deliver_pending() == 0
    with psycopg.connect(db_url) as conn:
        attempts, error, later = conn.execute(
            "select attempts, last_error, next_attempt_at > now() from import_events"
            " where job_id = %s",
            (job_id,),
        ).fetchone()
    assert attempts == 1 and "ConnectError" in error and not later
    assert relay.health.seconds_until_ready() > 4
    assert relay.deliver_pending() == 0  # held off: nothing claimed, nothing sent
    with psycopg.connect(db_url) as conn:
        assert conn.execute("select count(*) from event_deliveries").fetchone()[0] == 1
    relay.stop()


def test_two_relays_never_send_one_event_twice(db_url, worker_db_url):
    """Guards pitfall 7 (duplicates): concurrent relays split the outbox (SKIP LOCKED)."""
    got: Counter[str] = Counter()
    verifier = Verifier(SECRET)

    async def count(request: Request) -> JSONResponse:
        body = await request.body()
        got[verifier.verify(body, request.headers)] += 1
        return JSONResponse({"status": "accepted"}, status_code=202)

    rx = serve_in_thread(Starlette(routes=[Route(HOOK, count, methods=["POST"])]))
    jobs = [upload_job(db_url)[0] for _ in range(30)]
    relays = [Relay(worker_db_url, rx.url + HOOK, SECRET) for _ in range(3)]
    barrier = threading.Barrier(len(relays))
    sent: list[int] = []

    def go(relay: Relay) -> None:
        barrier.wait()
        sent.append(relay.deliver_pending(limit=7))
        sent.append(relay.deliver_pending(limit=100))

    threads = [threading.Thread(target=go, args=(r,)) for r in relays]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for r in relays:
        r.stop()
    rx.stop()
    assert sum(sent) == len(jobs) == len(got)
    assert set(got.values()) == {1}


class BusyOnce:
    """ASGI wrapper: the first POST gets 503 + Retry-After, as a receiver with a full pool."""

    def __init__(self, app: ASGIApp) -> None:
        self.app, self.busy = app, True

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.busy and scope["type"] == "http" and scope["method"] == "POST":
            self.busy = False
            resp = JSONResponse({"error": "busy"}, status_code=503, headers={"Retry-After": "1"})
            await resp(scope, receive, send)
            return
        await self.app(scope, receive, send)


def test_relay_honours_retry_after(db_url, worker_db_url):
    """Guards pitfall 2 (cold start / overload): backpressure is respected: the relay waits
    the time the receiver asked, without spending an attempt, then the event goes through."""
    lifecycle.reset()
    runner = StepRunner(worker_db_url)
    rx = serve_in_thread(
        BusyOnce(
            create_app(
                Settings(webhook_secret=SECRET),
                conninfo=worker_db_url,
                sources=[runner.pull],
                on_event=runner,
            )
        )
    )
    relay = Relay(worker_db_url, rx.url + HOOK, SECRET)
    try:
        job_id, _ = upload_job(db_url)
        assert relay.deliver_pending() == 0
        with psycopg.connect(db_url) as conn:
            attempts, later = conn.execute(
                "select attempts, next_attempt_at > now() from import_events where job_id = %s",
                (job_id,),
            ).fetchone()
        assert (attempts, later) == (0, False)  # busy is not a failed attempt
        assert relay.deliver_pending() == 0  # the relay waits as asked: no hammering
        with psycopg.connect(db_url) as conn:
            assert conn.execute("select count(*) from event_deliveries").fetchone()[0] == 1
        wait_for(lambda: relay.deliver_pending() == 1)
        wait_for(lambda: stage_of(db_url, job_id) == "downloading")
    finally:
        relay.stop()
        rx.stop()
        runner.close()
        lifecycle.reset()
