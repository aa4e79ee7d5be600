"""The person's custom instructions and ChatGPT's memory notes, kept on the import.

The parsing stage stores what each batch of conversations held (:func:`store`, inside the
batch's transaction); a note repeated across conversations or batches stays one row, its
first and last sighting widened. The soulprint stage reads them back (:func:`load`) as
plain data for the profile: ``self_description`` (the person's own words) and
``memory_notes`` (what ChatGPT remembered about them: its words, not theirs).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import psycopg

from pipeline.exports.models import PersonNote
from pipeline.exports.timestamps import storable_epoch
from pipeline.queries import QUERIES

SELF_KINDS = ("about_user", "about_model")
MEMORY_KIND = "memory_note"


def store(conn: psycopg.Connection, job_id: Any, user_id: Any, notes: Iterable[PersonNote]) -> None:
    """Upsert ``notes`` (de-duplicated already or not) for the job; no commit."""
    batch = list(notes)
    if not batch:
        return
    conn.execute(
        QUERIES["upsert_person_notes"],
        {
            "job": job_id,
            "user": user_id,
            "kinds": [n.kind for n in batch],
            "notes": [n.text for n in batch],
            "first_at": [storable_epoch(n.first_time) for n in batch],
            "last_at": [storable_epoch(n.last_time) for n in batch],
            "convs": [n.conversation_index for n in batch],
            "ords": [n.ordinal for n in batch],
        },
    )


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def load(conn: psycopg.Connection, job_id: Any) -> dict[str, list[dict[str, Any]]]:
    """``{"self_description": [...], "memory_notes": [...]}`` for the profile; each entry
    ``{"text", "kind", "first_seen", "last_seen"}`` (ISO 8601 UTC or None)."""
    out: dict[str, list[dict[str, Any]]] = {"self_description": [], "memory_notes": []}
    for kind, note, first, last in conn.execute(
        QUERIES["select_person_notes"], {"job": job_id}
    ).fetchall():
        key = "memory_notes" if kind == MEMORY_KIND else "self_description"
        out[key].append(
            {"text": note, "kind": kind, "first_seen": _iso(first), "last_seen": _iso(last)}
        )
    return out
