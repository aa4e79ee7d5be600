"""What the relay moves and what one try of it produced."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Protocol
from uuid import UUID


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One row of ``import_events`` as the relay claimed it."""

    id: UUID
    job_id: UUID
    type: str
    payload: dict[str, Any]
    body: str  # payload::text, the exact text signed and sent
    attempts: int


class Verdict(StrEnum):
    """What one answer says, and so who it is about: the event or the endpoint."""

    DELIVERED = "delivered"  # 2xx
    # 503/429 with Retry-After: the endpoint is up and asks for time. Not the event's fault:
    # it spends none of the event's attempts and grows no backoff.
    BUSY = "busy"
    # No answer, a timeout, 5xx, 408/425/429 without Retry-After: the endpoint is unwell.
    ENDPOINT_FAILED = "endpoint_failed"
    # Any other 4xx: the endpoint's considered answer about this event (bad signature, bad
    # payload, too large). It says nothing about the endpoint's health.
    REJECTED = "rejected"


# Answers that mean "not now" rather than "not this": they are the endpoint's condition.
_TRANSIENT_4XX = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try, as event_deliveries records it."""

    status_code: int | None  # None: no HTTP answer (refused, reset, timed out)
    latency_ms: float
    error: str | None = None
    retry_after_s: float | None = None  # the answer's Retry-After, in seconds

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def verdict(self) -> Verdict:
        code = self.status_code
        if self.ok:
            return Verdict.DELIVERED
        if code in (429, 503) and self.retry_after_s is not None:
            return Verdict.BUSY
        if code is None or code >= 500 or code in _TRANSIENT_4XX:
            return Verdict.ENDPOINT_FAILED
        return Verdict.REJECTED


class Transport(Protocol):
    """Sends one event somewhere; ``via`` is what event_deliveries records."""

    via: str

    def send(self, event: OutboxEvent) -> Attempt: ...

    def close(self) -> None: ...
