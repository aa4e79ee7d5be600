"""Local replay from the attempt log, through the CLI, against the real receiver."""

from __future__ import annotations

import base64
import secrets

import psycopg

from handlers.app import create_app
from handlers.server import serve_in_thread
from pipeline import lifecycle
from pipeline.cli import main
from pipeline.delivery.relay import Relay
from pipeline.settings import Settings
from tests.delivery_helpers import StepRunner, Switch, stage_of, upload_job, wait_for

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def attempted_events(db_url: str) -> int:
    """How many distinct events have a delivery attempt on record."""
    with psycopg.connect(db_url) as conn:
        return conn.execute("select count(distinct event_id) from event_deliveries").fetchone()[0]


def test_local_replay_resends_from_the_attempt_log(db_url, worker_db_url, capsys, monkeypatch):
    """Guards pitfall 2 (cold start) and pitfall 1 (fire-and-forget): what failed while the
    receiver was down is delivered by `replay --since`; what had arrived is a harmless
    duplicate."""
    lifecycle.reset()
    runner = StepRunner(worker_db_url)
    switch = Switch(
        create_app(
            Settings(webhook_secret=SECRET),
            conninfo=worker_db_url,
            sources=[runner.pull],
            on_event=runner,
        )
    )
    rx = serve_in_thread(switch)
    url = rx.url + "/webhooks/supabase"
    relay = Relay(worker_db_url, url, SECRET, backoff_s=0.01)
    monkeypatch.setenv("DATABASE_URL", worker_db_url)
    monkeypatch.setenv("RECEIVER_URL", url)
    monkeypatch.setenv("WEBHOOK_SECRET", SECRET)
    try:
        ok_job, _ = upload_job(db_url)
        assert relay.deliver_pending() == 1  # delivered: ok_job moves on
        wait_for(lambda: stage_of(db_url, ok_job) == "downloading")

        switch.down = True
        stuck_job, _ = upload_job(db_url)
        # One try per round while the receiver fails: round after round until both waiting
        # events (ok_job's next one and stuck_job's first) are in the attempt log.
        wait_for(lambda: relay.deliver_pending() == 0 and attempted_events(db_url) == 3)
        with psycopg.connect(db_url, autocommit=True) as conn:
            # The relay alone would not try again for an hour.
            conn.execute(
                "update import_events set next_attempt_at = now() + interval '1 hour'"
                " where acknowledged_at is null"
            )
        assert stage_of(db_url, stuck_job) == "queued"

        switch.down = False
        assert main(["replay", "--since", "10m", "--job", str(stuck_job)]) == 0
        assert "202: 1" in capsys.readouterr().out
        wait_for(lambda: stage_of(db_url, stuck_job) == "downloading")

        # Everything since: ok_job's next event had failed too, and now gets through.
        assert main(["replay", "--since", "10m"]) == 0
        assert "202: 1" in capsys.readouterr().out
        wait_for(lambda: stage_of(db_url, ok_job) == "parsing")

        # And again: every event was already taken, so nothing changes.
        claims = sum(runner.claims.values())
        assert main(["replay", "--since", "10m"]) == 0
        out = capsys.readouterr().out
        assert "200: 3" in out and "202:" not in out
        assert sum(runner.claims.values()) == claims
        assert (stage_of(db_url, ok_job), stage_of(db_url, stuck_job)) == ("parsing", "downloading")
    finally:
        relay.stop()
        rx.stop()
        runner.close()
        lifecycle.reset()
