"""The outbox relay: import_events -> signed POST to the receiver (or to Svix), logged.

Local mode and any deployment without pg_net. LISTEN gives latency, polling is the fallback.
Events are claimed one at a time (query relay_claim_due in pipeline/sql/queries.sql): a
relay holds at most the event in flight, so a receiver that hangs or dies holds up one event
for at most one timeout, never a batch. When and how often it claims follows its endpoint's
health (health.EndpointHealth): a failing endpoint makes its relay stop claiming, and the
events go to other relays at once.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

from pipeline.delivery.health import EndpointHealth
from pipeline.delivery.http_transport import HttpTransport
from pipeline.delivery.svix_transport import SvixTransport
from pipeline.delivery.types import Attempt, OutboxEvent, Transport, Verdict
from pipeline.queries import QUERIES
from pipeline.settings import Settings

log = logging.getLogger(__name__)

CHANNEL = "import_events"


class Relay:
    """Moves due outbox events to a transport, one at a time, with an attempt log.

    Delays (seconds): ``backoff_s`` doubles per consecutive endpoint failure and per
    rejection of one event, never past ``max_delay_s``; a Retry-After is capped there too.
    ``claim_s`` must outlast one send (``timeout_s`` for HTTP).
    """

    def __init__(
        self,
        conninfo: str,
        receiver_url: str | None = None,
        secret: str | None = None,
        *,
        transport: Transport | None = None,
        poll_interval_s: float = 5.0,
        backoff_s: float = 0.5,
        max_delay_s: float = 60.0,
        failure_threshold: int = 5,
        max_attempts: int = 25,
        claim_s: float = 120.0,
        timeout_s: float = 30.0,
    ) -> None:
        if transport is None:
            if not (receiver_url and secret):
                raise ValueError("Relay needs receiver_url and secret, or a transport")
            transport = HttpTransport(receiver_url, secret, timeout_s=timeout_s)
        self.conninfo = conninfo
        self.transport = transport
        self.poll_interval_s = poll_interval_s
        self.backoff_s = backoff_s
        self.max_delay_s = max_delay_s
        self.max_attempts = max_attempts
        self.claim_s = claim_s
        self.health = EndpointHealth(
            getattr(transport, "url", transport.via),
            failure_threshold=failure_threshold,
            backoff_s=backoff_s,
            max_delay_s=max_delay_s,
        )
        self._pool: ConnectionPool | None = None
        self._pool_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, conninfo: str, settings: Settings, **kw: Any) -> Relay:
        """Svix mode when SVIX_API_KEY and SVIX_APP_ID are set, else direct to RECEIVER_URL.
        RELAY_MAX_DELAY_SECONDS and RELAY_BREAKER_FAILURES apply unless ``kw`` says."""
        kw.setdefault("max_delay_s", settings.relay_max_delay_seconds)
        kw.setdefault("failure_threshold", settings.relay_breaker_failures)
        if settings.svix_api_key and settings.svix_app_id:
            transport = SvixTransport(
                settings.svix_api_key, settings.svix_app_id, server_url=settings.svix_server_url
            )
            return cls(conninfo, transport=transport, **kw)
        if not (settings.receiver_url and settings.webhook_secret):
            raise ValueError("set RECEIVER_URL and WEBHOOK_SECRET (or SVIX_API_KEY + SVIX_APP_ID)")
        return cls(conninfo, settings.receiver_url, settings.webhook_secret, **kw)

    # One round --------------------------------------------------------------------------

    def deliver_pending(self, limit: int = 100) -> int:
        """Send due events, one claim at a time, while the endpoint is fit to take them;
        return how many got through (at most ``limit``)."""
        delivered = 0
        for _ in range(limit):
            if self._stop.is_set() or not self.health.claim_limit(1):
                break
            event = self._claim()
            if event is None:
                break
            delivered += self._deliver(event) is Verdict.DELIVERED
        return delivered

    def _claim(self) -> OutboxEvent | None:
        params = {"limit": 1, "claim_s": self.claim_s, "max_attempts": self.max_attempts}
        with self._db().connection() as conn:
            row = (
                conn.cursor(row_factory=dict_row)
                .execute(QUERIES["relay_claim_due"], params)
                .fetchone()
            )
        if row is None:
            return None
        return OutboxEvent(
            row["id"], row["job_id"], row["type"], row["payload"], row["body"], row["attempts"]
        )

    def _deliver(self, event: OutboxEvent) -> Verdict:
        """One try; then the event is marked relayed or released, and the endpoint's health
        updated. Whose fault a failure was decides who waits (types.Verdict)."""
        attempt = self.transport.send(event)
        verdict = attempt.verdict
        with self._db().connection() as conn:
            conn.execute(
                QUERIES["relay_log_attempt"],
                (event.id, attempt.status_code, attempt.latency_ms, attempt.error, self.via),
            )
            if verdict is Verdict.DELIVERED:
                conn.execute(QUERIES["relay_mark_relayed"], {"id": event.id})
                self.health.delivered()
                return verdict
            spent, delay = self._release_terms(event, attempt, verdict)
            conn.execute(
                QUERIES["relay_release"],
                {"id": event.id, "spent": spent, "error": attempt.error, "delay": delay},
            )
        log.warning(
            "event %s not delivered (%s: %s); endpoint waits %.1f s, event due in %.1f s",
            event.id,
            verdict,
            attempt.error,
            self.health.seconds_until_ready(),
            delay,
        )
        return verdict

    def _release_terms(
        self, event: OutboxEvent, attempt: Attempt, verdict: Verdict
    ) -> tuple[int, float]:
        """(attempts spent, seconds until the event is due again) for an undelivered try;
        also tells the endpoint's health what the answer said about it."""
        if verdict is Verdict.BUSY:
            # The endpoint asked for time: it waits, the event does not, no attempt is spent.
            self.health.busy(attempt.retry_after_s or 0.0)
            return 0, 0.0
        if verdict is Verdict.ENDPOINT_FAILED:
            # The endpoint's fault: it backs off; the event is free for any other relay now.
            self.health.failed()
            return 1, 0.0
        # Rejected: about this event alone. It backs off by its own attempts; the endpoint,
        # which answered, keeps going with the next event.
        self.health.answered()
        return 1, min(self.max_delay_s, self.backoff_s * 2.0 ** min(event.attempts, 30))

    @property
    def via(self) -> str:
        return self.transport.via

    def _db(self) -> ConnectionPool:
        """The relay's connections, opened on first use (again after stop())."""
        with self._pool_lock:
            if self._pool is None:
                pool = ConnectionPool(
                    self.conninfo,
                    min_size=1,
                    max_size=2,
                    open=False,
                    timeout=10,
                    check=ConnectionPool.check_connection,
                )
                pool.open(wait=True)
                self._pool = pool
            return self._pool

    # The loop ---------------------------------------------------------------------------

    def start(self) -> None:
        """Deliver in a background thread until stop()."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="relay", daemon=True)
        self._thread.start()

    def request_stop(self) -> None:
        """Finish the event in hand, then leave run() (safe from a signal handler)."""
        self._stop.set()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None
        with self._pool_lock:
            if self._pool is not None:
                self._pool.close()
                self._pool = None
        self.transport.close()

    def run(self) -> None:
        """LISTEN, deliver what is due, sleep until a NOTIFY, the next due time or the poll;
        while the endpoint is held off, sleep out the hold and claim nothing."""
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as listener:
                    listener.execute(QUERIES["listen_import_events"])
                    while not self._stop.is_set():
                        # Drain: a full round means more may be waiting.
                        while self.deliver_pending() and not self._stop.is_set():
                            pass
                        self._wait(listener)
            except Exception:
                # The relay thread must outlive any one failure: log it and start over.
                log.exception("relay round failed; retrying")
                self._stop.wait(min(self.poll_interval_s, 5.0))

    def _wait(self, listener: psycopg.Connection[Any]) -> None:
        hold = self.health.seconds_until_ready()
        if hold > 0:
            # NOTIFYs queue up on the listener meanwhile; the next wait sees them at once.
            self._stop.wait(hold)
            return
        due = self._seconds_to_next_due()
        deadline = time.monotonic() + max(0.0, min(self.poll_interval_s, due))
        # Short slices so stop() is honoured promptly.
        while not self._stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            for _ in listener.notifies(timeout=min(left, 0.5), stop_after=1):
                return

    def _seconds_to_next_due(self) -> float:
        with self._db().connection() as conn:
            row = conn.execute(
                QUERIES["relay_next_due"], {"max_attempts": self.max_attempts}
            ).fetchone()
        return float(row[0]) if row and row[0] is not None else self.poll_interval_s
