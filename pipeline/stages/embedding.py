"""embedding: give every chunk of this import a vector, in batches any instance may work.

The last stage: it ends with complete_import_job, which swaps the new memory in for the
person (the soulprint was shown when its own stage ended, before this one).

The holder of the job's lease plans the job's chunks into batches (a range of chunk ids
each, ``EMBEDDING_BATCH_CHUNKS`` at most; see ``embedding_batches.py`` and
``supabase/migrations/20261201200000_embedding_fanout.sql``), then works batches itself
like any other instance, then waits, renewing its job lease, for the batches other
instances hold, and completes the job once none is left. A holder that dies leaves the
plan in the database: the next claimer of the job finds it and continues; batches held by
a dead instance are claimed again once their lease has lapsed.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import psycopg

from pipeline.db import connect
from pipeline.embedding import Embedder, EmbedderError, get_embedder
from pipeline.errors import CancelRequested, LeaseLost, StageError
from pipeline.queries import QUERIES
from pipeline.stages import embedding_batches as batches
from pipeline.stages.context import StageContext
from pipeline.stages.export_file import delete_raw_export

# While other instances hold the last batches: how often the holder looks again (and
# renews its lease, through its progress report).
WAIT_SECONDS = 0.2
# At most one look at the plan's numbers per this many seconds while working a batch.
PROGRESS_SECONDS = 1.0

# Batches a big import is cut into at least, so that instances can share it. What shares
# them is stage slots, not instances: 2 instances with STAGE_POOL_SIZE=2 are 4 slots, so
# 16 batches leave each slot 4 (the last round a quarter of the work), where 8 batches of
# an 8 MB import at 4 requests in flight came out as 10, split 5:3 rounds (0.6x at best;
# measured 0.73). With 3 batches (a 4 MB export in batches of 576) 0.67x was the best.
TARGET_BATCHES = 16
# ... but no batch smaller than this (rounded up to whole embedder calls): each batch costs
# a claim, a lease and the pipeline's tail, and a small import gains nothing from many.
MIN_BATCH_CHUNKS = 200


@dataclass
class _Progress:
    """embedded_chunks as the app sees it: the count when the plan was made, plus what
    the plan's batches have written since (by any instance)."""

    at_plan: int
    missing_at_plan: int
    last_look: float = 0.0


def run(ctx: StageContext) -> None:
    try:
        _embed_all(ctx)
    except EmbedderError as exc:  # its message is written for a person, without secrets
        _publish_count(ctx)
        raise StageError(exc.code, str(exc)) from exc
    except StageError:
        _publish_count(ctx)
        raise
    # The last stage: memory swaps in for the person (their soulprint already shows).
    if not ctx.store.complete(ctx.job.id, ctx.owner):
        raise LeaseLost()
    if not ctx.settings.keep_export_after_import:
        delete_raw_export(ctx)


def _embed_all(ctx: StageContext, *, overlap: bool = True) -> None:
    """Plan, work batches, wait for the others' batches; return when every chunk of the
    job has its vector (and the job row says so). ``overlap=False``: each batch embeds and
    writes in turn (the baseline of ``bench/embed_stage.py``)."""
    embedder = get_embedder(ctx.settings)
    ctx.counters.update(embedding_model=embedder.model, embedding_dim=embedder.dimensions)
    with connect(
        ctx.conninfo, autocommit=True, application_name="soulprint-stage-embedding"
    ) as conn:
        progress = _plan(ctx, conn, embedder)
        while True:
            batch = batches.claim(conn, ctx.owner, ctx.settings, embedder, ctx.job.id)
            if batch is not None:
                _work(ctx, conn, batch, embedder, progress, overlap)
                continue
            state = _state(ctx, conn)
            _raise_if_failed(state)
            if state["open_batches"] == 0:
                break
            _show(ctx, progress, state)
            ctx.report()  # renews the job lease; raises on cancel, shutdown, lease lost
            time.sleep(WAIT_SECONDS)
        ctx.counters["embedded_chunks"] = _count_embedded(conn, ctx)
        ctx.report(force=True)


def _plan(ctx: StageContext, conn: batches.Conn, embedder: Embedder) -> _Progress:
    embedded = _count_embedded(conn, ctx)
    # A whole number of the embedder's calls per batch: a batch of 500 on calls of 384
    # would cost a second round trip for 116 chunks (measured: 1.22x the time of one
    # instance before fan-out, against 1.0 with whole calls).
    size = batch_size(
        ctx.settings.embedding_batch_chunks,
        embedder.stage_batch_size,
        max(ctx.job.chunks - embedded, 0),
    )
    opened = batches.one(
        conn,
        QUERIES["plan_embedding"],
        (ctx.job.id, ctx.owner, size, embedder.model, embedder.dimensions),
    )["open_batches"]
    if opened is None:
        raise LeaseLost()
    state = _state(ctx, conn)
    ctx.counters["embedded_chunks"] = embedded
    ctx.report(force=True)
    return _Progress(at_plan=embedded, missing_at_plan=state["missing"])


