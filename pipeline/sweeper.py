"""The sweeper: revive jobs whose worker died or whose event was never acted on.

The rules live in SQL (``sweep_import_jobs``): re-emit an event for an active job whose
lease expired, or that nobody took within ``stale_after`` while no instance shows a sign
of life (a job merely waiting in line behind live leases is reported 'waiting', with no
event: the instances pull it when a slot frees); after
``max_attempts`` claims, fail the job with a sentence the person can read. A Render cron job
runs one pass; local mode runs it in a loop.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from uuid import UUID

import psycopg

from pipeline.jobstore import JobStore
from pipeline.outbox_health import UNDELIVERED_WARN_SECONDS, outbox_lag
from pipeline.queries import QUERIES
from pipeline.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SweepAction:
    job_id: UUID
    action: str  # 'reemitted' | 'failed' | 'cancelled' | 'waiting'


def stale_after_s(settings: Settings) -> float:
    """How long an unacknowledged event or a silent job may sit before a re-emit."""
    return 2.0 * settings.lease_seconds


def run_sweep(
    conninfo: str, settings: Settings, *, stale_after: float | None = None
) -> list[SweepAction]:
    """One pass; returns what it did (empty when every job is healthy)."""
    stale = stale_after_s(settings) if stale_after is None else stale_after
    with psycopg.connect(conninfo, autocommit=True, connect_timeout=10) as conn:
        rows = JobStore.sweep_in(conn, stale, settings.max_attempts)
        pruned_row = conn.execute(QUERIES["prune_webhook_receipts"]).fetchone()
        assert pruned_row is not None  # a function's result: always one row
        pruned = pruned_row[0]
        lag = outbox_lag(conn.execute(QUERIES["oldest_unacknowledged_event"]).fetchone())
    if lag.stuck:
        # Re-emitting cannot help if nothing delivers: say so where an operator looks.
        log.warning(
            "sweep: %d event(s) undelivered, the oldest for %.0f s (over %.0f s): check "
            "delivery (pg_net and Vault on hosted Supabase, or the relay) and the receiver; "
            "`soulprint-import doctor` checks each piece",
            lag.unacknowledged,
            lag.oldest_age_s,
            UNDELIVERED_WARN_SECONDS,
        )
    if pruned:
        log.info("sweep: pruned %d old webhook receipts", pruned)
    actions = [SweepAction(UUID(str(job_id)), action) for job_id, action in rows]
    waiting = sum(a.action == "waiting" for a in actions)
    if waiting:
        # Not a fault: every instance is busy and these jobs are next in line.
        log.info("sweep: %d job(s) waiting for a free worker (not re-announced)", waiting)
    for a in actions:
        # Debug only: `soulprint-import sweep` prints each action itself (once).
        log.debug("sweep: job %s %s", a.job_id, a.action)
    return actions


def start_sweeper_loop(
    conninfo: str, settings: Settings, interval_s: float, stop_event: threading.Event
) -> threading.Thread:
    """Sweep every ``interval_s`` seconds in a daemon thread until ``stop_event`` is set."""

    def loop() -> None:
        while not stop_event.is_set():
            try:
                run_sweep(conninfo, settings)
            except psycopg.Error:
                # A blip must not end the loop: the next pass catches up.
                log.exception("sweep failed; retrying in %.0f s", interval_s)
            stop_event.wait(interval_s)

    thread = threading.Thread(target=loop, name="sweeper", daemon=True)
    thread.start()
    return thread
