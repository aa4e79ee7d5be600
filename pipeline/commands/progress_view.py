"""Terminal progress: one line per stage with counts, rate and ETA, redrawn in place.

Finished stages are printed from the job's own stage timings, so a stage that begins and
ends between two looks at the row still gets its line.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TextIO

from pipeline.stage import WORKED, Stage

BAR = 24


def _bar(done: float, total: float) -> str:
    frac = 0.0 if total <= 0 else min(1.0, done / total)
    full = int(frac * BAR)
    return "[" + "#" * full + "." * (BAR - full) + f"] {frac * 100:5.1f}%"


def _eta(done: float, total: float, rate: float) -> str:
    if rate <= 0 or total <= done:
        return ""
    secs = int((total - done) / rate)
    return f"  ETA {secs // 60}:{secs % 60:02d}"


def _seconds(timing: dict[str, str] | None) -> float | None:
    if not timing or not timing.get("ended_at") or not timing.get("started_at"):
        return None
    start = datetime.fromisoformat(timing["started_at"])
    return (datetime.fromisoformat(timing["ended_at"]) - start).total_seconds()


def _size(n: float) -> str:
    return f"{n / 1e6:,.1f} MB" if n >= 1e6 else f"{n / 1e3:,.1f} KB"


def _value(stage: str, job: Any) -> float:
    return {
        "downloading": job.bytes_done,
        "parsing": job.conversations,
        "embedding": job.embedded_chunks,
    }.get(stage, 0) or 0


def _parse_bytes(job: Any) -> tuple[float, float]:
    """(JSON bytes read, JSON bytes in all) from the parsing stage's last checkpoint."""
    checkpoint = getattr(job, "checkpoint", None) or {}
    return float(checkpoint.get("read_bytes") or 0), float(checkpoint.get("total_bytes") or 0)


def _counts(stage: str, job: Any) -> str:
    if stage == "downloading":
        return _size(job.bytes_done)
    if stage == "parsing":
        return (
            f"{job.conversations:,} conversations  {job.messages:,} messages  {job.chunks:,} chunks"
        )
    if stage == "embedding":
        return f"{job.embedded_chunks:,}/{job.chunks:,} chunks"
    return ""


@dataclass
class ProgressView:
    out: TextIO = sys.stderr
    _printed: set[str] = field(default_factory=set)
    _stage: str | None = None
    _started: float = field(default_factory=time.monotonic)
    _start_value: float = 0.0
    _start_bytes: float = 0.0
    # (monotonic time, value) when the count first moved in this stage: the embedding rate
    # is measured from there, so loading the model does not read as 0.0 chunks/s.
    _first_move: tuple[float, float] | None = None
    _live: bool = False

    def update(self, job: Any) -> None:
        stage = str(job.stage)
        timings = job.stage_timings or {}
        for done in WORKED:
            secs = _seconds(timings.get(done))
            if done not in self._printed and secs is not None:
                self._write(
                    f"{done.label:<24}{_counts(done, job):<52} done in {secs:,.1f}s", newline=True
                )
                self._printed.add(done)
        if stage != self._stage:
            self._stage, self._started, self._start_value = (
                stage,
                time.monotonic(),
                _value(stage, job),
            )
            self._start_bytes = _parse_bytes(job)[0] if stage == "parsing" else 0.0
            self._first_move = None
        if stage in WORKED and stage not in self._printed:
            self._write(self._live_line(stage, job), newline=False)
        self.out.flush()

    def close(self) -> None:
        if self._live:
            self.out.write("\n")
        self.out.flush()

    def _write(self, text: str, *, newline: bool) -> None:
        self.out.write("\r" + text + "\x1b[K" + ("\n" if newline else ""))
        self._live = not newline

    def _live_line(self, stage: str, job: Any) -> str:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        value = _value(stage, job)
        rate = (value - self._start_value) / elapsed
        label = f"{Stage(stage).label:<24}"
        if stage == "downloading":
            total = job.bytes_total or 0
            return (
                label + f"{_bar(value, total)}  {_size(value)}/{_size(total)}"
                f"  {_size(rate)}/s" + _eta(value, total, rate)
            )
        if stage == "parsing":
            read, total = _parse_bytes(job)
            if not total:
                return label + _counts(stage, job) + f"  {rate:,.0f} conv/s"
            byte_rate = max(0.0, read - self._start_bytes) / elapsed
            return (
                label
                + _bar(read, total)
                + "  "
                + _counts(stage, job)
                + _eta(read, total, byte_rate)
            )
        if stage == "embedding":
            total = job.chunks or 0
            return (
                label
                + f"{_bar(value, total)}  {value:,}/{total:,} chunks"
                + self._moving_rate(value, total, "chunks/s")
            )
        return label + f"{elapsed:,.0f}s"

    def _moving_rate(self, value: float, total: float, unit: str) -> str:
        """Rate and ETA measured from the first batch that landed; before it, say so."""
        now = time.monotonic()
        if self._first_move is None:
            if value <= self._start_value:
                return "  waiting for the first batch"
            self._first_move = (now, value)
        since, base = self._first_move
        if value <= base or now - since <= 0:
            return ""  # one batch seen: no rate yet
        rate = (value - base) / (now - since)
        return f"  {rate:,.1f} {unit}" + _eta(value, total, rate)
