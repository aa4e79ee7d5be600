"""Helpers for exercising the receiver: signed requests and a minimal stage runner.

``StepRunner`` walks a job through the real state machine (claim -> one idempotent data
row -> advance, or complete at the last stage) via the job store, so tests and benches can
check delivery semantics without the real stages' downloads and models.
"""

from __future__ import annotations

import queue
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import psycopg
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from pipeline.delivery.signing import sign_headers
from pipeline.events import StageEvent
from pipeline.jobstore import JobStore

T = TypeVar("T")


def signed(
    secret: str, body: str | bytes, *, msg_id: str | None = None, skew_s: float = 0.0
) -> dict[str, str]:
    """Standard Webhooks headers for ``body``; ``skew_s`` moves the timestamp (stale tests)."""
    text = body.decode() if isinstance(body, bytes) else body
    msg_id = msg_id or str(uuid.uuid4())
    if not skew_s:
        return sign_headers(secret, msg_id, text)
    from svix.webhooks import Webhook

    at = datetime.now(UTC) + timedelta(seconds=skew_s)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(at.timestamp())),
        "webhook-signature": Webhook(secret).sign(msg_id, at, text),
        "content-type": "application/json",
    }


def event_body(job_id: uuid.UUID, user_id: uuid.UUID, stage: str, reason: str = "replay") -> str:
    return StageEvent.model_validate(
        {
            "type": f"import.{stage}",
            "timestamp": datetime.now(UTC),
            "data": {"job_id": job_id, "user_id": user_id, "stage": stage, "reason": reason},
        }
    ).model_dump_json()


# Like the parsing stage: a repeat inserts nothing (the worker may insert conversations,
# never update them).
UPSERT_ROW = """
insert into import_conversations (job_id, conversation_id, user_id, title, message_count)
values (%s, %s, %s, %s, 1)
on conflict (job_id, conversation_id) do nothing
"""


class StepRunner:
    """A stage stand-in for tests: claim, write one row per stage, advance or complete.

    Event by event, as delivery tests need (one delivered event, one step): the receiver
    hands it each accepted event (``create_app(on_event=runner)``) and its pool runs them
    through ``pull``, a work source (``create_app(sources=[runner.pull])``)."""

    def __init__(self, conninfo: str, *, lease_seconds: int = 30) -> None:
        self.store = JobStore(conninfo, lease_seconds=lease_seconds)
        self.owner = f"step-runner-{uuid.uuid4().hex[:8]}"
        self.calls: Counter[str] = Counter()  # stage -> runner invocations
        self.claims: Counter[str] = Counter()  # stage -> successful claims
        self.gate: threading.Event | None = None  # when set, stages wait for it
        self.started = threading.Event()
        self._events: queue.SimpleQueue[StageEvent] = queue.SimpleQueue()

    def __call__(self, event: StageEvent) -> None:
        self._events.put(event)

    def pull(self) -> bool:
        """Run the next accepted event's step; False when none is waiting."""
        try:
            event = self._events.get_nowait()
        except queue.Empty:
            return False
        self.step(event)
        return True

    def step(self, event: StageEvent) -> None:
        stage, job_id = event.data.stage, event.data.job_id
        self.calls[stage] += 1
        self.started.set()
        if self.gate is not None:
            self.gate.wait()
        job = self.store.claim(job_id, stage, self.owner)
        if job is None:
            return  # stale, duplicate or someone else's: the idempotent no-op
        self.claims[stage] += 1
        if stage == "generating_soulprint":
            self.store.show_soulprint(job_id, self.owner, {"stages": 4}, "A test soulprint.")
            return
        with self.store._pool.connection() as conn:  # the store's own worker connection
            conn.execute(UPSERT_ROW, (job_id, stage, job.user_id, f"row of {stage}"))
        if stage == "embedding":  # the last stage
            self.store.complete(job_id, self.owner)
            return
        self.store.advance(job_id, self.owner, stage, {"conversations": 1})

    def close(self) -> None:
        self.store.close()


def upload_job(admin_url: str, *, size: int = 1000) -> tuple[uuid.UUID, uuid.UUID]:
    """A person and an upload, as Supabase Storage records it; returns (job_id, user_id)."""
    import json

    import psycopg

    user_id = uuid.uuid4()
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(
            "insert into auth.users (id, email) values (%s, %s)", (user_id, f"{user_id}@t.invalid")
        )
        conn.execute(
            "insert into storage.objects (bucket_id, name, owner_id, metadata, version)"
            " values ('imports', %s, %s, %s, %s)",
            (f"{user_id}/export.zip", str(user_id), json.dumps({"size": size}), "v1"),
        )
        row = conn.execute("select id from import_jobs where user_id = %s", (user_id,)).fetchone()
    assert row is not None, "the upload trigger made no job"
    return row[0], user_id


def wait_for(predicate: Callable[[], T], timeout: float = 20.0, interval: float = 0.05) -> T:
    """Poll until ``predicate()`` is truthy and return it; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


class Switch:
    """ASGI wrapper: while ``down``, every POST gets 503 (a receiver that is asleep)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app, self.down = app, False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.down and scope["type"] == "http" and scope["method"] == "POST":
            await JSONResponse({"error": "asleep"}, status_code=503)(scope, receive, send)
            return
        await self.app(scope, receive, send)


def stage_of(db_url: str, job_id: uuid.UUID) -> str:
    """The job's stage, read as the admin."""
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "select stage::text from import_jobs where id = %s", (job_id,)
        ).fetchone()[0]
