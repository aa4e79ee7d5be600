"""Straight delivery: sign with svix and POST to the receiver."""

from __future__ import annotations

import socket
import time

import httpx
from svix.webhooks import Webhook

from pipeline.delivery.signing import sign_headers
from pipeline.delivery.types import Attempt, OutboxEvent
from pipeline.retry_after import retry_after_seconds

# httpx writes headers and body in two sends; with Nagle on, the body waits for the
# receiver's delayed ACK (~40 ms per event).
NODELAY = [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)]


class HttpTransport:
    """POSTs one signed event per call; never raises for a failed delivery."""

    via = "relay"

    def __init__(
        self,
        receiver_url: str,
        secret: str,
        *,
        timeout_s: float = 30.0,
        client: httpx.Client | None = None,
    ) -> None:
        self.url = receiver_url
        self._hook = Webhook(secret)
        # A sleeping Render instance takes 30-60 s to wake: the connect timeout rides it out.
        self._client = client or httpx.Client(
            transport=httpx.HTTPTransport(socket_options=NODELAY),
            timeout=httpx.Timeout(timeout_s, connect=timeout_s),
        )

    def send(self, event: OutboxEvent) -> Attempt:
        return self.post(str(event.id), event.body)

    def post(self, msg_id: str, body: str) -> Attempt:
        """Sign ``body`` as message ``msg_id`` and POST it; the answer as an Attempt."""
        headers = sign_headers(self._hook, msg_id, body)
        started = time.perf_counter()
        try:
            resp = self._client.post(self.url, content=body.encode(), headers=headers)
        except httpx.HTTPError as exc:
            elapsed = (time.perf_counter() - started) * 1000
            return Attempt(None, elapsed, f"{type(exc).__name__}: {exc}"[:500])
        elapsed = (time.perf_counter() - started) * 1000
        error = None if resp.is_success else f"HTTP {resp.status_code}: {resp.text[:300]}"
        return Attempt(resp.status_code, elapsed, error, retry_after_seconds(resp.headers))

    def close(self) -> None:
        self._client.close()
