"""The receiver app, built from its settings: explicit routes, no globals."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.routing import Route

from handlers.auth import TokenVerifier
from handlers.doorbell import Doorbell
from handlers.health import Health
from handlers.pool import StagePool, WorkSource
from handlers.ratelimit import RateLimiter
from handlers.search import SearchEndpoint
from handlers.signature import Verifier
from handlers.webhook import WebhookReceiver
from pipeline import lifecycle
from pipeline.events import StageEvent
from pipeline.janitor import janitor_loop
from pipeline.queries import QUERIES
from pipeline.settings import Settings

log = logging.getLogger(__name__)


async def _configure(conn: AsyncConnection) -> None:
    # Receipts and acks need no fsync before the 202: losing the last few on a server crash
    # only means a retry runs again, which the idempotent stages absorb (and the sweeper
    # re-emits an unacknowledged event). The stages' own writes stay fully durable.
    await conn.execute(QUERIES["receiver_async_commit"])


def _small_pool(conninfo: str, **extra: Any) -> AsyncConnectionPool:
    """Requests only run short statements: a few autocommit connections serve many."""
    return AsyncConnectionPool(
        conninfo,
        min_size=1,
        max_size=4,
        open=False,
        timeout=5,
        kwargs={"autocommit": True},
        check=AsyncConnectionPool.check_connection,
        **extra,
    )


def create_app(
    settings: Settings,
    *,
    conninfo: str,
    sources: Sequence[WorkSource] = (),
    on_event: Callable[[StageEvent], None] | None = None,
    shutdown_grace_s: float = 25.0,
    search_conninfo: str | None = None,
) -> Starlette:
    """The webhook receiver and this instance's stage pool.

    ``sources`` are what the pool's ``STAGE_POOL_SIZE`` threads pull work from
    (pipeline.stages.make_work_sources); a verified event, a NOTIFY on ``import_events``
    (unless LISTEN_FOR_WORK=false) and a poll every WORK_POLL_SECONDS wake them.
    ``on_event(event)`` sees each first delivery of a stage event (tests).

    ``conninfo`` is the worker role (webhooks, health); ``search_conninfo`` the search role
    (import_searcher), the only login that may become a person. Without it POST /v1/search
    answers 503: it never falls back to the worker's connection.

    ``shutdown_grace_s`` stays under Render's default 30 s shutdown delay: stages see
    ``lifecycle.shutting_down()``, checkpoint and release their lease within it.
    """
    if not settings.webhook_secret:
        raise ValueError("WEBHOOK_SECRET is required: the receiver accepts only signed events")
    stages = StagePool(settings.stage_pool_size, sources, poll_s=settings.work_poll_seconds)
    # One listening connection per instance; a transaction pooler cannot hold one.
    doorbell = Doorbell(conninfo, stages.wake) if settings.listen_for_work and sources else None
    # Requests only do short statements; a few connections serve many stages' webhooks.
    db = _small_pool(conninfo, configure=_configure)
    # Searches get their own small pool, logged in as the search role.
    search_db = _small_pool(search_conninfo) if search_conninfo else None
    receiver = WebhookReceiver(
        verifier=Verifier(settings.webhook_secret, settings.webhook_secret_previous),
        stages=stages,
        db=db,
        on_event=on_event,
        max_body_bytes=settings.max_body_bytes,
        body_timeout_s=settings.webhook_body_timeout_seconds,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # The flag is process-wide: an app starting after another one stopped in this
        # process (local mode, tests) takes events again.
        lifecycle.reset()
        # wait=False: a sleeping database must not keep the service from starting.
        await db.open(wait=False)
        if search_db is not None:
            await search_db.open(wait=False)
        stages.start()
        if doorbell is not None:
            doorbell.start()
        # Copies of exports a dead process left on this disk: now, then periodically.
        janitor = asyncio.create_task(
            janitor_loop(settings.data_dir, conninfo, settings.janitor_interval_seconds)
        )
        try:
            yield
        finally:
            janitor.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await janitor
            lifecycle.request_shutdown()
            if doorbell is not None:
                await asyncio.to_thread(doorbell.stop)
            if not await asyncio.to_thread(stages.wait_idle, shutdown_grace_s):
                log.warning(
                    "stages still running after %.0f s; their leases will expire", shutdown_grace_s
                )
            stages.close()
            await db.close()
            if search_db is not None:
                await search_db.close()

    search = _search_endpoint(settings, search_db)

    routes = [
        Route("/webhooks/supabase", receiver.handle, methods=["POST"]),
        Route("/v1/search", search.handle, methods=["POST"]),
        Route("/healthz", Health(db, stages).handle, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.state.stages = stages
    return app


def _search_endpoint(settings: Settings, db: AsyncConnectionPool | None) -> SearchEndpoint:
    """POST /v1/search: people's tokens verified with the legacy secret and/or the JWKS."""
    from pipeline.embedding import get_embedder

    jwks = settings.supabase_jwks_url or (
        f"{settings.supabase_url.rstrip('/')}/auth/v1/.well-known/jwks.json"
        if settings.supabase_url
        else None
    )
    return SearchEndpoint(
        verifier=TokenVerifier(hs256_secret=settings.supabase_jwt_secret, jwks_url=jwks),
        limiter=RateLimiter(settings.search_rate_per_minute),
        db=db,
        embedder=lambda: get_embedder(settings),
        max_body_bytes=settings.search_max_body_bytes,
    )
