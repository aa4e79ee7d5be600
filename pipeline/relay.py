"""The outbox relay: import_events -> signed POST to the receiver (or to Svix), logged.

Local mode and any deployment without pg_net. LISTEN gives latency, polling is the fallback;
``FOR UPDATE SKIP LOCKED`` plus a short claim (next_attempt_at pushed forward) means several
relays never send one event twice in a round, and no row lock is held while a POST is in
flight (the receiver updates that very row to acknowledge it).
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol
from uuid import UUID

import httpx
import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from svix.webhooks import Webhook
from tenacity import RetryCallState, Retrying, retry_if_result, stop_after_attempt

from pipeline.retry_after import retry_after_seconds
from pipeline.settings import Settings

log = logging.getLogger(__name__)

CHANNEL = "import_events"
# httpx writes headers and body in two sends; with Nagle on, the body waits for the
# receiver's delayed ACK (~40 ms per event).
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]

# Due, not handed over, not acknowledged; claimed by pushing next_attempt_at past the round.
CLAIM_DUE = """
with due as (
  select id from import_events
   where acknowledged_at is null and relayed_at is null
     and next_attempt_at <= now() and attempts < %(max_attempts)s
   order by next_attempt_at, created_at
   limit %(limit)s
   for update skip locked
)
update import_events e
   set next_attempt_at = now() + make_interval(secs => %(claim_s)s)
  from due where e.id = due.id
returning e.id, e.job_id, e.type, e.payload, e.payload::text as body, e.attempts
"""
LOG_ATTEMPT = """
insert into event_deliveries (event_id, status_code, latency_ms, error, via)
values (%s, %s, %s, %s, %s)
"""
MARK_RELAYED = """
update import_events
   set relayed_at = now(), attempts = attempts + %(n)s, last_error = null
 where id = %(id)s
"""
RESCHEDULE = """
update import_events
   set attempts = attempts + %(n)s, last_error = %(error)s,
       next_attempt_at = now() + make_interval(secs => %(delay)s)
 where id = %(id)s
"""
NEXT_DUE = """
select extract(epoch from min(next_attempt_at) - now()) from import_events
 where acknowledged_at is null and relayed_at is null and attempts < %(max_attempts)s
