"""Replay: deliver again what was sent since a time, via Svix or from the local attempt log.

Harmless by construction: stage handlers are idempotent, and the receiver ignores a
webhook-id it already accepted, so only deliveries that never got through have an effect.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from uuid import UUID

import psycopg
from svix.api import RecoverIn

from pipeline.delivery.http_transport import HttpTransport
from pipeline.delivery.svix_transport import svix_client
from pipeline.queries import QUERIES
from pipeline.settings import Settings

log = logging.getLogger(__name__)


@dataclass
class ReplayResult:
    mode: str  # 'local' | 'svix'
    # local: HTTP status (or 'error') -> count; svix: 'recover' / 'resend' -> count of calls
    outcomes: Counter[str] = field(default_factory=Counter)


def replay_local(
    conninfo: str, receiver_url: str, secret: str, since: datetime, job_id: UUID | None = None
) -> ReplayResult:
    """Re-sign and POST every event in the attempt log since ``since``, logging each try."""
    result = ReplayResult("local")
    transport = HttpTransport(receiver_url, secret)
    try:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            events = conn.execute(
                QUERIES["replay_logged_events"], {"since": since, "job_id": job_id}
            ).fetchall()
            for event_id, body in events:
                attempt = transport.post(str(event_id), body)
                conn.execute(
                    QUERIES["relay_log_attempt"],
                    (event_id, attempt.status_code, attempt.latency_ms, attempt.error, "relay"),
                )
                result.outcomes[str(attempt.status_code or "error")] += 1
    finally:
        transport.close()
    return result


def replay_svix(
    conninfo: str, settings: Settings, since: datetime, job_id: UUID | None = None
) -> ReplayResult:
    """``endpoint.recover`` on every endpoint, or ``message_attempt.resend`` for one job."""
    assert settings.svix_api_key and settings.svix_app_id
    app_id = settings.svix_app_id
    svix = svix_client(settings.svix_api_key, settings.svix_server_url)
    endpoints = [e.id for e in svix.endpoint.list(app_id).data]
    result = ReplayResult("svix")
    if job_id is None:
        for endpoint_id in endpoints:
            svix.endpoint.recover(app_id, endpoint_id, RecoverIn(since=since))
            result.outcomes["recover"] += 1
        return result
    with psycopg.connect(conninfo, autocommit=True) as conn:
        events = conn.execute(
            QUERIES["replay_job_events"], {"since": since, "job_id": job_id}
        ).fetchall()
    for (event_id,) in events:
        # The relay sent it with eventId = our event id; Svix resolves either id in the path.
        for endpoint_id in endpoints:
            svix.message_attempt.resend(app_id, str(event_id), endpoint_id)
            result.outcomes["resend"] += 1
    return result


def replay(
    conninfo: str, settings: Settings, since: datetime, job_id: UUID | None = None
) -> ReplayResult:
    """Svix mode when SVIX_API_KEY and SVIX_APP_ID are set, else from the local log."""
    if settings.svix_api_key and settings.svix_app_id:
        return replay_svix(conninfo, settings, since, job_id)
    if not (settings.receiver_url and settings.webhook_secret):
        raise ValueError("local replay needs RECEIVER_URL and WEBHOOK_SECRET")
    return replay_local(conninfo, settings.receiver_url, settings.webhook_secret, since, job_id)
