"""Svix mode and replay against a fake Svix API (real HTTP, the real svix client)."""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from svix.api import ApplicationIn, EndpointIn

from handlers.app import create_app
from handlers.server import ServerHandle, serve_in_thread
from pipeline import lifecycle
from pipeline.delivery.relay import Relay
from pipeline.delivery.replay import replay
from pipeline.delivery.svix_transport import SvixTransport, svix_client
from pipeline.delivery.types import OutboxEvent
from pipeline.settings import Settings
from tests.delivery_helpers import StepRunner, Switch, stage_of, upload_job, wait_for
from tests.fake_svix import FakeSvix

SECRET = "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()
TOKEN = "testsk_" + secrets.token_hex(8)
APP_UID = "soulprint-import"


@dataclass
class SvixWorld:
    fake: FakeSvix
    api: ServerHandle
    rx: ServerHandle
    switch: Switch
    runner: StepRunner
    settings: Settings


@pytest.fixture
def world(worker_db_url: str) -> Iterator[SvixWorld]:
    lifecycle.reset()
    fake = FakeSvix(TOKEN)
    api = serve_in_thread(fake.app)
    runner = StepRunner(worker_db_url)
    switch = Switch(
        create_app(
            Settings(webhook_secret=SECRET, stage_pool_size=4),
            conninfo=worker_db_url,
            sources=[runner.pull],
            on_event=runner,
        )
    )
    rx = serve_in_thread(switch)
    # Set up as an operator would, with the real client: an app and our endpoint.
    client = svix_client(TOKEN, api.url)
    client.application.create(ApplicationIn(name="SoulPrint import", uid=APP_UID))
    client.endpoint.create(APP_UID, EndpointIn(url=rx.url + "/webhooks/supabase", secret=SECRET))
    settings = Settings(svix_api_key=TOKEN, svix_app_id=APP_UID, svix_server_url=api.url)
    yield SvixWorld(fake, api, rx, switch, runner, settings)
    rx.stop()
    api.stop()
    fake.close()
    runner.close()
    lifecycle.reset()


def settle(world: SvixWorld, relay: Relay) -> bool:
    """Hand over what is due, let the fake deliver it; True once nothing is left to do."""
    handed = relay.deliver_pending()
    world.fake.wait_idle()
    return handed == 0


def test_svix_mode_delivers_a_job_to_complete(world, db_url, worker_db_url):
    """Guards pitfall 1 (fire-and-forget): in Svix mode every event is handed to Svix, which
    delivers it signed (svix-* headers) to the receiver, and the job runs to the end."""
    relay = Relay.from_settings(worker_db_url, world.settings)
    job_id, _ = upload_job(db_url)
    wait_for(lambda: settle(world, relay) and stage_of(db_url, job_id) == "complete")
    relay.stop()
    with psycopg.connect(db_url) as conn:
        events = [
            str(r[0])
            for r in conn.execute("select id from import_events where job_id = %s", (job_id,))
        ]
        vias = {r[0] for r in conn.execute("select via from event_deliveries")}
        # Svix's webhook-id is its own msg_ id: the receiver still acknowledges our events,
        # so the sweeper does not re-announce them.
        unacked = conn.execute(
            "select count(*) from import_events where job_id = %s and acknowledged_at is null",
            (job_id,),
        ).fetchone()[0]
    messages = world.fake.messages[APP_UID].values()
    assert sorted(m.event_id for m in messages) == sorted(events)
    assert vias == {"svix"} and unacked == 0
    assert all(a.ok for a in world.fake.attempts)


def test_resent_message_is_one_svix_message(world, db_url, worker_db_url):
    """Guards pitfall 7 (duplicates): a relay that hands an event over twice (it crashed
    before recording the first time) makes one Svix message: the idempotency key."""
    job_id, _ = upload_job(db_url)
    relay = Relay.from_settings(worker_db_url, world.settings)
    transport = relay.transport
    assert isinstance(transport, SvixTransport)
    with psycopg.connect(db_url) as conn:
        event_id, job, etype, payload, body = conn.execute(
            "select id, job_id, type, payload, payload::text from import_events where job_id = %s",
            (job_id,),
        ).fetchone()
    event = OutboxEvent(event_id, job, etype, payload, body, 0)
    assert transport.send(event).ok and transport.send(event).ok
    world.fake.wait_idle()
    assert world.fake.create_calls == 2
    assert len(world.fake.messages[APP_UID]) == 1
    # The receiver answers 202 and runs the stage in its pool: wait for that run to finish.
    wait_for(lambda: stage_of(db_url, job_id) == "downloading")
    assert world.runner.calls["queued"] == 1
    relay.stop()


def test_replay_recovers_what_failed_while_the_receiver_slept(world, db_url, worker_db_url):
    """Guards pitfall 2 (cold start): events Svix could not deliver while the service slept
    are recovered with endpoint.recover, and one job's with message_attempt.resend."""
    relay = Relay.from_settings(worker_db_url, world.settings)
    since = datetime.now(UTC) - timedelta(minutes=5)
    world.switch.down = True
    job_id, _ = upload_job(db_url)
    settle(world, relay)
    assert world.fake.attempts and not any(a.ok for a in world.fake.attempts)
    assert stage_of(db_url, job_id) == "queued"

    world.switch.down = False
    result = replay(worker_db_url, world.settings, since)
    assert result.mode == "svix" and result.outcomes["recover"] == 1
    wait_for(lambda: stage_of(db_url, job_id) == "downloading")

    # The next event fails too; replay just this job's events.
    world.switch.down = True
    settle(world, relay)
    world.switch.down = False
    result = replay(worker_db_url, world.settings, since, job_id)
    assert result.outcomes["resend"] == 2  # queued (a harmless duplicate) and downloading
    wait_for(lambda: world.fake.wait_idle() and stage_of(db_url, job_id) == "parsing")
    assert world.runner.claims["queued"] == 1  # the replayed duplicate changed nothing
    relay.stop()
