"""Search a person's memory: embed the question with the import's model, then run
``public.match_memories`` AS that person (role ``authenticated`` with their JWT claims), so
row-level security decides what comes back, exactly as through PostgREST.

Used by the ``search`` CLI, ``POST /v1/search`` and bench/retrieval.py::

    with connect(url) as conn:
        target = current_import(conn, user_id)            # NoImport if none completed
        vector = embed_query(embedder, target, "where did I travel?")  # ModelMismatch
        hits = match_memories(conn, user_id, "where did I travel?", vector, limit=5)

``hits`` is a list of ``Hit`` (chunk id, conversation id and title, content, first/last
message time, the fused score and its parts). ``mode`` "vector" or "lexical" leaves the
other list out (the benchmark compares the three).
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
import orjson
import psycopg

from pipeline.embedding import Embedder
from pipeline.embedding.families import comparable, setting_hint
from pipeline.errors import SoulprintError
from pipeline.queries import QUERIES

MODES = ("hybrid", "vector", "lexical")
MAX_QUERY_CHARS = 2000  # a question, not a document: longer text is cut before embedding


class SearchError(SoulprintError):
    """A search that cannot run; ``str()`` is a sentence for a person."""


class NoImport(SearchError):
    """The person has no completed import yet."""


class ModelMismatch(SearchError):
    """The configured embedder is not the model the import was embedded with."""


class BadQuery(SearchError):
    """A query the database cannot take (a NUL character: PostgreSQL text cannot hold it)."""


@dataclass(frozen=True, slots=True)
class Target:
    """The import a search runs against."""

    job_id: uuid.UUID
    embedding_model: str | None
    embedding_dim: int | None


@dataclass(frozen=True, slots=True)
class Hit:
    """One result row of match_memories."""

    id: uuid.UUID
    conversation_id: str
    conversation_title: str | None
    content: str
    first_message_at: datetime | None
    last_message_at: datetime | None
    score: float
    vector_rank: int | None
    lexical_rank: int | None
    similarity: float | None
    lexical_score: float | None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready: ids as text, times as ISO 8601."""
        out = asdict(self)
        out["id"] = str(self.id)
        for key in ("first_message_at", "last_message_at"):
            value = out[key]
            out[key] = value.isoformat() if value is not None else None
        return out


def act_as(conn: psycopg.Connection[Any], user_id: uuid.UUID) -> None:
    """For the rest of the current transaction, be ``user_id`` the way PostgREST makes a
    request be: claims in ``request.jwt.claims``, role ``authenticated``."""
    claims = orjson.dumps(
        {"sub": str(user_id), "role": "authenticated", "aud": "authenticated"}
    ).decode()
    conn.execute(QUERIES["act_as_claims"], (claims,))
    conn.execute(QUERIES["act_as_authenticated"])


def current_import(conn: psycopg.Connection[Any], user_id: uuid.UUID) -> Target:
    """The completed import ``user_id`` would search (read as them). Raises NoImport."""
    with conn.transaction():
        act_as(conn, user_id)
        row = conn.execute(QUERIES["current_import"]).fetchone()
    if row is None:
        raise NoImport("There is nothing to search yet: no import of this person has completed.")
    values = list(row.values()) if isinstance(row, dict) else list(row)
    return Target(values[0], values[1], values[2])


def embed_query(embedder: Embedder, target: Target, text: str) -> np.ndarray:
    """The unit vector of ``text`` from ``embedder``, whose vectors must be comparable with
    the import's (``embedding.families.comparable``: MiniLM at any precision, or the same
    OpenAI model and dimension).

    Raises ModelMismatch, naming the settings to change, when they are not.
    """
    if target.embedding_model is None:
        raise NoImport("This import has no embedded memories to search by meaning.")
    if not comparable(
        embedder.model, embedder.dimensions, target.embedding_model, target.embedding_dim
    ):
        raise ModelMismatch(
            f"This import was embedded with {target.embedding_model} "
            f"({target.embedding_dim} dimensions) but the configured embedder is "
            f"{embedder.model} ({embedder.dimensions}); "
            f"{setting_hint(target.embedding_model, target.embedding_dim)}."
        )
    vector: np.ndarray = embedder.embed([text[:MAX_QUERY_CHARS]])[0]
    return vector


def vector_text(vector: np.ndarray) -> str:
    """pgvector's input form of a float vector: ``[x,y,...]``."""
    return "[" + ",".join(f"{x:.7g}" for x in np.asarray(vector, dtype=np.float32)) + "]"


def match_memories(
    conn: psycopg.Connection[Any],
    user_id: uuid.UUID,
    text: str,
    vector: np.ndarray | None,
    *,
    limit: int = 10,
    mode: str = "hybrid",
    model: str | None = None,
    rrf_k: int = 60,
) -> list[Hit]:
    """Run match_memories as ``user_id`` in its own transaction.

    ``mode``: "hybrid" (both lists), "vector" (no query text) or "lexical" (no vector).
    Database errors of the function (dimension or model mismatch) surface as
    ``psycopg.errors.InvalidParameterValue``; no completed import as NoImport; a NUL in
    ``text`` as BadQuery.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}")
    if "\x00" in text:
        raise BadQuery("The query must not contain NUL characters.")
    params = {
        "embedding": vector_text(vector) if vector is not None and mode != "lexical" else None,
        "text": text[:MAX_QUERY_CHARS] if mode != "vector" else None,
        "limit": limit,
        "model": model,
        "rrf_k": rrf_k,
    }
    try:
        with conn.transaction():
            act_as(conn, user_id)
            cur = conn.execute(QUERIES["match_memories"], params)
            rows = cur.fetchall()
    except psycopg.errors.NoDataFound as exc:
        raise NoImport(
            "There is nothing to search yet: no import of this person has completed."
        ) from exc
    hits = []
    for row in rows:
        values = list(row.values()) if isinstance(row, dict) else list(row)
        hits.append(Hit(*values))
    return hits
