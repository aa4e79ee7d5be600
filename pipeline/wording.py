"""Small pieces of the sentences people read."""

from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """``"1 conversation"``, ``"2,000 conversations"``: a count with its noun agreeing."""
    return f"{n:,} {noun if n == 1 else (plural or noun + 's')}"
