"""The embedding stage on the real database, against an embeddings API speaking the real wire
format: the next batch is embedded while the current one is written."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import psycopg
import pytest

from pipeline.embedding import clear_embedder_cache
from pipeline.jobstore import JobStore
from pipeline.settings import Settings
from pipeline.stages import run_stage
from tests import export_factory as ef
from tests.dbutil import create_user, upload_object
from tests.fake_openai import FakeOpenAI, fake_openai, fake_vector
from tests.fake_storage import fake_storage, worker_settings

DIMS = 32
API_BATCH = 96  # inputs per embeddings request (OpenAIEmbedder.batch_size)


@pytest.fixture
def parsed(db_url: str, worker_db_url: str, tmp_path: Path) -> Iterator[tuple[object, int]]:
    """A job of about 245 chunks (three requests' worth), parsed, its soulprint shown, and
    waiting in `embedding`."""
    user = create_user(db_url)
    folder = tmp_path / "bucket" / "imports" / str(user)
    folder.mkdir(parents=True)
    export = ef.write_zip(
        folder / "export.zip", ef.make_export(120, 4, era="mixed", assistant_chars=700)
    )
    upload_object(db_url, user, name="export.zip", size=export.stat().st_size)
    store = JobStore(worker_db_url)
    job_id = store.latest_for_user(user).id
    with fake_storage(tmp_path / "bucket") as storage:
        settings = worker_settings(tmp_path / "worker", storage.url)
        for stage in ("queued", "downloading", "parsing", "generating_soulprint"):
            assert run_stage(job_id, stage, settings, store, worker_db_url) == "done"
    chunks = store.get(job_id).chunks
    assert chunks > 2 * API_BATCH
    yield job_id, chunks
    store.close()


def embedding_settings(srv: FakeOpenAI, tmp_path: Path, concurrency: int) -> Settings:
    clear_embedder_cache()
    return Settings(
        data_dir=tmp_path / "worker",
        embedding_provider="openai",
        openai_base_url=srv.base_url,
        openai_api_key=srv.api_key,
        embedding_model="text-embedding-3-small",
        embedding_dimensions=DIMS,
        embedding_concurrency=concurrency,
    )


def stored(db_url: str, job_id: object) -> list[tuple[str, str | None]]:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "select content, embedding::text from memory_chunks where job_id = %s", (job_id,)
        ).fetchall()


def embedded_texts(srv: FakeOpenAI, ok_requests: int) -> Counter[str]:
    return Counter(t for r in srv.embedding_requests[:ok_requests] for t in r.body["input"])


@pytest.mark.parametrize("concurrency", [1, 4])
def test_every_chunk_gets_the_vector_of_its_own_text(
    parsed, db_url, worker_db_url, tmp_path, concurrency
):
    """Guards pitfall 9 (a job marked done with wrong data): while one batch is written and
    the next is embedded, and while requests run side by side, no vector lands on another
    chunk's row, and every chunk has one."""
    job_id, chunks = parsed
    with fake_openai() as srv:
        store = JobStore(worker_db_url)
        settings = embedding_settings(srv, tmp_path, concurrency)
        assert run_stage(job_id, "embedding", settings, store, worker_db_url) == "done"
        job = store.get(job_id)
        store.close()
    assert str(job.stage) == "complete" and job.embedded_chunks == chunks
    rows = stored(db_url, job_id)
    assert len(rows) == chunks
    for content, vector in rows:
        got = np.asarray(vector.strip("[]").split(","), dtype=np.float32)
        assert np.allclose(got, fake_vector(content.strip() or " ", DIMS), atol=1e-5)
    assert sum(embedded_texts(srv, len(srv.embedding_requests)).values()) == chunks


def test_a_failing_service_keeps_the_written_batches_and_retry_finishes_the_rest(
    parsed, db_url, worker_db_url, tmp_path
):
    """Guards pitfall 9 (a failing stage must say so and be retryable) and pitfall 6 (no
    work repeated): the service refuses the third batch while the second is being written;
    the job fails with a readable message, keeps the two written batches, and a retry
    embeds only what is left, each chunk exactly once."""
    job_id, chunks = parsed
    # Two refusals: the third batch as asked (base64), then asked again for floats (what
    # the embedder does when a server refuses base64).
    with fake_openai(fail_after=2, fail_first=2, fail_status=400) as srv:
        store = JobStore(worker_db_url)
        settings = embedding_settings(srv, tmp_path, concurrency=1)  # one batch, one request
        assert run_stage(job_id, "embedding", settings, store, worker_db_url) == "failed"
        job = store.get(job_id)
        assert str(job.stage) == "failed" and job.error_message
        assert "refused" in job.error_message and "Traceback" not in job.error_message
        assert job.embedded_chunks == 2 * API_BATCH
        assert sum(v is not None for _, v in stored(db_url, job_id)) == 2 * API_BATCH
        first_run = len(srv.embedding_requests)  # two that worked, the third refused twice

        assert store.retry(job_id) is not None
        assert run_stage(job_id, "embedding", settings, store, worker_db_url) == "done"
        job = store.get(job_id)
        store.close()
    assert job.embedded_chunks == chunks
    assert all(v is not None for _, v in stored(db_url, job_id))
    done = embedded_texts(srv, 2) + Counter(
        t for r in srv.embedding_requests[first_run:] for t in r.body["input"]
    )
    assert sum(done.values()) == chunks  # nothing embedded twice, nothing skipped
