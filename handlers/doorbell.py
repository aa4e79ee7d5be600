"""LISTEN on ``import_events``: the database rings the stage pool's bell.

Every stage change, release and sweep emits an event with ``pg_notify('import_events', id)``
at commit (public.emit_import_event). One connection per instance holds the LISTEN and
wakes the local pool, so a job becomes runnable here within milliseconds even when its
webhook goes to another instance or is delayed. It is only a shortcut: the pool also
polls, so a dropped connection (reconnected after a pause) or a transaction pooler, which
cannot hold a LISTEN (LISTEN_FOR_WORK=false), costs latency, never work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

import psycopg

from pipeline.db import APPLICATION_NAME
from pipeline.queries import QUERIES

log = logging.getLogger(__name__)

CHANNEL = "import_events"
# Seconds between reconnection attempts after the listening connection failed.
RECONNECT_S = 5.0


class Doorbell:
    """A daemon thread LISTENing on ``import_events``, calling ``ring()`` per notification."""

    def __init__(self, conninfo: str, ring: Callable[[], None]) -> None:
        self.conninfo = conninfo
        self.ring = ring
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="doorbell", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                with psycopg.connect(
                    self.conninfo,
                    autocommit=True,
                    connect_timeout=10,
                    application_name=f"{APPLICATION_NAME} doorbell",
                ) as conn:
                    conn.execute(QUERIES["listen_import_events"])
                    # Whatever was emitted while we were not listening is found by this ring.
                    self.ring()
                    while not self._stop.is_set():
                        # Short slices so stop() is honoured promptly.
                        for _ in conn.notifies(timeout=0.5, stop_after=1):
                            self.ring()
            except Exception as exc:
                log.warning("doorbell connection lost (%s); polling meanwhile", type(exc).__name__)
                self._stop.wait(RECONNECT_S)
