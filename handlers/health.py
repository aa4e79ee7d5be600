"""GET /healthz: Render's health check, with database reachability and delivery lag.

The lag (unacknowledged events, age of the oldest) is reported, not judged: a restart of
this service would not deliver them, so the status stays 200 while the database answers.
"""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import JSONResponse

from handlers.pool import StagePool
from pipeline import lifecycle
from pipeline.outbox_health import outbox_lag
from pipeline.queries import QUERIES


class Health:
    def __init__(self, db: AsyncConnectionPool, stages: StagePool) -> None:
        self.db = db
        self.stages = stages

    async def handle(self, request: Request) -> JSONResponse:
        stages = {"busy": self.stages.busy, "capacity": self.stages.capacity}
        if lifecycle.shutting_down():
            return JSONResponse({"status": "shutting_down", "stages": stages}, status_code=503)
        try:
            async with self.db.connection(timeout=3) as conn:
                cur = await conn.execute(QUERIES["oldest_unacknowledged_event"])
                lag = outbox_lag(await cur.fetchone())
        except Exception as exc:
            body = {"status": "unavailable", "database": "unreachable", "error": type(exc).__name__}
            return JSONResponse({**body, "stages": stages}, status_code=503)
        return JSONResponse(
            {"status": "ok", "database": "reachable", "stages": stages, "outbox": lag.as_json()}
        )
