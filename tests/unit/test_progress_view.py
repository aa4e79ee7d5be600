"""What `soulprint-import run` shows on a terminal while the job moves."""

from __future__ import annotations

import io
from types import SimpleNamespace

from pipeline.commands.progress_view import ProgressView

MB = 1_000_000


def job(stage: str, **fields: object) -> SimpleNamespace:
    base = dict(
        stage=stage,
        stage_timings={},
        bytes_done=0,
        bytes_total=0,
        conversations=0,
        messages=0,
        chunks=0,
        embedded_chunks=0,
        checkpoint={},
    )
    base.update(fields)
    return SimpleNamespace(**base)


def lines(out: io.StringIO) -> list[str]:
    """The terminal's lines as a person sees them: each redraw replaces the line."""
    return [part.split("\r")[-1].replace("\x1b[K", "") for part in out.getvalue().split("\n")]


def test_parsing_shows_a_bar_of_bytes_read_with_an_eta():
    """Guards pitfall 5 (no progress): reading a large export shows how far it is and how
    long is left, not only a growing count."""
    out = io.StringIO()
    view = ProgressView(out=out)
    timings = {
        "queued": {
            "started_at": "2026-11-28T10:00:00+00:00",
            "ended_at": "2026-11-28T10:00:01+00:00",
        },
        "downloading": {
            "started_at": "2026-11-28T10:00:01+00:00",
            "ended_at": "2026-11-28T10:00:03+00:00",
        },
    }
    view.update(
        job(
            "parsing",
            stage_timings=timings,
            bytes_done=80 * MB,
            bytes_total=80 * MB,
            conversations=100,
            checkpoint={"read_bytes": 25 * MB, "total_bytes": 400 * MB},
        )
    )
    view.update(
        job(
            "parsing",
            stage_timings=timings,
            conversations=900,
            messages=7200,
            chunks=10_000,
            checkpoint={"read_bytes": 200 * MB, "total_bytes": 400 * MB},
        )
    )
    view.close()
    shown = [line for line in lines(out) if line]
    assert shown[0].startswith("Waiting for the worker") and "done in 1.0s" in shown[0]
    assert shown[1].startswith("Downloading") and "80.0 MB" in shown[1]
    live = shown[-1]
    assert live.startswith("Reading conversations") and "50.0%" in live
    assert "900 conversations" in live and "ETA" in live


def test_parsing_without_a_known_size_shows_counts_and_rate():
    """Guards pitfall 5 (no progress): when the export's size is unknown (a salvaged zip),
    the line still moves."""
    out = io.StringIO()
    view = ProgressView(out=out)
    view.update(
        job("parsing", conversations=40, checkpoint={"read_bytes": 5 * MB, "total_bytes": None})
    )
    view.close()
    live = [line for line in lines(out) if line][-1]
    assert "40 conversations" in live and "conv/s" in live and "%" not in live


def test_embedding_shows_a_bar_of_chunks():
    """Guards pitfall 5 (no progress): the longest stage shows chunks done out of all."""
    out = io.StringIO()
    view = ProgressView(out=out)
    view.update(job("embedding", chunks=1000, embedded_chunks=250))
    view.update(job("embedding", chunks=1000, embedded_chunks=500))
    view.close()
    live = [line for line in lines(out) if line][-1]
    assert live.startswith("Embedding memory") and "50.0%" in live and "500/1,000" in live


def test_embedding_says_it_waits_for_the_first_batch_instead_of_zero_speed(monkeypatch):
    """Guards pitfall 5 (progress dead zone): while the model loads nothing is embedded
    yet; the line used to read "0.0 chunks/s" (and the rate stayed low afterwards, the
    loading time counted in). Now it says what it waits for, and the rate is measured from
    the first batch that landed."""
    import pipeline.commands.progress_view as pv

    now = [0.0]
    monkeypatch.setattr(pv.time, "monotonic", lambda: now[0])
    out = io.StringIO()
    view = ProgressView(out=out)
    view.update(job("embedding", chunks=1000, embedded_chunks=0))
    first = lines(out)[-1]
    assert "waiting for the first batch" in first and "chunks/s" not in first
    now[0] = 30.0  # 30 s of model loading, then the first batch
    view.update(job("embedding", chunks=1000, embedded_chunks=64))
    now[0] = 32.0  # two more batches in 2 s
    view.update(job("embedding", chunks=1000, embedded_chunks=192))
    live = lines(out)[-1]
    assert "64.0 chunks/s" in live and "ETA" in live
