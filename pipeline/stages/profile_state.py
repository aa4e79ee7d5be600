"""The profile under construction, checkpointed next to the parsing stage's rows.

Parsing folds every conversation into a `ProfileBuilder` as it streams past and saves the
builder's state in the same transaction as each batch (public.import_profile_states), so a
restarted worker resumes the profile exactly where the rows resume. The soulprint stage
then only loads the finished state: the export is read once.
"""

from __future__ import annotations

from typing import Any

import orjson
import psycopg

from pipeline.queries import QUERIES
from pipeline.soulprint import ProfileBuilder


def save(
    conn: psycopg.Connection,
    job_id: Any,
    user_id: Any,
    builder: ProfileBuilder,
    export: dict[str, Any],
) -> None:
    """Write the builder's state (and what the reader said about the file) in `conn`'s
    open transaction; the caller commits it with the batch."""
    state = {"builder": builder.to_state(), "export": export}
    conn.execute(
        QUERIES["save_profile_state"],
        {"job": job_id, "user": user_id, "state": orjson.dumps(state).decode()},
    )


def load(conn: psycopg.Connection, job_id: Any) -> tuple[ProfileBuilder, dict[str, Any]] | None:
    """(builder, export facts) as last committed, or None when there is none (or it was
    written by an incompatible version: the caller starts over)."""
    row = conn.execute(QUERIES["load_profile_state"], (job_id,)).fetchone()
    if row is None:
        return None
    state = orjson.loads(row[0])
    try:
        return ProfileBuilder.from_state(state["builder"]), dict(state.get("export") or {})
    except (KeyError, ValueError, TypeError):
        return None
