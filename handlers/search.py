"""``POST /v1/search``: the app asks a person's memory, with the person's own access token.

Request: ``Authorization: Bearer <Supabase access token>``, JSON body
``{"query": "...", "limit": 10}`` (limit 1-50, default 10; body at most ``max_body_bytes``).
Response 200: ``{"results": [{id, conversation_id, conversation_title, content,
first_message_at, last_message_at, score, vector_rank, lexical_rank, similarity,
lexical_score}, ...], "model": "<the import's embedding model>"}``.

Errors (JSON ``{"error": code, "message": sentence}``): 401 no/invalid token (with
``WWW-Authenticate: Bearer``), 429 over the per-person rate limit (``Retry-After``), 413 body
too large, 400 bad JSON (``bad_json``), query (``bad_query``: not a non-empty string, or
holding NUL) or limit (``bad_limit``), 404 no completed import, 409 the service's embedder
is not the import's model, 503 token verification or SEARCH_DATABASE_URL not configured
(``not_configured``), database unavailable (``database_unavailable``) or any other database
error (``database_error``).

The query is embedded here with the import's model, then ``match_memories`` runs AS the
person (role ``authenticated`` with their verified claims): row-level security limits the
result to their own current import, as it would through PostgREST. The pool is logged in
as ``import_searcher`` (SEARCH_DATABASE_URL), never the worker: that role may switch to
``authenticated`` and set any claims, so this module sets only the ``sub`` of a token it
has just verified.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import orjson
import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from starlette.requests import Request
from starlette.responses import JSONResponse

from handlers.auth import InvalidToken, Person, TokenVerifier
from handlers.ratelimit import RateLimiter
from handlers.webhook import BodyTooLarge, read_body
from pipeline.embedding import Embedder, EmbedderError
from pipeline.queries import QUERIES
from pipeline.search import (
    MAX_QUERY_CHARS,
    Hit,
    ModelMismatch,
    NoImport,
    Target,
    embed_query,
    vector_text,
)

log = logging.getLogger(__name__)

MAX_LIMIT = 50


def _error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def _unauthorized(message: str) -> JSONResponse:
    return _error(
        401, "invalid_token", message, {"WWW-Authenticate": 'Bearer error="invalid_token"'}
    )


async def _act_as(conn: AsyncConnection, person: Person) -> None:
    """The PostgREST way: the verified claims, then role authenticated (transaction-local)."""
    claims = orjson.dumps(
        {"sub": str(person.user_id), "role": "authenticated", "aud": "authenticated"}
    ).decode()
    await conn.execute(QUERIES["act_as_claims"], (claims,))
    await conn.execute(QUERIES["act_as_authenticated"])


class SearchEndpoint:
    """One per app: the token verifier, the rate limiter, the pool and the embedder."""

    def __init__(
        self,
        *,
        verifier: TokenVerifier,
        limiter: RateLimiter,
        db: AsyncConnectionPool | None,
        embedder: Any,
        max_body_bytes: int = 8192,
    ) -> None:
        # ``db``: a pool logged in as the search role; None when SEARCH_DATABASE_URL is unset.
        # ``embedder``: an Embedder, or a zero-argument callable returning one (loaded on
        # the first search, so a receiver that never searches never loads a model).
        self.verifier = verifier
        self.limiter = limiter
        self.db = db
        self._embedder = embedder
        self.max_body_bytes = max_body_bytes

    def embedder(self) -> Embedder:
        if callable(self._embedder) and not isinstance(self._embedder, Embedder):
            self._embedder = self._embedder()
        return cast(Embedder, self._embedder)

    async def handle(self, request: Request) -> JSONResponse:
        if not self.verifier.configured:
            return _error(
                503,
                "not_configured",
                "Search needs SUPABASE_JWT_SECRET or "
                "SUPABASE_URL / SUPABASE_JWKS_URL to verify access tokens.",
            )
        if self.db is None:
            return _error(
                503,
                "not_configured",
                "Search needs SEARCH_DATABASE_URL (the import_searcher role).",
            )
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return _unauthorized("Send the person's access token as 'Authorization: Bearer'.")
        try:
            person = await asyncio.to_thread(self.verifier.verify, token.strip())
        except InvalidToken as exc:
            return _unauthorized(f"The access token was not accepted: {exc}.")

        wait = self.limiter.allow(person.user_id)
        if wait:
            return _error(
                429,
                "rate_limited",
                "Too many searches; try again shortly.",
                {"Retry-After": str(wait)},
            )

        try:
            body = await read_body(request, self.max_body_bytes)
        except BodyTooLarge:
            return _error(
                413,
                "body_too_large",
                f"The request body is limited to {self.max_body_bytes} bytes.",
            )
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError:
            return _error(400, "bad_json", 'The body must be JSON: {"query": "..."}.')
        query = data.get("query") if isinstance(data, dict) else None
        limit = data.get("limit", 10) if isinstance(data, dict) else None
        if not isinstance(query, str) or not query.strip():
            return _error(400, "bad_query", "'query' must be a non-empty string.")
        if "\x00" in query:  # PostgreSQL text cannot hold it: refused before embedding
            return _error(400, "bad_query", "'query' must not contain NUL characters.")
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_LIMIT:
            return _error(400, "bad_limit", f"'limit' must be an integer from 1 to {MAX_LIMIT}.")
        query = query[:MAX_QUERY_CHARS]

        try:
            hits, model = await self._search(person, query, limit)
        except NoImport as exc:
            return _error(404, "no_import", str(exc))
        except ModelMismatch as exc:
            return _error(409, "model_mismatch", str(exc))
        except EmbedderError as exc:
            log.error("search embedder unavailable: %s", exc)
            return _error(503, "embedder_unavailable", str(exc))
        except psycopg.OperationalError:
            log.exception("search: database unavailable")
            return _error(
                503,
                "database_unavailable",
                "The memory store is unavailable; try again shortly.",
                {"Retry-After": "5"},
            )
        except psycopg.DataError as exc:
            # Text or numbers the database cannot take; the person's query is not logged.
            log.warning("search: query refused by the database (%s)", exc.sqlstate)
            return _error(400, "bad_query", "The database cannot search for this query.")
        except psycopg.Error as exc:
            # Anything else (a missing grant or migration, a statement timeout): the
            # operator's problem, named in the log; the person gets a sentence, not a 500.
            log.error("search: database error %s (%s)", type(exc).__name__, exc.sqlstate)
            return _error(
                503,
                "database_error",
                "The memory store could not answer this search; try again later.",
                {"Retry-After": "30"},
            )
        return JSONResponse({"results": [h.to_json() for h in hits], "model": model})

    async def _search(self, person: Person, query: str, limit: int) -> tuple[list[Hit], str]:
        # Two short checkouts: a connection is not held while the question is embedded.
        assert self.db is not None
        async with self.db.connection() as conn, conn.transaction():
            await _act_as(conn, person)
            row = await (await conn.execute(QUERIES["current_import"])).fetchone()
        if row is None:
            raise NoImport(
                "There is nothing to search yet: no import of this person has completed."
            )
        target = Target(*row)
        # CPU-bound (local model) or a remote call: off the event loop.
        vector = await asyncio.to_thread(embed_query, self.embedder(), target, query)
        params = {
            "embedding": vector_text(vector),
            "text": query,
            "limit": limit,
            "model": target.embedding_model,
            "rrf_k": 60,
        }
        async with self.db.connection() as conn, conn.transaction():
            await _act_as(conn, person)
            rows = await (await conn.execute(QUERIES["match_memories"], params)).fetchall()
        return [Hit(*r) for r in rows], target.embedding_model or ""
