"""GET /healthz: Render's health check, with database reachability."""

from __future__ import annotations

from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import JSONResponse

from handlers.pool import StagePool
from pipeline import lifecycle


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
                await conn.execute("select 1")
        except Exception as exc:
            body = {"status": "unavailable", "database": "unreachable", "error": type(exc).__name__}
            return JSONResponse({**body, "stages": stages}, status_code=503)
        return JSONResponse({"status": "ok", "database": "reachable", "stages": stages})
