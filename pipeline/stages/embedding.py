"""embedding: give every chunk of this import a vector, in batches written back in one statement."""

from __future__ import annotations

import orjson

from pipeline.embedding import EmbedderError, get_embedder
from pipeline.errors import StageError
from pipeline.stages.context import StageContext

# Small enough that a cancel or SIGTERM is obeyed within seconds, large enough to
# keep the embedder busy (it sorts each batch by length to cut padding).
BATCH = 64

SELECT_PENDING = """
select id, content from public.memory_chunks
where job_id = %s and embedding is null
limit %s
"""

UPDATE_VECTORS = """
update public.memory_chunks m
set embedding = v.vec::vector, embedding_model = %(model)s, embedding_dim = %(dim)s
from unnest(%(ids)s::uuid[], %(vecs)s::text[]) as v(id, vec)
where m.job_id = %(job)s and m.id = v.id and m.embedding is null
"""


def run(ctx: StageContext) -> None:
    try:
        _embed_all(ctx)
    except EmbedderError as exc:  # its message is written for a person, without secrets
        raise StageError(exc.code, str(exc)) from exc
    ctx.advance()


def _embed_all(ctx: StageContext) -> None:
    embedder = get_embedder(ctx.settings)
    ctx.counters.update(embedding_model=embedder.model, embedding_dim=embedder.dimensions)
    with ctx.connect() as conn:
        # Resuming: whatever earlier attempts committed is already counted here.
        done = conn.execute(
            "select count(*) from public.memory_chunks where job_id = %s "
            "and embedding is not null", (ctx.job.id,)).fetchone()[0]
        ctx.counters["embedded_chunks"] = done
        ctx.commit_batch(conn, {})
        while True:
            rows = conn.execute(SELECT_PENDING, (ctx.job.id, BATCH)).fetchall()
            if not rows:
                break
            vectors = embedder.embed([r[1] for r in rows])
            result = conn.execute(UPDATE_VECTORS, {
                "model": embedder.model, "dim": embedder.dimensions, "job": ctx.job.id,
                "ids": [r[0] for r in rows],
                "vecs": [orjson.dumps(v, option=orjson.OPT_SERIALIZE_NUMPY).decode()
                         for v in vectors],
            })
            ctx.counters["embedded_chunks"] += result.rowcount
            ctx.commit_batch(conn, {})
