"""Keeps a claimed job's lease alive while its stage runs, whatever one batch costs.

The lease should expire only when the process holding it is gone (killed, OOM, host
lost): then the sweeper revives the job. A slow batch on a busy machine, or a long LLM
call, must not let a second worker take over a job that is still running.

Nor may a stage that hangs (a query on a connection the network dropped, a lock that is
never granted) hold its job forever: when the stage has shown no progress for
``stall_seconds``, the keeper stops renewing, the lease lapses and the sweeper hands the
job on. Should the hung thread wake up, its next write finds the job no longer its own.

The keeper is the only thing that renews the lease (issue 10: one mechanism). The stage
reads what the keeper learnt at its next batch (StageContext._obey): ``lost`` (another
worker took the job: stop without writing) and ``cancel_requested`` (stop and cancel).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from uuid import UUID

from pipeline.jobstore import JobStore

log = logging.getLogger("soulprint.stages")


class LeaseKeeper:
    def __init__(
        self,
        store: JobStore,
        job_id: UUID,
        owner: str,
        lease_seconds: int,
        *,
        progressed: Callable[[], float] | None = None,
        stall_seconds: float | None = None,
    ) -> None:
        self.store = store
        self.job_id = job_id
        self.owner = owner
        self.interval = max(lease_seconds / 3.0, 0.5)
        self.progressed = progressed  # monotonic time of the stage's last sign of life
        self.stall_seconds = stall_seconds
        self.lost = False  # another worker holds the job now: the stage must stop
        self.cancel_requested = False  # the person asked to cancel
        self.stalled = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if self._stage_hung():
                log.error(
                    "job %s: no progress for %.0f s; letting the lease lapse so the "
                    "sweeper can hand the job on",
                    self.job_id,
                    self.stall_seconds,
                )
                self.stalled = True
                return
            try:
                outcome = self.store.renew(self.job_id, self.owner)
            except Exception:
                continue  # the database blinked; the lease has two more intervals to go
            if outcome == "not_yours":
                log.warning(
                    "job %s: lease taken over; the stage stops at its next batch", self.job_id
                )
                self.lost = True
                return
            if outcome == "cancel_requested":
                self.cancel_requested = True

    def _stage_hung(self) -> bool:
        if self.progressed is None or self.stall_seconds is None:
            return False
        return time.monotonic() - self.progressed() > self.stall_seconds

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
