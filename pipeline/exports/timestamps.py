"""Export timestamps to float epoch seconds, or None; never an exception."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

# What datetime (and so every consumer downstream) can represent: years 1..9999.
_MIN_EPOCH = -62_135_596_800.0
_MAX_EPOCH = 253_402_300_799.0


def epoch_or_none(value: Any, *, iso: bool = True) -> float | None:
    """A float epoch for numbers and (when ``iso``) ISO-8601 strings; None otherwise."""
    t: float | None
    if type(value) is float or type(value) is int:  # bool is not a time
        try:
            t = float(value)
        except OverflowError:  # an integer literal with hundreds of digits
            return None
    elif iso and isinstance(value, str):
        t = _parse_iso(value)
        if t is None:
            return None
    else:
        return None
    if math.isfinite(t) and _MIN_EPOCH <= t <= _MAX_EPOCH:
        return t
    return None


# What PostgreSQL's to_timestamp() takes without complaint, as the stages store times: a
# garbage time must never fail a batch, so it is stored as NULL.
STORABLE_MAX_EPOCH = 32_503_680_000.0  # year 3000


def storable_epoch(value: float | None) -> float | None:
    """``value`` when the database will store it as a time (1970..3000), else None."""
    return value if value is not None and 0.0 <= value <= STORABLE_MAX_EPOCH else None


def _parse_iso(text: str) -> float | None:
    text = text.strip()
    if not 8 <= len(text) <= 64 or not text[:4].isdigit():
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)  # exports write UTC
    try:
        return parsed.timestamp()
    except (OverflowError, OSError, ValueError):
        return None
