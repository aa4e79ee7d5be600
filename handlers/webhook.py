"""POST /webhooks/supabase: verify, dedupe, acknowledge, ring the stage pool's bell.

The event is a doorbell, Postgres the queue (issue 15): the work an event announces is
claimable in import_jobs by any instance, so the receiver never needs a free slot to take
an event. It answers 202 and wakes the local pool, whose threads pull runnable work when
they have capacity. 503 means only "shutting down" (or "cannot record it now": database
unreachable), never "busy".
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from uuid import UUID

from psycopg_pool import AsyncConnectionPool
from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse

from handlers.pool import StagePool
from handlers.signature import SignatureError, Verifier
from pipeline import lifecycle
from pipeline.errors import SoulprintError
from pipeline.events import StageEvent
from pipeline.jobstore import JobStore
from pipeline.stage import ACTIVE  # events of other stages: acked, ignored

log = logging.getLogger(__name__)


class BodyTooLarge(SoulprintError):
    pass


class BodyTooSlow(SoulprintError):
    pass


def reply(status: int, body: dict[str, object], retry_after: int | None = None) -> JSONResponse:
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse(body, status_code=status, headers=headers)


async def read_body(request: Request, limit: int, timeout_s: float | None = None) -> bytes:
    """The raw body, refused as soon as it is known to exceed ``limit`` bytes
    (BodyTooLarge), or when it has not all arrived within ``timeout_s`` seconds
    (BodyTooSlow): nothing is signed yet, so nobody may hold the receiver's memory long."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    body = bytearray()

    async def read() -> None:
        async for chunk in request.stream():
            body.extend(chunk)
            if len(body) > limit:
                raise BodyTooLarge

    try:
        await asyncio.wait_for(read(), timeout_s)
    except TimeoutError:
        raise BodyTooSlow from None
    return bytes(body)


def as_uuid(value: str) -> UUID | None:
    try:
        return UUID(value)
    except ValueError:
        return None


class WebhookReceiver:
    """The endpoint; one instance per app, holding what every request needs."""

    def __init__(
        self,
        *,
        verifier: Verifier,
        stages: StagePool,
        db: AsyncConnectionPool,
        on_event: Callable[[StageEvent], None] | None = None,
        max_body_bytes: int,
        body_timeout_s: float | None = None,
        retry_after_s: int = 2,
    ) -> None:
        self.verifier = verifier
        self.stages = stages
        self.db = db
        # Sees each first delivery of a stage event before the pool is woken (tests drive
        # their step-by-step stand-in for the stages with it); must not block.
        self.on_event = on_event
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.retry_after_s = retry_after_s

    async def handle(self, request: Request) -> JSONResponse:
        if lifecycle.shutting_down():
            return reply(503, {"error": "shutting down"}, self.retry_after_s)
        try:
            body = await read_body(request, self.max_body_bytes, self.body_timeout_s)
        except BodyTooLarge:
            return reply(413, {"error": f"body larger than {self.max_body_bytes} bytes"})
        except BodyTooSlow:
            return reply(408, {"error": "body not received in time"})
        try:
            webhook_id = self.verifier.verify(body, request.headers)
        except SignatureError as exc:
            return reply(401, {"error": str(exc)})
        try:
            event = StageEvent.model_validate_json(body)
        except ValidationError as exc:
            return reply(400, {"error": "malformed event", "detail": exc.errors()[0]["msg"]})

        if not event.is_import_event:
            log.warning("ignoring event of unknown type %r (webhook-id %s)", event.type, webhook_id)
            return reply(200, {"status": "ignored"})
        if event.data.stage not in ACTIVE:
            # Terminal stages need no handler; record it so retries stop.
            fresh = await self._record(webhook_id, event)
            log.info("no handler for stage %r (job %s)", event.data.stage, event.data.job_id)
            return reply(200, {"status": "ignored" if fresh else "duplicate"})

        fresh = await self._record(webhook_id, event)
        if fresh is None:
            return reply(503, {"error": "database unavailable"}, self.retry_after_s)
        if not fresh:
            return reply(200, {"status": "duplicate"})
        if self.on_event is not None:
            self.on_event(event)
        self.stages.wake()
        return reply(202, {"status": "accepted"})

    async def _record(self, webhook_id: str, event: StageEvent) -> bool | None:
        """True for a first delivery, False for a repeat, None when the database is down."""
        params = {
            "event_id": as_uuid(webhook_id),
            "job_id": event.data.job_id,
            "type": event.type,
        }
        try:
            async with self.db.connection(timeout=5) as conn, conn.transaction():
                return await JobStore.acknowledge_in(conn, webhook_id, params)
        except Exception:
            log.exception("could not record webhook %s", webhook_id)
            return None
