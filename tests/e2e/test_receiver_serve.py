"""`soulprint-import serve` as Render runs it: a real process, real signals."""

from __future__ import annotations

import base64
import os
import secrets
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import httpx

from tests.delivery_helpers import event_body, signed, wait_for

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def healthy(url: str) -> bool:
    try:
        return httpx.get(url + "/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_serve_answers_and_exits_cleanly_on_sigterm(worker_db_url):
    """Guards pitfall 2 (cold start) and pitfall 9 (status never written): the service comes
    up on $PORT, is healthy only with its database, refuses unsigned events, and on SIGTERM
    stops within Render's shutdown delay with a clean exit."""
    secret = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
    port = free_port()
    env = {
        **os.environ,
        "DATABASE_URL": worker_db_url,
        "WEBHOOK_SECRET": secret,
        "PORT": str(port),
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "serve", "--host", "127.0.0.1"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: healthy(url) or proc.poll() is not None, timeout=60)
        assert proc.poll() is None, proc.stdout.read()
        body = event_body(uuid.uuid4(), uuid.uuid4(), "complete")
        assert httpx.post(url + "/webhooks/supabase", content=body).status_code == 401
        ok = httpx.post(url + "/webhooks/supabase", content=body, headers=signed(secret, body))
        assert ok.status_code == 200
        proc.send_signal(signal.SIGTERM)
        # Within Render's default maxShutdownDelaySeconds. uvicorn re-raises SIGTERM once it
        # has shut down gracefully, so "killed by SIGTERM" is the clean exit here.
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    log = proc.stdout.read()
    assert "Application shutdown complete" in log and "Traceback" not in log


def test_serve_refuses_to_start_without_a_secret(worker_db_url):
    """Guards the "no auth on the service" row: no WEBHOOK_SECRET, no service."""
    env = {k: v for k, v in os.environ.items() if k != "WEBHOOK_SECRET"}
    env.update(DATABASE_URL=worker_db_url, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "serve"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2 and "WEBHOOK_SECRET" in done.stderr