def batch_size(configured: int, per_call: int, missing: int) -> int:
    """Chunks per batch for ``missing`` chunks: at most ``configured`` (EMBEDDING_BATCH_CHUNKS),
    small enough for at least TARGET_BATCHES batches, at least MIN_BATCH_CHUNKS (rounded up),
    always a whole number of the embedder's calls of ``per_call`` chunks (at least one)."""

    def whole_calls(n: int) -> int:
        return max(-(-n // per_call), 1) * per_call

    # Rounded down, so that rounding never leaves fewer than TARGET_BATCHES batches.
    share = max(missing // TARGET_BATCHES // per_call, 1) * per_call
    return min(whole_calls(configured), max(share, whole_calls(MIN_BATCH_CHUNKS)))


def _work(
    ctx: StageContext,
    conn: batches.Conn,
    batch: batches.Batch,
    embedder: Embedder,
    progress: _Progress,
    overlap: bool,
) -> None:
    """Work ``batch`` and the job's next ones as the holder; how that ends becomes the
    stage's (a cancel, a shutdown, a lost lease)."""

    def after_write(_written: int) -> None:
        now = time.monotonic()
        if now - progress.last_look >= PROGRESS_SECONDS:
            progress.last_look = now
            state = _state(ctx, conn)
            _raise_if_failed(state)  # another instance's batch failed: no point going on
            _show(ctx, progress, state)
        ctx.report()  # throttled by the store; raises on cancel, shutdown, lease lost

    # This job's next batches follow in the same pipeline (claimed as the current one ends);
    # whatever stops the work, work() gives back every batch still held.
    outcome = batches.work(
        conn,
        ctx.conninfo,
        batch,
        embedder,
        ctx.owner,
        ctx.settings,
        overlap=overlap,
        after_write=after_write,
        next_batch=lambda: batches.claim(conn, ctx.owner, ctx.settings, embedder, ctx.job.id),
    )
    if outcome == "cancel_requested":
        ctx.report(force=True)  # raises CancelRequested (or LeaseLost)
        raise CancelRequested()
    if outcome == "not_yours":
        # The batch's lease lapsed and another instance has it, or the job is not ours:
        # the report says which.
        ctx.report(force=True)
    if outcome == "stopped":
        ctx.report(force=True)  # raises ShuttingDown


def _count_embedded(conn: batches.Conn, ctx: StageContext) -> int:
    """Chunks with a vector of the stage's model and size (0 before the embedder is known)."""
    model, dim = ctx.counters.get("embedding_model"), ctx.counters.get("embedding_dim")
    return int(batches.one(conn, QUERIES["count_embedded_chunks"], (ctx.job.id, model, dim))["n"])


def _state(ctx: StageContext, conn: batches.Conn) -> dict[str, Any]:
    return batches.one(
        conn, QUERIES["embedding_plan_state"], (ctx.job.id, ctx.settings.max_attempts)
    )


def _raise_if_failed(state: dict[str, Any]) -> None:
    """The job fails with the sentence of a batch an embedder refused, or when a batch has
    used up its claims (every instance that took it died or stalled)."""
    if state["error_code"] is not None:
        raise StageError(state["error_code"], state["error_message"])
    if state["exhausted"]:
        raise StageError(
            "stalled",
            "Building your searchable memory kept stopping part-way. "
            "You can retry the import; your data so far is kept.",
        )


def _show(ctx: StageContext, progress: _Progress, state: dict[str, Any]) -> None:
    written = progress.missing_at_plan - int(state["missing"])
    ctx.counters["embedded_chunks"] = progress.at_plan + max(written, 0)


def _publish_count(ctx: StageContext) -> None:
    """The exact count on the job row before the stage fails: what was written is kept,
    and the person sees how far it got."""
    if ctx.counters.get("embedding_model") is None:
        return  # failed before the embedder was known: the count shown still stands
    try:
        with connect(ctx.conninfo, autocommit=True) as conn:
            ctx.counters["embedded_chunks"] = _count_embedded(conn, ctx)
        ctx.store.progress(ctx.job.id, ctx.owner, ctx.counters, None, force=True)
    except psycopg.Error:
        pass  # the failure itself matters more; the count is refreshed on retry
