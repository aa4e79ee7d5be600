"""The sweeper revives jobs whose worker died and fails hopeless ones, on the real database."""

from __future__ import annotations

import base64
import secrets
import signal
import subprocess
import sys
import threading

import psycopg

from handlers.app import create_app
from handlers.server import serve_in_thread
from pipeline import lifecycle
from pipeline.cli import main
from pipeline.delivery.relay import Relay
from pipeline.settings import Settings
from pipeline.sweeper import SweepAction, run_sweep, start_sweeper_loop
from tests.delivery_helpers import StepRunner, upload_job, wait_for

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()

# A worker in its own process: claims the job with a 1 s lease, then hangs mid-stage.
DOOMED_WORKER = """
import sys, time, psycopg
with psycopg.connect(sys.argv[1], autocommit=True) as conn:
    conn.execute("select claim_import_job(%s, 'queued', 'doomed-worker', 1)", (sys.argv[2],))
    print("claimed", flush=True)
    time.sleep(600)
"""


def job_row(db_url: str, job_id) -> tuple:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "select stage::text, lease_owner, error_message from import_jobs where id = %s",
            (job_id,),
        ).fetchone()


def test_sweeper_revives_a_job_whose_worker_was_killed(db_url, worker_db_url):
    """Guards pitfall 9 (status never written) and pitfall 1 (fire-and-forget): a worker
    SIGKILLed mid-stage leaves no stuck job; the sweep re-emits and another worker finishes."""
    job_id, _ = upload_job(db_url)
    with psycopg.connect(db_url, autocommit=True) as conn:
        # The queued event reached that worker (and was acknowledged) before it died.
        conn.execute(
            "update import_events set acknowledged_at = now(), relayed_at = now()"
            " where job_id = %s",
            (job_id,),
        )
    proc = subprocess.Popen(
        [sys.executable, "-c", DOOMED_WORKER, worker_db_url, str(job_id)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "claimed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert job_row(db_url, job_id)[:2] == ("queued", "doomed-worker")

    lifecycle.reset()
    runner = StepRunner(worker_db_url)
    settings = Settings(webhook_secret=SECRET, lease_seconds=1, max_attempts=5)
    rx = serve_in_thread(
        create_app(settings, conninfo=worker_db_url, sources=[runner.pull], on_event=runner)
    )
    relay = Relay(worker_db_url, rx.url + "/webhooks/supabase", SECRET, poll_interval_s=0.2)
    assert relay.deliver_pending() == 0  # nothing in the outbox would ever move this job
    relay.start()
    stop = threading.Event()
    sweeper = start_sweeper_loop(worker_db_url, settings, 0.1, stop)
    try:
        wait_for(lambda: job_row(db_url, job_id)[0] == "complete")
    finally:
        stop.set()
        sweeper.join(5)
        relay.stop()
        rx.stop()
        runner.close()
        lifecycle.reset()
    with psycopg.connect(db_url) as conn:
        reasons = [
            r[0]
            for r in conn.execute(
                "select payload->'data'->>'reason' from import_events where job_id = %s"
                " and type = 'import.queued' order by created_at",
                (job_id,),
            )
        ]
    assert reasons[0] == "stage_changed" and "sweep" in reasons[1:]


def test_unacknowledged_event_is_reemitted_once_per_deadline(db_url, worker_db_url):
    """Guards pitfall 2 (cold start): an event nobody acted on (receiver asleep, pg_net
    dropped it) is announced again, and not on every pass."""
    job_id, _ = upload_job(db_url)
    settings = Settings(lease_seconds=60)
    assert run_sweep(worker_db_url, settings) == []  # fresh: within the deadline
    assert run_sweep(worker_db_url, settings, stale_after=0) == [SweepAction(job_id, "reemitted")]
    assert run_sweep(worker_db_url, settings) == []  # just re-emitted: leave it be
    with psycopg.connect(db_url) as conn:
        n = conn.execute(
            "select count(*) from import_events where job_id = %s", (job_id,)
        ).fetchone()[0]
    assert n == 2


def test_job_is_failed_with_a_clear_message_after_max_attempts(
    db_url, worker_db_url, capsys, monkeypatch
):
    """Guards pitfall 9 (status never written): a job that keeps killing its worker ends
    `failed` with a sentence a person understands, instead of spinning forever."""
    job_id, _ = upload_job(db_url)
    settings = Settings(max_attempts=3)
    with psycopg.connect(worker_db_url, autocommit=True) as conn:
        for n in range(settings.max_attempts):  # three workers, each lease lapsing at once
            conn.execute("select claim_import_job(%s, 'queued', %s, 0)", (job_id, f"w{n}"))
    # Through the CLI, as the Render cron job runs it.
    monkeypatch.setenv("DATABASE_URL", worker_db_url)
    monkeypatch.setenv("MAX_ATTEMPTS", str(settings.max_attempts))
    assert main(["sweep"]) == 0
    assert capsys.readouterr().out.strip() == f"{job_id} failed"
    stage, owner, message = job_row(db_url, job_id)
    assert stage == "failed" and owner is None
    assert "3 times" in message and "retry" in message
    assert run_sweep(worker_db_url, settings) == []  # failed is final: nothing more to do


def test_sweep_prunes_week_old_webhook_receipts(db_url, worker_db_url):
    """Guards pitfall 6 (unbounded growth): the receiver's dedupe receipts are kept a week,
    longer than any sender retries, and the sweeper (as the worker role) prunes the rest."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "insert into webhook_receipts (webhook_id, received_at) values "
            "('old', now() - interval '8 days'), ('recent', now() - interval '2 days')"
        )
    run_sweep(worker_db_url, Settings())
    with psycopg.connect(db_url) as conn:
        left = [r[0] for r in conn.execute("select webhook_id from webhook_receipts")]
    assert left == ["recent"]


def test_a_job_waiting_behind_busy_instances_is_not_reannounced(db_url, worker_db_url):
    """Guards pitfall 5 (noise that reads like a fault; review of issue 15, F7): with the
    pull queue, an unheld job behind another job whose instance holds a live lease is in
    line and will be pulled; the sweeper reports it as 'waiting' and adds no event. Once
    no instance holds a live lease (none shows a sign of life), it is re-announced."""
    busy, _ = upload_job(db_url)
    waiting, _ = upload_job(db_url)
    settings = Settings(lease_seconds=60)
    with psycopg.connect(worker_db_url, autocommit=True) as conn:
        conn.execute("select claim_import_job(%s, 'queued', 'busy-instance', 60)", (busy,))
        assert run_sweep(worker_db_url, settings, stale_after=0) == [
            SweepAction(waiting, "waiting")
        ]
        conn.execute("select release_import_job(%s, 'busy-instance')", (busy,))
    with psycopg.connect(db_url) as conn:
        events = conn.execute(
            "select count(*) from import_events where job_id = %s", (waiting,)
        ).fetchone()[0]
    assert events == 1  # only the upload's own event
    acted = run_sweep(worker_db_url, settings, stale_after=0)
    assert SweepAction(waiting, "reemitted") in acted
