"""The raw export in Storage: fetched only from the person's own folder (F2), deleted once
it has served (F7). Production shape: the fake Storage API over HTTP, the worker's JWT."""

from __future__ import annotations

import hashlib
import os
import shutil
import uuid
from pathlib import Path

import psycopg
import pytest

from pipeline.jobstore import JobStore
from pipeline.settings import Settings
from pipeline.stages import run_stage
from tests.dbutil import create_user, jobs_for, upload_object, walk_to
from tests.fake_openai import fake_openai
from tests.fake_storage import fake_storage, worker_settings

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample-export.zip"


def _store_file(bucket_root: Path, name: str, src: Path) -> Path:
    target = bucket_root / "imports" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, target)
    return target


def _point_job_at(db_url: str, job_id: uuid.UUID, name: str) -> None:
    """A job whose object name climbs out of its folder: what the trigger queued before it
    refused such names (jobs in flight during the deploy)."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("update public.import_jobs set object_name = %s where id = %s", (name, job_id))


@pytest.mark.parametrize("bucket", ["local", "supabase"])
def test_path_traversal_never_downloads_another_persons_export(
    bucket: str, db_url: str, worker_db_url: str, tmp_path: Path
) -> None:
    """F2: a job for `{me}/../{victim}/export.zip` fetched the victim's file in local mode
    and completed with their history as mine. Every bucket implementation now refuses any
    name outside `bucket/{user_id}/`: the job fails with a sentence, the victim's bytes are
    never read."""
    me, victim = create_user(db_url), create_user(db_url)
    bucket_root = tmp_path / "bucket"
    _store_file(bucket_root, f"{victim}/export.zip", SAMPLE)
    _store_file(bucket_root, f"{me}/export.zip", SAMPLE)
    upload_object(db_url, me)
    job_id = jobs_for(db_url, me)[0]["id"]
    _point_job_at(db_url, job_id, f"{me}/../{victim}/export.zip")
    store = JobStore(worker_db_url)

    def run(settings: Settings) -> None:
        assert run_stage(job_id, "queued", settings, store, worker_db_url) == "done"
        assert run_stage(job_id, "downloading", settings, store, worker_db_url) == "failed"

    if bucket == "local":
        run(Settings(data_dir=tmp_path / "worker", local_bucket_dir=bucket_root))
    else:
        with fake_storage(bucket_root) as storage:
            run(worker_settings(tmp_path / "worker", storage.url))
        assert storage.requests == []
    job = store.get(job_id)
    assert job.error_code == "bad_object" and job.error_message.endswith(".")
    assert job.sha256 is None
    assert not list((tmp_path / "worker" / "downloads").glob("*.export"))


def test_a_symlink_in_my_folder_does_not_reach_another_persons_export(
    db_url: str, worker_db_url: str, tmp_path: Path
) -> None:
    """F2 (local bucket): the containment check is on the resolved path, so a link planted
    in my folder to someone else's file is refused too."""
    me, victim = create_user(db_url), create_user(db_url)
    bucket_root = tmp_path / "bucket"
    target = _store_file(bucket_root, f"{victim}/export.zip", SAMPLE)
    (bucket_root / "imports" / str(me)).mkdir(parents=True)
    os.symlink(target, bucket_root / "imports" / str(me) / "export.zip")
    upload_object(db_url, me)
    job_id = jobs_for(db_url, me)[0]["id"]
    store = JobStore(worker_db_url)
    settings = Settings(data_dir=tmp_path / "worker", local_bucket_dir=bucket_root)
    run_stage(job_id, "queued", settings, store, worker_db_url)
    assert run_stage(job_id, "downloading", settings, store, worker_db_url) == "failed"
    assert store.get(job_id).error_code == "bad_object"


