"""A bounded pool of stage threads: full means "retry later", never an unbounded queue."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import cast

log = logging.getLogger(__name__)

_STOP = object()


class StagePool:
    """``capacity`` daemon threads; ``try_submit`` refuses work instead of queueing it.

    A slot is reserved first (``reserve``) so the caller can refuse a webhook with 503
    before recording anything, then filled (``submit``) or given back (``release``).
    Daemon threads: a stage stuck past the shutdown grace must not keep the process alive;
    its lease expires and the sweeper revives the job.
    """

    def __init__(self, capacity: int, *, name: str = "stage") -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self.capacity = capacity
        self._tasks: queue.SimpleQueue[object] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._reserved = 0  # slots handed out by reserve(), running or about to
        self._running = 0
        self._idle = threading.Condition(self._lock)
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{i}", daemon=True)
            for i in range(capacity)
        ]
        for thread in self._threads:
            thread.start()

    @property
    def busy(self) -> int:
        """Slots reserved or running (what /healthz reports)."""
        return self._reserved

    def reserve(self) -> bool:
        with self._lock:
            if self._reserved >= self.capacity:
                return False
            self._reserved += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._reserved -= 1

    def submit(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` in a reserved slot; the slot is freed when it returns."""
        with self._lock:
            self._running += 1
        self._tasks.put(fn)

    def try_submit(self, fn: Callable[[], None]) -> bool:
        if not self.reserve():
            return False
        self.submit(fn)
        return True

    def wait_idle(self, timeout: float) -> bool:
        """Block until no task runs, at most ``timeout`` seconds; True when idle."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._running, timeout)

    def close(self) -> None:
        for _ in self._threads:
            self._tasks.put(_STOP)

    def _work(self) -> None:
        while True:
            fn = self._tasks.get()
            if fn is _STOP:
                return
            try:
                cast(Callable[[], None], fn)()  # put() takes only these, and _STOP
            except Exception:
                # The job keeps its lease until it expires; the sweeper re-emits it.
                log.exception("stage task failed")
            finally:
                with self._idle:
                    self._running -= 1
                    self._reserved -= 1
                    self._idle.notify_all()
