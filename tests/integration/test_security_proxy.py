"""Issue 8 F10: forwarded headers are believed only from the configured proxy."""

from __future__ import annotations

import socket
import threading
import time

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from pipeline.commands.serve import proxy_options
from pipeline.settings import Settings


def _client_seen(settings: Settings, headers: dict[str, str]) -> str:
    """The client address an app sees under serve's proxy options, for one loopback
    request carrying ``headers``."""

    async def who(request: Request) -> PlainTextResponse:
        assert request.client is not None
        return PlainTextResponse(request.client.host)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            Starlette(routes=[Route("/", who)]), log_level="warning", **proxy_options(settings)
        )
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 10
        while not server.started:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        return httpx.get(f"http://127.0.0.1:{port}/", headers=headers).text
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def test_a_forged_forwarded_for_from_an_untrusted_peer_is_ignored(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Issue 8 F10 (no seed pitfall: the receiver authenticates by signature, but logs and
    any future per-address limit must not be steerable): with FORWARDED_ALLOW_IPS naming the
    proxy's network, a direct caller's X-Forwarded-For is ignored; the default is never "*"."""
    monkeypatch.delenv("FORWARDED_ALLOW_IPS", raising=False)
    assert Settings.from_env().forwarded_allow_ips == "127.0.0.1"
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.0.0.0/8")
    settings = Settings.from_env()
    assert _client_seen(settings, {"x-forwarded-for": "6.6.6.6"}) == "127.0.0.1"
    # The configured proxy is believed: here the proxy is loopback itself.
    trusted = settings.model_copy(update=dict(forwarded_allow_ips="127.0.0.1"))
    assert _client_seen(trusted, {"x-forwarded-for": "203.0.113.7"}) == "203.0.113.7"
