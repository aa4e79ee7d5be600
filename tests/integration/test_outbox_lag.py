"""Undelivered events are visible: /healthz reports the oldest unacknowledged event's age,
and the sweeper warns once events sit undelivered for more than 10 minutes (issue 8,
"hosted delivery must be verifiable")."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import psycopg
import pytest

from handlers.app import create_app
from handlers.server import serve_in_thread
from pipeline import lifecycle
from pipeline.settings import Settings
from pipeline.sweeper import run_sweep
from tests.dbutil import create_user, upload_object

SECRET = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def _age_events(db_url: str, minutes: int) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "update public.import_events set created_at = now() - make_interval("
            "mins => %s) where acknowledged_at is null",
            (minutes,),
        )


def test_healthz_reports_the_oldest_unacknowledged_event(db_url: str, worker_db_url: str) -> None:
    """Guards pitfall 1 (work that vanishes): with pg_net missing every job sat in `queued`
    and nothing said so. /healthz now shows how many events wait and for how long."""
    lifecycle.reset()
    app = create_app(
        Settings(webhook_secret=SECRET),
        conninfo=worker_db_url,
        shutdown_grace_s=5,
    )
    handle = serve_in_thread(app)
    try:
        body = httpx.get(handle.url + "/healthz").json()
        assert body["outbox"] == {
            "unacknowledged_events": 0,
            "oldest_unacknowledged_event_age_s": None,
        }
        upload_object(db_url, create_user(db_url))
        _age_events(db_url, 25)
        resp = httpx.get(handle.url + "/healthz")
        assert resp.status_code == 200  # a restart would not deliver them
        outbox = resp.json()["outbox"]
        assert outbox["unacknowledged_events"] == 1
        assert 25 * 60 <= outbox["oldest_unacknowledged_event_age_s"] < 26 * 60
    finally:
        handle.stop()
        lifecycle.reset()


def test_sweeper_warns_when_events_go_undelivered_for_ten_minutes(
    db_url: str, worker_db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Guards pitfall 1 (work that vanishes): the sweeper re-emitted into the same void
    without a word. Past 10 minutes undelivered it now logs a warning naming `doctor`;
    a fresh backlog is no alarm."""
    settings = Settings(data_dir=tmp_path)
    upload_object(db_url, create_user(db_url))
    with caplog.at_level(logging.WARNING, logger="pipeline.sweeper"):
        run_sweep(worker_db_url, settings)
    assert not [r for r in caplog.records if "undelivered" in r.getMessage()]

    _age_events(db_url, 11)
    with caplog.at_level(logging.WARNING, logger="pipeline.sweeper"):
        run_sweep(worker_db_url, settings)
    [warning] = [r for r in caplog.records if "undelivered" in r.getMessage()]
    assert warning.levelno == logging.WARNING and "doctor" in warning.getMessage()
