"""Terminal progress: one line per stage with counts, rate and ETA, redrawn in place."""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, TextIO

LABELS = {
    "queued": "Waiting for the worker",
    "downloading": "Downloading",
    "parsing": "Reading conversations",
    "embedding": "Embedding memory",
    "generating_soulprint": "Writing the soulprint",
}
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


@dataclass
class ProgressView:
    out: TextIO = sys.stderr
    _stage: str | None = None
    _started: float = field(default_factory=time.monotonic)
    _start_value: float = 0.0

    def update(self, job: Any) -> None:
        stage = str(job.stage)
        if stage != self._stage:
            if self._stage in LABELS:
                self.out.write("\r" + self._line(self._stage, job, final=True) + "\x1b[K\n")
            self._stage = stage
            self._started = time.monotonic()
            self._start_value = self._value(stage, job)
        if stage in LABELS:
            self.out.write("\r" + self._line(stage, job) + "\x1b[K")
        self.out.flush()

    def close(self) -> None:
        self.out.write("\n" if self._stage in LABELS else "")
        self.out.flush()

    @staticmethod
    def _value(stage: str, job: Any) -> float:
        return {
            "downloading": job.bytes_done,
            "parsing": job.conversations,
            "embedding": job.embedded_chunks,
        }.get(stage, 0) or 0

    def _line(self, stage: str, job: Any, final: bool = False) -> str:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        value = self._value(stage, job)
        rate = (value - self._start_value) / elapsed
        label = f"{LABELS[stage]:<24}"
        if stage == "downloading":
            total = job.bytes_total or 0
            text = (f"{_bar(value, total)}  {value / 1e6:,.1f}/{total / 1e6:,.1f} MB"
                    f"  {rate / 1e6:,.1f} MB/s")
            return label + text + ("" if final else _eta(value, total, rate))
        if stage == "parsing":
            return (label + f"{job.conversations:,} conversations  {job.messages:,} messages  "
                    f"{job.chunks:,} chunks  {rate:,.0f} conv/s")
        if stage == "embedding":
            total = job.chunks or 0
            text = f"{_bar(value, total)}  {value:,}/{total:,} chunks  {rate:,.0f} chunks/s"
            return label + text + ("" if final else _eta(value, total, rate))
        return label + ("done" if final else f"{elapsed:,.0f}s")
