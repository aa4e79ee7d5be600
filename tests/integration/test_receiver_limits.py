"""Security review finding 6 (and the FORWARDED_ALLOW_IPS note): what an unsigned caller can
make the receiver hold. Real uvicorn on loopback, real PostgreSQL, raw sockets where a
well-behaved client would not show the attack."""

from __future__ import annotations

import base64
import secrets
import socket
import time
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from handlers.app import create_app
from handlers.server import ServerHandle, serve_in_thread
from pipeline import lifecycle
from pipeline.commands.serve import server_limits
from pipeline.settings import Settings, SettingsError

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


@pytest.fixture
def receiver(worker_db_url: str) -> Iterator[Callable[..., ServerHandle]]:
    """Start receivers the way `serve` runs them (its uvicorn limits included)."""
    handles: list[ServerHandle] = []

    def start(**overrides: object) -> ServerHandle:
        settings = Settings(**{"webhook_secret": SECRET, **overrides})
        app = create_app(settings, conninfo=worker_db_url, shutdown_grace_s=5)
        handle = serve_in_thread(app, **server_limits(settings))
        handles.append(handle)
        return handle

    lifecycle.reset()
    yield start
    for handle in handles:
        handle.stop()
    lifecycle.reset()


def _open_slow_request(url: str, declared: int = 500) -> socket.socket:
    """A connection that declares a body, sends a few bytes of it and then stalls."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=15)
    sock.sendall(
        b"POST /webhooks/supabase HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/json\r\n"
        + f"Content-Length: {declared}\r\n\r\n".encode()
        + b'{"type":'
    )
    return sock


def test_default_body_limit_refuses_a_100_kib_unsigned_body(receiver) -> None:
    """Guards "No file size validation" (Security Mistakes), review finding 6: real events
    are under 1 KB, yet 1 MiB per request was held before the signature check. With the
    default settings a 100 KiB body is refused (413) unsigned."""
    rx = receiver()
    resp = httpx.post(rx.url + "/webhooks/supabase", content=b"x" * (100 * 1024))
    assert resp.status_code == 413
    assert Settings().max_body_bytes == 64 * 1024


def test_a_body_that_never_finishes_is_cut_off(receiver) -> None:
    """Guards review finding 6 (slowloris): a caller declaring a body and sending it never
    held the connection and its buffer forever; now it gets 408 after the body timeout."""
    rx = receiver(webhook_body_timeout_seconds=1.0)
    started = time.monotonic()
    with _open_slow_request(rx.url) as sock:
        reply = sock.recv(4096).decode()
    assert reply.startswith("HTTP/1.1 408")
    assert time.monotonic() - started < 10


def _still_held(sock: socket.socket) -> bool:
    """True when the server has taken the request and is waiting for its body (no reply
    within half a second), so the next connection is counted after this one."""
    sock.settimeout(0.5)
    try:
        return sock.recv(4096) == b""
    except TimeoutError:
        return True
    finally:
        sock.settimeout(15)


def test_connections_past_the_limit_get_503(receiver) -> None:
    """Guards review finding 6: with no connection limit, unsigned callers could open as
    many stalled requests as memory allows. Past RECEIVER_MAX_CONNECTIONS the receiver
    answers 503 at once instead, and serves again once they are gone. (uvicorn counts the
    arriving connection too: a limit of 3 serves 2 at once.)"""
    rx = receiver(receiver_max_connections=3, webhook_body_timeout_seconds=30.0)
    held: list[socket.socket] = []
    try:
        for _ in range(2):
            held.append(_open_slow_request(rx.url))
            assert _still_held(held[-1])
        resp = httpx.get(rx.url + "/healthz", timeout=5)
        assert resp.status_code == 503
    finally:
        for sock in held:
            sock.close()
    deadline = time.monotonic() + 10
    while httpx.get(rx.url + "/healthz", timeout=5).status_code == 503:
        assert time.monotonic() < deadline
        time.sleep(0.1)


@pytest.mark.parametrize("value", ["*", "10.0.0.0/8, *"])
def test_forwarded_allow_ips_wildcard_is_refused(monkeypatch, value: str) -> None:
    """Guards issue 8 F10 (forged X-Forwarded-For): FORWARDED_ALLOW_IPS='*' made uvicorn
    believe anyone's forwarded headers; settings now refuse it, naming the variable."""
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", value)
    with pytest.raises(SettingsError, match="FORWARDED_ALLOW_IPS"):
        Settings.from_env()
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/8, 127.0.0.1")
    assert Settings.from_env().forwarded_allow_ips == "10.0.0.0/8, 127.0.0.1"
