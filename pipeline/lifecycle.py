"""Process-wide shutdown flag: set on SIGTERM, checked by stages between batches."""

from __future__ import annotations

import threading

_shutting_down = threading.Event()


def request_shutdown() -> None:
    """Stop taking events; running stages checkpoint and release their lease."""
    _shutting_down.set()


def shutting_down() -> bool:
    return _shutting_down.is_set()


def reset() -> None:
    """For tests that run several apps in one process."""
    _shutting_down.clear()