"""


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    id: UUID
    job_id: UUID
    type: str
    payload: dict[str, Any]
    body: str  # payload::text, the exact text signed and sent
    attempts: int


@dataclass(frozen=True, slots=True)
class Attempt:
    """One try, as event_deliveries records it."""

    status_code: int | None
    latency_ms: float
    error: str | None = None
    retry_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        # A 4xx is the receiver's considered answer (bad signature, bad payload): retrying at
        # once won't change it. The attempt is still rescheduled with backoff, as Svix does.
        code = self.status_code
        return code is None or code >= 500 or code in (408, 425, 429)


class Transport(Protocol):
    via: str

    def send(self, event: OutboxEvent) -> Attempt: ...


def sign_headers(secret: str | Webhook, msg_id: str, body: str) -> dict[str, str]:
    """Standard Webhooks headers for ``body``, signed now."""
    hook = secret if isinstance(secret, Webhook) else Webhook(secret)
    now = datetime.now(UTC)
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": hook.sign(msg_id=msg_id, timestamp=now, data=body),
        "content-type": "application/json",
    }


class HttpTransport:
    """Sign with svix and POST to the receiver."""

    via = "relay"

    def __init__(
        self,
        receiver_url: str,
        secret: str,
        *,
        timeout_s: float = 30.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.url = receiver_url
        self._hook = Webhook(secret)
        # A sleeping Render instance takes 30-60 s to wake: the connect timeout rides it out.
        self._client = client or httpx.Client(
            transport=httpx.HTTPTransport(socket_options=NODELAY),
            timeout=httpx.Timeout(timeout_s, connect=timeout_s),
        )

    def send(self, event: OutboxEvent) -> Attempt:
        return self.post(str(event.id), event.body)

    def post(self, msg_id: str, body: str) -> Attempt:
        headers = sign_headers(self._hook, msg_id, body)
        started = time.perf_counter()
        try:
            resp = self._client.post(self.url, content=body.encode(), headers=headers)
        except httpx.HTTPError as exc:
            elapsed = (time.perf_counter() - started) * 1000
            return Attempt(None, elapsed, f"{type(exc).__name__}: {exc}"[:500])
        elapsed = (time.perf_counter() - started) * 1000
        error = None if resp.is_success else f"HTTP {resp.status_code}: {resp.text[:300]}"
        return Attempt(resp.status_code, elapsed, error, retry_after_seconds(resp.headers))

    def close(self) -> None:
        self._client.close()


def worker_conninfo(settings: Settings) -> str:
    """DATABASE_URL (the import_worker role), else the embedded server of local mode. Never
    migrates (see pipeline.connections)."""
    from pipeline.connections import worker_database_url

    return worker_database_url(settings)


class Relay:
    """Moves due outbox events to a transport, with retries and an attempt log."""

    def __init__(
        self,
        conninfo: str,
        receiver_url: str | None = None,
        secret: str | None = None,
        *,
        transport: Transport | None = None,
        poll_interval_s: float = 5.0,
        attempts_per_round: int = 3,
        backoff_s: float = 0.5,
        max_backoff_s: float = 600.0,
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
        self.attempts_per_round = attempts_per_round
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.max_attempts = max_attempts
        self.claim_s = claim_s
        self._pool: ConnectionPool | None = None
        self._pool_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, conninfo: str, settings: Settings, **kw: Any) -> Relay:
        """Svix mode when SVIX_API_KEY and SVIX_APP_ID are set, else direct to RECEIVER_URL."""
        if settings.svix_api_key and settings.svix_app_id:
            from pipeline.svix_delivery import SvixTransport

            transport = SvixTransport(
                settings.svix_api_key, settings.svix_app_id, server_url=settings.svix_server_url
            )
            return cls(conninfo, transport=transport, **kw)
        if not (settings.receiver_url and settings.webhook_secret):
            raise ValueError("set RECEIVER_URL and WEBHOOK_SECRET (or SVIX_API_KEY + SVIX_APP_ID)")
        return cls(conninfo, settings.receiver_url, settings.webhook_secret, **kw)

    # One round --------------------------------------------------------------------------

    def deliver_pending(self, limit: int = 100) -> int:
        """Send every due event once (with quick retries); return how many got through."""
        with self._db().connection() as conn:
            rows = (
                conn.cursor(row_factory=dict_row)
                .execute(
                    CLAIM_DUE,
                    {"limit": limit, "claim_s": self.claim_s, "max_attempts": self.max_attempts},
                )
                .fetchall()
            )
        events = [
            OutboxEvent(r["id"], r["job_id"], r["type"], r["payload"], r["body"], r["attempts"])
            for r in rows
        ]
        return sum(self._deliver(event) for event in events)

    def _deliver(self, event: OutboxEvent) -> bool:
        tries: list[Attempt] = []

        def attempt() -> Attempt:
            result = self.transport.send(event)
            tries.append(result)
            self._log(event.id, result)
            return result

        retrying = Retrying(
            stop=stop_after_attempt(self.attempts_per_round),
            wait=self._inline_wait,
            # A Retry-After (the receiver's pool is full) is honoured by rescheduling the
            # event, not by sleeping here while other due events wait.
            retry=retry_if_result(
                lambda a: (
                    not a.ok and a.retryable and a.retry_after_s is None and not self._stop.is_set()
                )
            ),
            # tenacity types `outcome` optional; it is set once an attempt has run, as it
            # has whenever this callback is called.
            retry_error_callback=lambda state: state.outcome.result(),  # type: ignore[union-attr]
        )
        last: Attempt = retrying(attempt)
        with self._db().connection() as conn:
            if last.ok:
                conn.execute(MARK_RELAYED, {"id": event.id, "n": len(tries)})
            else:
                total = event.attempts + len(tries)
                delay = last.retry_after_s or min(
                    self.max_backoff_s, self.backoff_s * 2 ** min(total, 30)
                )
                conn.execute(
                    RESCHEDULE,
                    {"id": event.id, "n": len(tries), "error": last.error, "delay": delay},
                )
                log.warning(
                    "event %s not delivered (%s); next try in %.1f s", event.id, last.error, delay
                )
        return last.ok

    def _inline_wait(self, state: RetryCallState) -> float:
        wait: float = min(self.max_backoff_s, self.backoff_s * 2 ** (state.attempt_number - 1))
        return wait

    def _log(self, event_id: UUID, a: Attempt) -> None:
        with self._db().connection() as conn:
            conn.execute(
                LOG_ATTEMPT, (event_id, a.status_code, a.latency_ms, a.error, self.transport.via)
            )

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
        close = getattr(self.transport, "close", None)
        if close:
            close()

    def run(self) -> None:
        """LISTEN, deliver what is due, sleep until a NOTIFY, the next due time or the poll."""
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.conninfo, autocommit=True) as listener:
                    listener.execute(f"listen {CHANNEL}")
                    while not self._stop.is_set():
                        # Drain: a full batch means more may be waiting.
                        while self.deliver_pending() and not self._stop.is_set():
                            pass
                        self._wait(listener)
            except Exception:
                # The relay thread must outlive any one failure: log it and start over.
                log.exception("relay round failed; retrying")
                self._stop.wait(min(self.poll_interval_s, 5.0))

    def _wait(self, listener: psycopg.Connection[Any]) -> None:
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
            row = conn.execute(NEXT_DUE, {"max_attempts": self.max_attempts}).fetchone()
        return float(row[0]) if row and row[0] is not None else self.poll_interval_s
