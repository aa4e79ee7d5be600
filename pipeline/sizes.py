"""Byte counts as a person reads them."""

from __future__ import annotations


def human_bytes(n: float) -> str:
    """``532 bytes``, ``1.5 KB``, ``12.0 MB``, ``1.1 GB`` (decimal units, as Storage shows
    them). Small values keep their digits: a 1,000-byte limit is never "0 MB"."""
    if n < 1000:
        return f"{n:,.0f} bytes"
    for unit, scale in (("KB", 1e3), ("MB", 1e6), ("GB", 1e9)):
        if n < scale * 1000 or unit == "GB":
            return f"{n / scale:,.1f} {unit}"
    raise AssertionError("unreachable")
