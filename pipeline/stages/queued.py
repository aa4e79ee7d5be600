"""queued: the worker accepts the job. The row moving on is the app's sign the worker is awake."""

from __future__ import annotations

from pipeline.stages.context import StageContext


def run(ctx: StageContext) -> None:
    ctx.advance()
