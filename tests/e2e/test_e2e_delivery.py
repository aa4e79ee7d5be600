"""At-least-once delivery with the real stages: repeats, stale events and shuffled order
give exactly the data of one clean delivery."""

from __future__ import annotations

import json
import random
import time
import uuid
from pathlib import Path

import httpx
import numpy as np
import psycopg

from handlers.app import create_app
from handlers.server import serve_in_thread
from pipeline.embedded import worker_url
from pipeline.local import new_webhook_secret
from pipeline.settings import Settings
from pipeline.stages import make_work_sources
from pipeline.storage import LocalBucket
from tests.dbutil import create_user, upload_object
from tests.delivery_helpers import signed

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample-export.zip"
TERMINAL = {"complete", "failed", "cancelled", "rejected"}


def snapshot(db_url: str, job_id: uuid.UUID) -> dict[str, object]:
    """Everything the person gets from an import, independent of ids and clocks."""
    with psycopg.connect(db_url) as conn:
        job = conn.execute(
            "select stage::text, conversations, messages, user_messages, assistant_messages, "
            "chunks, embedded_chunks from import_jobs where id = %s",
            (job_id,),
        ).fetchone()
        chunks = conn.execute(
            "select id, content, embedding::text from memory_chunks where job_id = %s order by id",
            (job_id,),
        ).fetchall()
        vectors = np.array([json.loads(v) for _, _, v in chunks], dtype=np.float32)
        chunks = [(i, content) for i, content, _ in chunks]
        conversations = conn.execute(
            "select conversation_id, message_count from import_conversations where job_id = %s "
            "order by conversation_id",
            (job_id,),
        ).fetchall()
        soulprint = conn.execute(
            "select soulprint_text from soulprints where job_id = %s", (job_id,)
        ).fetchone()
    return {
        "job": job,
        "chunks": chunks,
        "vectors": vectors,
        "conversations": conversations,
        "soulprint": soulprint[0] if soulprint else None,
    }


def import_with(db_url: str, tmp_path: Path, deliver) -> dict[str, object]:
    """Upload the sample for a new person and drive it with `deliver(events, post)`."""
    secret = new_webhook_secret()
    settings = Settings(
        data_dir=tmp_path / "worker",
        local_bucket_dir=tmp_path / "bucket",
        webhook_secret=secret,
        lease_seconds=30,
    )
    worker = worker_url(db_url)
    server = serve_in_thread(
        create_app(settings, conninfo=worker, sources=make_work_sources(settings, worker))
    )
    user = create_user(db_url)
    LocalBucket(tmp_path / "bucket").put("imports", f"{user}/export.zip", SAMPLE)
    upload_object(db_url, user, name="export.zip", size=SAMPLE.stat().st_size)
    url = server.url + "/webhooks/supabase"
    sent: set[uuid.UUID] = set()

    def post(event_id: str, body: str) -> int:
        return httpx.post(
            url, content=body, headers=signed(secret, body, msg_id=event_id), timeout=10
        ).status_code

    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            job_id = conn.execute(
                "select id from import_jobs where user_id = %s", (user,)
            ).fetchone()[0]
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                stage = conn.execute(
                    "select stage::text from import_jobs where id = %s", (job_id,)
                ).fetchone()[0]
                if stage in TERMINAL:
                    break
                events = conn.execute(
                    "select id, payload::text from import_events where job_id = %s "
                    "order by created_at",
                    (job_id,),
                ).fetchall()
                fresh = [(str(i), body) for i, body in events if i not in sent]
                sent.update(i for i, _ in events)
                deliver(fresh, [(str(i), body) for i, body in events], post)
                time.sleep(0.2)
    finally:
        server.stop()
    return snapshot(db_url, job_id)


def test_repeated_stale_and_shuffled_events_give_the_clean_result(
    db_url: str, tmp_path: Path
) -> None:
    """Guards pitfalls 7 (duplicate imports) and 1 (work that vanishes): every event is
    delivered three times, every old event is re-sent under a new id (as a sweeper or a
    replay would), in shuffled order, with the real stages behind the receiver. The person
    ends up with exactly what one clean delivery gives: same counts, same chunks and
    vectors, same soulprint."""

    def clean(fresh, _all, post):
        for event_id, body in fresh:
            assert post(event_id, body) in (200, 202)

    rng = random.Random(7)

    def chaotic(fresh, every, post):
        batch = [e for e in fresh for _ in range(3)]
        batch += [(str(uuid.uuid4()), body) for _, body in every]  # stale, new ids
        rng.shuffle(batch)
        for event_id, body in batch:
            assert post(event_id, body) in (200, 202, 503)

    expected = import_with(db_url, tmp_path / "clean", clean)
    got = import_with(db_url, tmp_path / "chaos", chaotic)
    assert expected["job"][0] == "complete"
    expected_vectors, got_vectors = expected.pop("vectors"), got.pop("vectors")
    assert got == expected
    # Batches may group chunks differently; a vector is the same up to float rounding.
    assert np.allclose(got_vectors, expected_vectors, atol=1e-5)
