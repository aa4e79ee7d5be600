"""Errors a stage raises on purpose: each carries a code and a sentence a person understands."""

from __future__ import annotations


class StageError(Exception):
    """The import cannot go on; the job ends `failed` with this code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class TransientError(Exception):
    """A dependency failed in a way worth another attempt later (5xx, timeouts)."""


class StopStage(Exception):
    """Base for the ways a stage stops early without failing."""


class CancelRequested(StopStage):
    """The person asked to cancel: remove this import's partial data, stage `cancelled`."""


class LeaseLost(StopStage):
    """Another worker holds the job now: stop without touching it."""


class ShuttingDown(StopStage):
    """SIGTERM: the last batch is committed; release the lease for another worker."""
