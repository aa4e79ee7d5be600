"""`soulprint-import search QUERY [--user UUID] [--limit K] [--json]`: ask a person's memory.

Embeds QUERY with the import's own model and runs ``match_memories`` as that person (role
``authenticated`` with their claims), so row-level security applies as it does to the app.
It logs in as the search role (SEARCH_DATABASE_URL; locally the embedded server as
``import_searcher``), never as the worker. Whoever runs this command chooses whose memory
to read: it is an operator's tool, like the database credentials it needs.
Without ``--user`` the one person with a completed import is searched (an error names how
many there are when that is ambiguous).
"""

from __future__ import annotations

import argparse
import sys
import textwrap
import uuid
from typing import Any, cast

import orjson
import psycopg

from pipeline.settings import Settings

SNIPPET_CHARS = 240

# Who has something to search: people whose profile points at a completed import.
PEOPLE_WITH_MEMORY_SQL = """
select p.user_id from public.user_profiles p
 where p.current_import_id is not null
 order by p.updated_at desc
 limit 2
"""


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("search", help="search a person's memory (hybrid: meaning + words)")
    p.add_argument("query", help="the question, in any language")
    p.add_argument(
        "--user",
        type=uuid.UUID,
        default=None,
        help="whose memory (default: the only person with a completed import)",
    )
    p.add_argument("--limit", type=int, default=10, help="results, 1-100 (default 10)")
    p.add_argument(
        "--mode", choices=("hybrid", "vector", "lexical"), default="hybrid", help=argparse.SUPPRESS
    )
    p.add_argument("--json", action="store_true", help="print a JSON array")
    p.set_defaults(func=run)


def _snippet(content: str, query: str) -> str:
    """About SNIPPET_CHARS of ``content`` on one line, around the first query word found."""
    flat = " ".join(content.split())
    lowered = flat.lower()
    at = -1
    for word in sorted(query.lower().split(), key=len, reverse=True):
        word = word.strip("?!.,;:¿¡\"'")
        if len(word) >= 3:
            at = lowered.find(word)
            if at >= 0:
                break
    start = max(0, at - SNIPPET_CHARS // 3) if at >= 0 else 0
    piece = flat[start : start + SNIPPET_CHARS]
    return ("…" if start else "") + piece + ("…" if start + SNIPPET_CHARS < len(flat) else "")


def _pick_user(conn: Any) -> uuid.UUID | None:
    rows = conn.execute(PEOPLE_WITH_MEMORY_SQL).fetchall()
    conn.commit()
    if len(rows) == 1:
        return cast(uuid.UUID, rows[0]["user_id"])
    return None


def run(args: argparse.Namespace) -> int:
    from pipeline.connections import database_url, search_database_url
    from pipeline.db import connect
    from pipeline.embedding import EmbedderError, get_embedder
    from pipeline.search import SearchError, current_import, embed_query, match_memories

    if not 1 <= args.limit <= 100:
        print("soulprint-import: --limit must be between 1 and 100", file=sys.stderr)
        return 2
    settings = Settings.from_env()
    search_url = search_database_url(settings)
    if search_url is None:
        print(
            "soulprint-import: set SEARCH_DATABASE_URL (the import_searcher role) to "
            "search; the worker's DATABASE_URL may not act as a person",
            file=sys.stderr,
        )
        return 2
    user = args.user
    if user is None:
        # Read-only: resolving a URL never migrates (issue 10). A role that may not list
        # people (the worker) simply cannot guess: the person is asked for below.
        try:
            with connect(database_url(settings)) as conn:
                user = _pick_user(conn)
        except psycopg.errors.InsufficientPrivilege:
            user = None
    if user is None:
        print(
            "soulprint-import: several people (or nobody) have a completed import; "
            "say whose memory to search with --user UUID",
            file=sys.stderr,
        )
        return 2
    with connect(search_url) as conn:
        try:
            target = current_import(conn, user)
            vector = None
            if args.mode != "lexical":
                vector = embed_query(get_embedder(settings), target, args.query)
            hits = match_memories(
                conn,
                user,
                args.query,
                vector,
                limit=args.limit,
                mode=args.mode,
                model=target.embedding_model,
            )
        except (SearchError, EmbedderError) as exc:
            print(f"soulprint-import: {exc}", file=sys.stderr)
            return 1
        except psycopg.Error as exc:
            # An operator's tool: the database's own first line says what to fix
            # (a missing grant or migration, a timeout); no traceback.
            first = (exc.diag.message_primary or str(exc)).splitlines()[0]
            print(f"soulprint-import: the database refused the search: {first}", file=sys.stderr)
            return 1
    if args.json:
        sys.stdout.write(orjson.dumps([h.to_json() for h in hits]).decode() + "\n")
        return 0
    if not hits:
        print("Nothing found.")
        return 0
    for n, hit in enumerate(hits, 1):
        when = hit.first_message_at.date().isoformat() if hit.first_message_at else "undated"
        title = hit.conversation_title or "(untitled)"
        print(f"{n}. {title}  ·  {when}  ·  score {hit.score:.4f}")
        print(textwrap.indent(textwrap.fill(_snippet(hit.content, args.query), 96), "   "))
    return 0
