"""The stage pool: ``capacity`` threads that pull runnable work whenever they are free.

Postgres is the queue; an event is only a doorbell (issue 15). A thread with nothing to do
sleeps until it is woken (``wake``: a verified webhook, a NOTIFY on ``import_events``) or
until ``poll_s`` seconds have passed, then asks each work source in turn for one unit.
Nothing is ever refused for lack of a slot: work waits in the database, claimable by any
instance, and the thread that frees up first takes it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from pipeline import lifecycle

log = logging.getLogger(__name__)

# One unit of work: claim something runnable and run it to its end. True: it claimed and
# ran one (there may be more: ask again at once); False: nothing runnable now.
WorkSource = Callable[[], bool]


class StagePool:
    """Daemon threads pulling from ``sources``.

    Daemon threads: a stage stuck past the shutdown grace must not keep the process alive;
    its lease expires and another instance (or the sweeper) takes the job on. Once
    ``lifecycle.shutting_down()`` no new unit is started.
    """

    def __init__(
        self,
        capacity: int,
        sources: Sequence[WorkSource],
        *,
        poll_s: float = 5.0,
        name: str = "stage",
    ) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self.sources = list(sources)
        self.poll_s = poll_s
        self._cond = threading.Condition()
        self._rings = 0  # wake() count: a thread compares it before and after a pull
        self._running = 0  # threads inside a unit of work
        self._stopped = False
        self._threads = [
            threading.Thread(target=self._work, args=(i,), name=f"{name}-{i}", daemon=True)
            for i in range(capacity)
        ]

    def start(self) -> None:
        """Start pulling (the app's lifespan calls this once it serves)."""
        for thread in self._threads:
            thread.start()

    @property
    def busy(self) -> int:
        """Threads running a unit of work now (what /healthz reports)."""
        return self._running

    def wake(self) -> None:
        """Something may be runnable: idle threads look now instead of at the next poll."""
        with self._cond:
            self._rings += 1
            self._cond.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        """Block until no unit runs, at most ``timeout`` seconds; True when idle."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._running, timeout)

    def close(self) -> None:
        """Stop the threads once their current unit ends (they are not joined)."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()

    # -- the threads -----------------------------------------------------------------

    def _work(self, index: int) -> None:
        # Each thread starts its round at a different source, so a source that always has
        # work (a long import's batches) cannot starve the others.
        turn = index
        while True:
            with self._cond:
                if self._stopped:
                    return
                seen = self._rings
            ran = False
            if not lifecycle.shutting_down():
                ran = self._pull_one(turn)
                turn += 1
            if not ran:
                self._sleep(seen)

    def _sleep(self, seen: int) -> None:
        """Until the next ring after ``seen``, a stop, or the poll interval. A ring that came
        during the pull is not lost: the count has already moved on."""
        with self._cond:
            self._cond.wait_for(lambda: self._stopped or self._rings != seen, self.poll_s)

    def _pull_one(self, turn: int) -> bool:
        """Ask each source (starting at ``turn``) for one unit; True when one ran."""
        n = len(self.sources)
        for k in range(n):
            source = self.sources[(turn + k) % n]
            with self._cond:
                self._running += 1
            try:
                if source():
                    return True
            except Exception:
                # The database is down or a bug: try again at the next ring or poll. A job
                # claimed before the error keeps its lease until it lapses, then is retaken.
                log.exception("work source failed")
            finally:
                with self._cond:
                    self._running -= 1
                    self._cond.notify_all()
        return False
