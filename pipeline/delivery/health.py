"""How an endpoint is doing, and so when the relay may next claim an event for it.

The retry policy follows the receiver's health, not the event's history (issue 15): one
dead or busy endpoint must not push everyone's events into the future (seed pitfall 2,
cold start, became "one dead receiver stalls everyone's events" under load).

A small circuit breaker with exponential backoff:

- **closed**: claim freely. A failure (no answer, 5xx, 408/425/429) makes the endpoint
  wait ``backoff_s * 2**(failures-1)`` seconds (capped at ``max_delay_s``) before the next
  claim, and only one event at a time is claimed until a delivery succeeds.
- **open**: after ``failure_threshold`` consecutive failures. Nothing is claimed until the
  cool-down (the same capped backoff) has passed; other relays take the events meanwhile.
- **half-open**: the cool-down has passed: exactly one event is claimed as a probe.
  Delivered: closed. Failed: open again, with the next (capped) cool-down.

"Busy" (503/429 with Retry-After) waits as asked (at least ``backoff_s``, at most
``max_delay_s``) and changes nothing else: the endpoint answered, so it neither counts as
a failure nor grows the exponent. A rejected event (another 4xx) says nothing about the
endpoint.

Why not pybreaker: it learns that a circuit is open only when a call is attempted, and the
relay must know before it claims (claiming is what holds an event away from other relays);
it has no notion of Retry-After either. The rules above fit in this file.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from enum import StrEnum

log = logging.getLogger(__name__)


class Circuit(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class EndpointHealth:
    """Consecutive failures and a not-before time for one endpoint. Thread-safe.

    ``clock`` returns monotonic seconds (tests pass their own).
    """

    def __init__(
        self,
        name: str,
        *,
        failure_threshold: int = 5,
        backoff_s: float = 0.5,
        max_delay_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1 or backoff_s < 0 or max_delay_s <= 0:
            raise ValueError("failure_threshold >= 1, backoff_s >= 0 and max_delay_s > 0")
        self.name = name
        self.failure_threshold = failure_threshold
        self.backoff_s = backoff_s
        self.max_delay_s = max_delay_s
        self._clock = clock
        self._lock = threading.Lock()
        self.failures = 0  # consecutive, since the last delivery
        self._not_before = 0.0  # clock time before which nothing is claimed

    @property
    def circuit(self) -> Circuit:
        with self._lock:
            if self.failures < self.failure_threshold:
                return Circuit.CLOSED
            return Circuit.OPEN if self._clock() < self._not_before else Circuit.HALF_OPEN

    def seconds_until_ready(self) -> float:
        """0 when an event may be claimed now, else how long to hold off."""
        with self._lock:
            return max(0.0, self._not_before - self._clock())

    def claim_limit(self, wanted: int) -> int:
        """How many events may be claimed now: none while holding off, one while failing
        (a probe), else ``wanted``."""
        with self._lock:
            if self._clock() < self._not_before:
                return 0
            return 1 if self.failures else wanted

    def delivered(self) -> None:
        """The endpoint took an event: close the circuit, forget the backoff."""
        with self._lock:
            if self.failures >= self.failure_threshold:
                log.info("endpoint %s recovered: circuit closed", self.name)
            self.failures = 0
            self._not_before = 0.0

    def answered(self) -> None:
        """The endpoint gave its considered answer (a 4xx about one event): it is up."""
        self.delivered()

    def failed(self) -> float:
        """The endpoint failed an attempt; returns the seconds until the next claim."""
        with self._lock:
            self.failures += 1
            delay = min(self.max_delay_s, self.backoff_s * 2.0 ** min(self.failures - 1, 30))
            self._not_before = self._clock() + delay
            if self.failures == self.failure_threshold:
                log.warning(
                    "endpoint %s failed %d times in a row: circuit open, probing in %.1f s",
                    self.name,
                    self.failures,
                    delay,
                )
            return delay

    def busy(self, retry_after_s: float) -> float:
        """The endpoint asked for ``retry_after_s``; returns the wait honoured: capped at
        ``max_delay_s``, and at least ``backoff_s`` (``Retry-After: 0`` from a receiver that
        stays busy must not become a loop that spends nothing and never stops)."""
        with self._lock:
            delay = min(self.max_delay_s, max(self.backoff_s, retry_after_s))
            self._not_before = max(self._not_before, self._clock() + delay)
            return delay
