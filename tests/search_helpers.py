"""Completed imports with chunks and vectors, made through the real state machine.

``completed_import(admin_url, user_id, chunks, model=..., dim=...)`` uploads an object (the
trigger creates the job), walks the job to ``generating_soulprint`` with the real transition
functions, writes the chunks with their vectors, and completes the job with
``complete_import_job``, so ``user_profiles.current_import_id`` points at it exactly as after
a real run. Returns the job id.

``unit_vector(dim, *hot)`` is a deterministic unit vector with weight on the given axes:
cosine similarity between two of them is predictable, which is all the SQL tests need.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Sequence

import psycopg

from tests.dbutil import jobs_for, upload_object, walk_to

MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def unit_vector(dim: int, *hot: int) -> list[float]:
    """A unit vector of ``dim`` floats, equal weight on axes ``hot`` (default axis 0)."""
    axes = hot or (0,)
    v = [0.0] * dim
    for a in axes:
        v[a % dim] += 1.0
    norm = math.sqrt(sum(x * x for x in v))
    return [x / norm for x in v]


def vec_literal(v: Sequence[float]) -> str:
    """pgvector's text form: ``[x,y,...]``."""
    return "[" + ",".join(f"{x:.6f}" for x in v) + "]"


def completed_import(
    admin_url: str,
    user_id: uuid.UUID,
    chunks: Sequence[tuple[str, str, Sequence[float] | None]],
    *,
    model: str = MODEL,
    dim: int = 384,
    title: str = "A conversation",
) -> uuid.UUID:
    """A completed import of ``user_id`` whose chunks are ``(conversation_id, content,
    vector or None)``; see the module docstring."""
    upload_object(admin_url, user_id, name=f"export-{uuid.uuid4().hex[:6]}.zip")
    job = jobs_for(admin_url, user_id)[-1]["id"]
    walk_to(admin_url, job, "embedding")  # the soulprint is shown on the way
    owner = "test-completer"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        with conn.transaction():
            for index, (conv, content, vec) in enumerate(chunks):
                conn.execute(
                    "insert into public.memory_chunks (id, job_id, user_id, conversation_id,"
                    " conversation_title, chunk_index, content, first_message_at,"
                    " last_message_at, message_count, embedding, embedding_model,"
                    " embedding_dim) values (%s, %s, %s, %s, %s, %s, %s,"
                    " now() - interval '1 day', now() - interval '1 day', 2,"
                    " %s::extensions.vector, %s, %s)",
                    (
                        uuid.uuid4(),
                        job,
                        user_id,
                        conv,
                        title,
                        index,
                        content,
                        vec_literal(vec) if vec is not None else None,
                        model if vec is not None else None,
                        dim if vec is not None else None,
                    ),
                )
            conn.execute(
                "update public.import_jobs set embedding_model = %s, embedding_dim = %s,"
                " chunks = %s, embedded_chunks = %s where id = %s",
                (model, dim, len(chunks), sum(1 for c in chunks if c[2] is not None), job),
            )
        conn.execute("select public.claim_import_job(%s, 'embedding', %s, 60)", (job, owner))
        done = conn.execute("select public.complete_import_job(%s, %s)", (job, owner)).fetchone()[0]
        assert done, "complete_import_job refused"
    return job
