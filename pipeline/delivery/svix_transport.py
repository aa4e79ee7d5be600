"""Svix mode: the relay hands each event to Svix, which delivers, retries, logs, replays."""

from __future__ import annotations

import time

import httpx
from svix.api import MessageCreateOptions, MessageIn, Svix, SvixOptions
from svix.exceptions import HttpError, HTTPValidationError

from pipeline.delivery.types import Attempt, OutboxEvent


def svix_client(api_key: str, server_url: str | None = None) -> Svix:
    """The Svix API client, against ``server_url`` when given (self-hosted, or a test's)."""
    return Svix(api_key, SvixOptions(server_url=server_url) if server_url else SvixOptions())


class SvixTransport:
    """``message.create`` with the event id as idempotency key and Svix ``eventId``.

    A relay that crashed after Svix accepted but before recording it sends again on restart;
    the idempotency key makes that the same message, so the endpoint sees it once.
    """

    via = "svix"

    def __init__(self, api_key: str, app_id: str, *, server_url: str | None = None) -> None:
        self.app_id = app_id
        self.client = svix_client(api_key, server_url)

    def send(self, event: OutboxEvent) -> Attempt:
        started = time.perf_counter()
        try:
            self.client.message.create(
                self.app_id,
                MessageIn(event_type=event.type, payload=event.payload, event_id=str(event.id)),
                MessageCreateOptions(idempotency_key=str(event.id)),
            )
        except HttpError as exc:
            elapsed = (time.perf_counter() - started) * 1000
            error = f"svix HTTP {exc.status_code}: {exc.code} {exc.detail}"[:500]
            return Attempt(exc.status_code, elapsed, error)
        except HTTPValidationError as exc:
            elapsed = (time.perf_counter() - started) * 1000
            return Attempt(422, elapsed, f"svix rejected the message: {exc.detail}"[:500])
        except httpx.HTTPError as exc:
            elapsed = (time.perf_counter() - started) * 1000
            return Attempt(None, elapsed, f"svix unreachable: {type(exc).__name__}: {exc}"[:500])
        # Svix answers 202 Accepted; what the SDK hands back has no status, so record that.
        return Attempt(202, (time.perf_counter() - started) * 1000)

    def close(self) -> None:
        """Nothing to do: the svix SDK has no close; its connections end with the process."""
