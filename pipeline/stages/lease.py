"""Keeps a claimed job's lease alive while its stage runs, whatever one batch costs.

The lease should expire only when the process holding it is gone (killed, OOM, host
lost): then the sweeper revives the job. A slow batch on a busy machine, or a long LLM
call, must not let a second worker take over a job that is still running.
"""

from __future__ import annotations

import threading
from types import TracebackType
from uuid import UUID

from pipeline.jobstore import JobStore


class LeaseKeeper:
    def __init__(self, store: JobStore, job_id: UUID, owner: str, lease_seconds: int) -> None:
        self.store = store
        self.job_id = job_id
        self.owner = owner
        self.interval = max(lease_seconds / 3.0, 0.5)
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lease-{job_id}", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                # Empty counters: renew the lease only; the stage owns the numbers.
                outcome = self.store.progress(self.job_id, self.owner, {}, None, force=True)
            except Exception:
                continue
            if outcome == "not_yours":
                self.lost = True
                return

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