def _import_to_completion(
    db_url: str, worker_db_url: str, settings: Settings, user: uuid.UUID
) -> uuid.UUID:
    """Download for real, skip parsing (no chunks), then the soulprint and the (empty)
    embedding stage for real: the raw export leaves Storage when the job completes."""
    job_id = jobs_for(db_url, user)[-1]["id"]
    store = JobStore(worker_db_url)
    assert run_stage(job_id, "queued", settings, store, worker_db_url) == "done"
    assert run_stage(job_id, "downloading", settings, store, worker_db_url) == "done"
    walk_to(db_url, job_id, "generating_soulprint")
    assert run_stage(job_id, "generating_soulprint", settings, store, worker_db_url) == "done"
    with fake_openai() as srv:  # no chunks to embed; the embedder is only configured
        embedding = settings.model_copy(
            update={
                "embedding_provider": "openai",
                "openai_base_url": srv.base_url,
                "openai_api_key": srv.api_key,
            }
        )
        assert run_stage(job_id, "embedding", embedding, store, worker_db_url) == "done"
    assert str(store.get(job_id).stage) == "complete"
    return job_id


def test_the_raw_export_is_deleted_from_storage_after_a_successful_import(
    db_url: str, worker_db_url: str, tmp_path: Path
) -> None:
    """F7: the pipeline kept everyone's whole chat history in the bucket forever. Once the
    import is complete the worker deletes it through the Storage API, as its own role."""
    user = create_user(db_url)
    stored = _store_file(tmp_path / "bucket", f"{user}/export.zip", SAMPLE)
    upload_object(db_url, user, size=SAMPLE.stat().st_size)
    with fake_storage(tmp_path / "bucket") as storage:
        _import_to_completion(
            db_url, worker_db_url, worker_settings(tmp_path / "worker", storage.url), user
        )
    assert not stored.exists()
    assert [(m, role) for m, _, role in storage.requests if m == "DELETE"] == [
        ("DELETE", "import_storage_reader")
    ]


def test_keep_export_after_import_keeps_it(db_url: str, worker_db_url: str, tmp_path: Path) -> None:
    """F7: KEEP_EXPORT_AFTER_IMPORT=1 keeps the raw export (an operator's choice)."""
    os.environ["KEEP_EXPORT_AFTER_IMPORT"] = "1"
    try:
        assert Settings.from_env().keep_export_after_import is True
    finally:
        del os.environ["KEEP_EXPORT_AFTER_IMPORT"]
    user = create_user(db_url)
    stored = _store_file(tmp_path / "bucket", f"{user}/export.zip", SAMPLE)
    upload_object(db_url, user, size=SAMPLE.stat().st_size)
    with fake_storage(tmp_path / "bucket") as storage:
        settings = worker_settings(tmp_path / "worker", storage.url).model_copy(
            update={"keep_export_after_import": True}
        )
        _import_to_completion(db_url, worker_db_url, settings, user)
    assert (
        hashlib.sha256(stored.read_bytes()).digest() == hashlib.sha256(SAMPLE.read_bytes()).digest()
    )
    assert not [r for r in storage.requests if r[0] == "DELETE"]


def test_a_newer_upload_at_the_same_path_is_not_deleted(
    db_url: str, worker_db_url: str, tmp_path: Path
) -> None:
    """F7: the person re-uploaded to the same path while the import ran: that newer file
    belongs to their next import and stays."""
    user = create_user(db_url)
    stored = _store_file(tmp_path / "bucket", f"{user}/export.zip", SAMPLE)
    upload_object(db_url, user, size=SAMPLE.stat().st_size, version="v1")
    job_id = jobs_for(db_url, user)[0]["id"]
    store = JobStore(worker_db_url)
    with fake_storage(tmp_path / "bucket") as storage:
        settings = worker_settings(tmp_path / "worker", storage.url)
        run_stage(job_id, "queued", settings, store, worker_db_url)
        run_stage(job_id, "downloading", settings, store, worker_db_url)
        upload_object(db_url, user, size=SAMPLE.stat().st_size, version="v2")  # rejected job
        walk_to(db_url, job_id, "generating_soulprint")
        assert run_stage(job_id, "generating_soulprint", settings, store, worker_db_url) == "done"
    assert stored.exists()
    assert not [r for r in storage.requests if r[0] == "DELETE"]
