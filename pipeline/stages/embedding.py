"""embedding: give every chunk of this import a vector, in batches written back in one statement.

The last stage: it ends with complete_import_job, which swaps the new memory in for the
person (the soulprint was shown when its own stage ended, before this one).

The next batch is embedded while the current one is written: the write (an UPDATE plus
HNSW index maintenance, on a remote database in production) then costs no embedding time.
Batches are read in id order after the last one read, so the prefetch never picks up rows
whose vectors are still being written; a resumed run starts from the first id again and
finds only the rows still without a vector.
"""

from __future__ import annotations

import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import orjson
import psycopg

from pipeline.embedding import Embedder, EmbedderError, get_embedder
from pipeline.errors import LeaseLost, StageError
from pipeline.stages.context import StageContext
from pipeline.stages.export_file import delete_raw_export

# Sorts before every uuid: the keyset start of a (resumed) run.
_FIRST_ID = uuid.UUID(int=0)

SELECT_PENDING = """
select id, content from public.memory_chunks
where job_id = %s and embedding is null and id > %s
order by id
limit %s
"""

UPDATE_VECTORS = """
update public.memory_chunks m
set embedding = v.vec::vector, embedding_model = %(model)s, embedding_dim = %(dim)s
from unnest(%(ids)s::uuid[], %(vecs)s::text[]) as v(id, vec)
where m.job_id = %(job)s and m.id = v.id and m.embedding is null
"""

Rows = list[tuple[uuid.UUID, str]]


def run(ctx: StageContext) -> None:
    try:
        _embed_all(ctx)
    except EmbedderError as exc:  # its message is written for a person, without secrets
        raise StageError(exc.code, str(exc)) from exc
    # The last stage: memory swaps in for the person (their soulprint already shows).
    if not ctx.store.complete(ctx.job.id, ctx.owner):
        raise LeaseLost()
    if not ctx.settings.keep_export_after_import:
        delete_raw_export(ctx)


def _embed_all(ctx: StageContext, *, overlap: bool = True) -> None:
    """Embed every chunk still without a vector. ``overlap=False`` embeds and writes in
    turn (the baseline of ``bench/embed_stage.py``)."""
    embedder = get_embedder(ctx.settings)
    ctx.counters.update(embedding_model=embedder.model, embedding_dim=embedder.dimensions)
    ahead = ThreadPoolExecutor(1, thread_name_prefix="embed-ahead") if overlap else None
    try:
        with ctx.connect() as conn:
            # Resuming: whatever earlier attempts committed is already counted here.
            row = conn.execute(
                "select count(*) from public.memory_chunks where job_id = %s "
                "and embedding is not null",
                (ctx.job.id,),
            ).fetchone()
            assert row is not None  # a count: always one row
            done = row[0]
            ctx.counters["embedded_chunks"] = done
            ctx.commit_batch(conn, {})
            size = embedder.stage_batch_size
            rows = _pending(conn, ctx.job.id, _FIRST_ID, size)
            vectors = _start(ahead, embedder, rows)
            while rows:
                following = _pending(conn, ctx.job.id, rows[-1][0], size)
                ready = vectors.result()
                vectors = _start(ahead, embedder, following)
                _write(ctx, conn, embedder, rows, ready)
                rows = following
    finally:
        if ahead is not None:
            # On cancel, shutdown or error, the batch being embedded is dropped, not awaited.
            ahead.shutdown(wait=False, cancel_futures=True)


def _pending(conn: psycopg.Connection, job_id: Any, after: uuid.UUID, size: int) -> Rows:
    rows = conn.execute(SELECT_PENDING, (job_id, after, size)).fetchall()
    # Not idle in a transaction while the embedder works (seconds, or minutes of 429s).
    conn.commit()
    return rows


def _start(ahead: ThreadPoolExecutor | None, embedder: Embedder, rows: Rows) -> Future[np.ndarray]:
    """The vectors of ``rows``: embedding in ``ahead``, or already done when there is none."""
    texts = [r[1] for r in rows]
    if ahead is not None:
        return ahead.submit(embedder.embed, texts)
    done: Future[np.ndarray] = Future()
    try:
        done.set_result(embedder.embed(texts))
    except Exception as exc:  # raised by .result(), as from the thread
        done.set_exception(exc)
    return done


def _write(
    ctx: StageContext, conn: psycopg.Connection, embedder: Embedder, rows: Rows, vectors: np.ndarray
) -> None:
    result = conn.execute(
        UPDATE_VECTORS,
        {
            "model": embedder.model,
            "dim": embedder.dimensions,
            "job": ctx.job.id,
            "ids": [r[0] for r in rows],
            "vecs": [orjson.dumps(v, option=orjson.OPT_SERIALIZE_NUMPY).decode() for v in vectors],
        },
    )
    ctx.counters["embedded_chunks"] += result.rowcount
    ctx.commit_batch(conn, {})
