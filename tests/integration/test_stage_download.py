"""The downloading stage in production shape: Supabase Storage over HTTP, as the worker role."""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path

import psycopg
import pytest

from pipeline.jobstore import JobStore
from pipeline.settings import Settings
from pipeline.stages import run_stage
from tests.dbutil import create_user, upload_object
from tests.fake_storage import fake_storage, worker_settings

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample-export.zip"


def latest_job_id(db_url: str, user_id: object) -> object:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "select id from import_jobs where user_id = %s order by created_at desc limit 1",
            (user_id,),
        ).fetchone()[0]


@pytest.fixture
def uploaded(db_url: str, tmp_path: Path):
    """The sample export stored in the fake bucket, with its storage.objects row."""
    user = create_user(db_url)
    name = f"{user}/export.zip"
    target = tmp_path / "bucket" / "imports" / name
    target.parent.mkdir(parents=True)
    shutil.copyfile(SAMPLE, target)
    upload_object(db_url, user, name="export.zip", size=SAMPLE.stat().st_size)
    return user, latest_job_id(db_url, user), tmp_path / "bucket"


def test_download_mints_its_own_signed_url_as_the_worker_role(
    uploaded, db_url: str, worker_db_url: str, tmp_path: Path
) -> None:
    """Guards pitfalls 8 (expired links) and 3 (service key in the worker): the job waits
    90 minutes in the queue, then the worker makes a fresh signed URL at the moment of
    download, authenticated as the Storage-only `import_storage_reader` (not service_role),
    and streams it to disk; the job records size and sha256 and moves on to parsing. Issue 15
    item 4: with no parsing to hand the copy to here, it leaves this disk with the stage."""
    _, job_id, bucket_root = uploaded
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "update import_jobs set created_at = now() - interval '90 minutes' where id = %s",
            (job_id,),
        )
    store = JobStore(worker_db_url)
    with fake_storage(bucket_root) as storage:
        settings = worker_settings(tmp_path / "worker", storage.url)
        assert run_stage(job_id, "queued", settings, store, worker_db_url) == "done"
        assert run_stage(job_id, "downloading", settings, store, worker_db_url) == "done"
    job = store.get(job_id)
    assert str(job.stage) == "parsing"
    assert job.bytes_total == job.bytes_done == SAMPLE.stat().st_size
    assert job.sha256 == hashlib.sha256(SAMPLE.read_bytes()).hexdigest()
    assert [(m, role) for m, _, role in storage.requests] == [
        ("POST", "import_storage_reader"),
        ("GET", None),
    ]
    assert not list((settings.data_dir / "downloads").iterdir())


def test_a_role_storage_does_not_serve_fails_readably(
    uploaded, worker_db_url: str, tmp_path: Path
) -> None:
    """Guards pitfall 3: the worker has no key that reads other people's buckets; when
    Storage refuses, the job fails with a sentence instead of hanging."""
    _, job_id, bucket_root = uploaded
    store = JobStore(worker_db_url)
    with fake_storage(bucket_root) as storage:
        settings = worker_settings(tmp_path / "worker", storage.url, role="anon")
        run_stage(job_id, "queued", settings, store, worker_db_url)
        assert run_stage(job_id, "downloading", settings, store, worker_db_url) == "failed"
    job = store.get(job_id)
    assert str(job.stage) == "failed" and job.error_code == "object_missing"
    assert job.error_message.endswith(".")


def test_a_stale_or_repeated_event_changes_nothing(
    uploaded, worker_db_url: str, tmp_path: Path
) -> None:
    """Guards pitfall 7 (duplicate work): an event for a stage the job already left, or a
    second delivery of the current one while it runs elsewhere, is not claimed."""
    _, job_id, bucket_root = uploaded
    store = JobStore(worker_db_url)
    with fake_storage(bucket_root) as storage:
        settings = worker_settings(tmp_path / "worker", storage.url)
        assert run_stage(job_id, "queued", settings, store, worker_db_url) == "done"
        assert run_stage(job_id, "queued", settings, store, worker_db_url) == "not_claimed"
        held = store.claim(job_id, "downloading", "someone-else", 60)
        assert held is not None
        assert run_stage(job_id, "downloading", settings, store, worker_db_url) == "not_claimed"
    assert str(store.get(job_id).stage) == "downloading"
    assert storage.requests == []


def test_settings_hold_no_service_role_key() -> None:
    """Guards pitfall 3: the worker's configuration has no place for the service-role key,
    and the Render blueprint does not ask for one."""
    fields = set(Settings.model_fields)
    assert not any("service" in f for f in fields)
    keys = re.findall(r"-\s*key:\s*(\S+)", (ROOT / "render.yaml").read_text())
    assert "DATABASE_URL" in keys and "SUPABASE_WORKER_JWT" in keys
    assert not [k for k in keys if "SERVICE" in k.upper()]
