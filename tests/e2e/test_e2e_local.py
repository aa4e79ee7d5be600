"""`soulprint-import run`, end to end: real PostgreSQL, real receiver on loopback, real
signed events, the real embedder. Each test runs the CLI as a separate process, as a
person would.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests import export_factory as ef
from tests.cli_helpers import (
    COUNTS,
    LATEST_JOB,
    SAMPLE,
    cli,
    cli_env,
    parse_counts,
    run_import,
    scalar,
    start_cli,
    wait_for,
)


def test_sample_export_imports_end_to_end(db_url: str, tmp_path: Path) -> None:
    """Guards pitfalls 1 (work that vanishes), 5 (progress dead zone) and 9 (status never
    written): the upload alone drives every stage through signed HTTP events, each stage
    is timed on the job row, and the job is complete with its soulprint, counts equal to
    `parse`."""
    env = cli_env(db_url, tmp_path)
    code, result = run_import(SAMPLE, env)
    assert code == 0, result
    assert result["stage"] == "complete"
    expected = parse_counts(SAMPLE, env)
    for key in COUNTS:
        assert result[key] == expected[key], key
    assert result["embedded_chunks"] == result["chunks"] > 0
    assert result["soulprint_text"] and len(result["soulprint_text"]) > 200

    job_id = result["import_id"]
    assert (
        scalar(
            db_url,
            "select count(*) from memory_chunks where job_id = %s "
            "and embedding is not null and embedding_dim = 384",
            job_id,
        )
        == result["chunks"]
    )
    assert (
        scalar(
            db_url, "select import_status from user_profiles where current_import_id = %s", job_id
        )
        == "complete"
    )
    assert (
        scalar(
            db_url, "select soulprint_text from user_profiles where current_import_id = %s", job_id
        )
        == result["soulprint_text"]
    )
    # Every stage the job went through was started by a delivered, acknowledged event.
    for stage in ("queued", "downloading", "parsing", "generating_soulprint", "embedding"):
        assert stage in result["stage_timings"], stage
        delivered = scalar(
            db_url,
            "select count(*) from import_events e join event_deliveries d on d.event_id = e.id "
            "where e.job_id = %s and e.type = %s and d.status_code between 200 and 299 "
            "and e.acknowledged_at is not null",
            job_id,
            f"import.{stage}",
        )
        assert delivered >= 1, stage
    # Nobody's history stays on the worker's disk after the import.
    assert not list((tmp_path / "downloads").glob("*.export"))


@pytest.mark.parametrize(
    "shape",
    [
        "minified",
        "pretty",
        "wrapped",
        "zip",
        "split_zip",
        "directory",
        "era_2023",
        "era_2026_shards",
    ],
)
def test_every_export_shape_imports_with_parse_counts(
    shape: str, db_url: str, tmp_path: Path
) -> None:
    """Guards pitfall 4 (format variations): every export shape the reader knows imports
    completely, with the very counts `parse` reports."""
    convs = ef.make_export(6, 4, era="mixed")
    if shape == "minified":
        path = ef.write_json(tmp_path / "conversations.json", convs)
    elif shape == "pretty":
        path = ef.write_json(tmp_path / "conversations.json", convs, pretty=True)
    elif shape == "wrapped":
        path = ef.write_json(tmp_path / "conversations.json", convs, wrap=True)
    elif shape == "zip":
        path = ef.write_zip(tmp_path / "export.zip", convs)
    elif shape == "split_zip":
        path = ef.write_zip(tmp_path / "export.zip", convs, split=True, per_shard=2)
    elif shape == "directory":
        path = ef.write_dir(tmp_path / "export", convs, split=True)
    elif shape == "era_2023":
        path = ef.write_json(tmp_path / "conversations.json", ef.make_export(5, 6, era="2023"))
    else:
        path = ef.write_dir(tmp_path / "export", ef.make_export(5, 6, era="2026"), split=True)
    if path.is_dir():
        # A directory is uploaded as the zip the app would send.
        import shutil

        path = Path(shutil.make_archive(str(tmp_path / "dir-export"), "zip", path))
    env = cli_env(db_url, tmp_path / "data")
    code, result = run_import(path, env)
    assert code == 0, result
    expected = parse_counts(path, env)
    assert {k: result[k] for k in COUNTS} == {k: expected[k] for k in COUNTS}
    assert result["embedded_chunks"] == result["chunks"]


def big_export(tmp_path: Path, n: int = 120) -> Path:
    """Enough chunks (about 2 per conversation) that embedding takes several batches."""
    return ef.write_zip(
        tmp_path / "big-export.zip", ef.make_export(n, 4, era="mixed", assistant_chars=700)
    )


@contextmanager
def standin_env(db_url: str, data_dir: Path, latency_s: float = 1.0) -> Iterator[dict[str, str]]:
    """The CLI's environment with embeddings from the OpenAI stand-in (``latency_s`` per
    request of 96 chunks, one in flight): for tests of interruption, kill and cancel, where
    the embedder is not what is tested, the embedding stage is then slow enough to stop in
    its middle and costs no CPU."""
    from tests.fake_openai import fake_openai

    with fake_openai(latency_s=latency_s) as srv:
        yield cli_env(
            db_url,
            data_dir,
            EMBEDDING_PROVIDER="openai",
            OPENAI_BASE_URL=srv.base_url,
            OPENAI_API_KEY=srv.api_key,
            EMBEDDING_MODEL="text-embedding-3-small",
            EMBEDDING_DIMENSIONS="64",
            EMBEDDING_CONCURRENCY="1",
            EMBEDDING_BATCH_CHUNKS="1",
        )


def test_killed_mid_embedding_then_run_again_completes_without_duplicates(
    db_url: str, tmp_path: Path
) -> None:
    """Guards pitfalls 6 and 9 (a worker dies mid-import): SIGKILL during embedding, then
    `run` again: the job resumes from its last committed batch (after the lease expires)
    and completes with every chunk exactly once and every chunk embedded."""
    path = big_export(tmp_path)
    with standin_env(db_url, tmp_path / "data") as env:
        proc = start_cli("run", str(path), "--json", env=env)
        try:
            wait_for(
                db_url,
                LATEST_JOB,
                lambda j: j["stage"] == "embedding" and j["embedded_chunks"] >= 64,
            )
        finally:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        code, result = run_import(path, env)
    assert code == 0, result
    expected = parse_counts(path, env)
    assert result["chunks"] == expected["chunks"]
    job_id = result["import_id"]
    total, distinct, embedded = (
        scalar(db_url, "select count(*) from memory_chunks where job_id = %s", job_id),
        scalar(db_url, "select count(distinct id) from memory_chunks where job_id = %s", job_id),
        scalar(
            db_url,
            "select count(*) from memory_chunks where job_id = %s and embedding is not null",
            job_id,
        ),
    )
    assert total == distinct == embedded == expected["chunks"]
    assert scalar(db_url, "select count(*) from import_jobs") == 1  # resumed, not re-imported


def test_cancel_mid_stage_removes_partial_data(db_url: str, tmp_path: Path) -> None:
    """Guards the UX pitfall 'can't cancel a stuck import': `cancel` stops the running
    stage at its next batch, removes that import's rows and ends the job `cancelled`."""
    path = big_export(tmp_path)
    # Slow enough that `cancel` (a new process) arrives before the last batch.
    with standin_env(db_url, tmp_path / "data", latency_s=4.0) as env:
        proc = start_cli("run", str(path), "--json", env=env)
        job = wait_for(
            db_url, LATEST_JOB, lambda j: j["stage"] == "embedding" and j["embedded_chunks"] > 0
        )
        out = cli("cancel", str(job["id"]), env=env)
        assert out.returncode == 0, out.stderr
        stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 1, stderr
    assert json.loads(stdout)["stage"] == "cancelled"
    for table in ("memory_chunks", "import_conversations"):
        assert scalar(db_url, f"select count(*) from {table} where job_id = %s", job["id"]) == 0, (
            table
        )
    # The person can start again right away.
    code, result = run_import(SAMPLE, cli_env(db_url, tmp_path / "data"))
    assert code == 0 and result["stage"] == "complete"


@pytest.mark.parametrize(
    ("kind", "code"),
    [
        ("corrupt_zip", "corrupt_export"),
        ("not_an_export", "not_an_export"),
        ("png", "not_an_export"),
        ("oversized", "file_too_large"),
        ("empty_array", "empty_export"),
    ],
)
def test_bad_uploads_end_failed_with_a_readable_message(
    kind: str, code: str, db_url: str, tmp_path: Path
) -> None:
    """Guards pitfall 4 and the UX pitfall 'generic error messages': a bad upload ends
    `failed` with a code and a sentence a person understands, never a stuck job."""
    extra: dict[str, str] = {}
    if kind == "corrupt_zip":
        # Cut before any conversation (a zip damaged later is imported up to the damage,
        # as `parse` reads it: see test_e2e_field_exports).
        path = tmp_path / "export.zip"
        path.write_bytes(SAMPLE.read_bytes()[:200])
    elif kind == "not_an_export":
        path = tmp_path / "notes.txt"
        path.write_text("these are my notes, not an export\n")
    elif kind == "png":
        path = tmp_path / "photo.png"
        path.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(2000))
    elif kind == "oversized":
        path = SAMPLE
        extra["MAX_UPLOAD_BYTES"] = "1000"
    else:
        path = tmp_path / "conversations.json"
        path.write_text("[]")
    env = cli_env(db_url, tmp_path / "data", **extra)
    exit_code, result = run_import(path, env)
    assert exit_code == 1
    assert result["stage"] == "failed"
    assert result["error_code"] == code
    message = result["error_message"]
    assert message and message[0].isupper() and message.rstrip().endswith((".", ")"))
    assert "Traceback" not in message and "Error" not in message.split()[0]
    assert (
        scalar(
            db_url,
            "select import_status from user_profiles where user_id = %s",
            uuid.UUID(result["user_id"]),
        )
        == "failed"
    )


def test_openai_provider_end_to_end_through_a_429(db_url: str, tmp_path: Path) -> None:
    """Guards pitfall 9 (a rate-limited dependency must not lose the import): with the
    `openai` provider against a server speaking the real API that first answers 429, the
    import completes and records the model and dimension."""
    from tests.fake_openai import fake_openai

    with fake_openai(fail_first=1) as srv:
        env = cli_env(
            db_url,
            tmp_path / "data",
            EMBEDDING_PROVIDER="openai",
            OPENAI_BASE_URL=srv.base_url,
            OPENAI_API_KEY=srv.api_key,
            EMBEDDING_MODEL="text-embedding-3-small",
            EMBEDDING_DIMENSIONS="64",
        )
        code, result = run_import(SAMPLE, env)
    assert code == 0, result
    assert result["embedding_model"] == "text-embedding-3-small"
    assert result["embedding_dim"] == 64
    assert result["embedded_chunks"] == result["chunks"]
    # The first request was refused with 429 and sent again: one more request than batches.
    assert srv.fail_first == 0 and len(srv.requests) >= 2


def test_failed_stage_is_retried_from_where_it_failed(db_url: str, tmp_path: Path) -> None:
    """Guards pitfall 9 (status update failures leave the user stuck): a stage that fails
    (here: the embedding service rejects the key) leaves a `failed` job that says what went
    wrong; `retry` resumes it from that stage and it completes without re-reading."""
    from tests.fake_openai import fake_openai

    with fake_openai(api_key="sk-right-key-0123456789") as srv:
        base = dict(
            EMBEDDING_PROVIDER="openai",
            OPENAI_BASE_URL=srv.base_url,
            EMBEDDING_MODEL="text-embedding-3-small",
            EMBEDDING_DIMENSIONS="32",
        )
        env = cli_env(db_url, tmp_path / "data", OPENAI_API_KEY="sk-wrong-key-9876543210", **base)
        code, failed = run_import(SAMPLE, env)
        assert code == 1 and failed["stage"] == "failed"
        assert failed["error_code"] == "embedder_unavailable"
        assert "sk-wrong-key" not in (failed["error_message"] or "")
        chunks_before = scalar(
            db_url, "select count(*) from memory_chunks where job_id = %s", failed["import_id"]
        )
        env = cli_env(db_url, tmp_path / "data", OPENAI_API_KEY=srv.api_key, **base)
        out = cli("retry", failed["import_id"], "--json", env=env)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["stage"] == "complete"
    assert result["chunks"] == chunks_before == result["embedded_chunks"]


def test_truncated_export_imports_what_it_can_and_says_so(db_url: str, tmp_path: Path) -> None:
    """Guards pitfall 4 (incomplete exports): an export cut off mid-file is imported up to
    the break, with the very counts `parse` reports, and the soulprint's record of the
    import says the export was truncated and where."""
    data = ef.dumps(ef.make_export(12, 4, era="2025"))
    path = tmp_path / "conversations.json"
    path.write_bytes(data[: int(len(data) * 0.7)])
    env = cli_env(db_url, tmp_path / "data")
    code, result = run_import(path, env)
    assert code == 0, result
    expected = parse_counts(path, env)
    assert expected["truncated"] is True and 0 < expected["conversations"] < 12
    assert {k: result[k] for k in COUNTS} == {k: expected[k] for k in COUNTS}
    record = scalar(
        db_url, "select profile -> 'import' from soulprints where job_id = %s", result["import_id"]
    )
    assert record["export_truncated"] is True and record["export_error"]


def test_llm_narrates_the_soulprint_when_configured(db_url: str, tmp_path: Path) -> None:
    """Guards pitfall 9 (a job complete only with its soulprint): with an OpenAI-compatible
    chat service configured (a local server speaking the real API, rate-limiting once), the
    soulprint is the narrative it wrote from the structured profile."""
    from tests.fake_llm import FakeLLM

    portrait = "# You\n\nYou bake, you run, and you argue kindly with compilers."
    with FakeLLM(
        fail_times=1, fail_status=429, retry_after="0", reply=portrait, api_key="llm-key-123"
    ) as llm:
        env = cli_env(
            db_url,
            tmp_path / "data",
            LLM_PROVIDER="openai",
            LLM_BASE_URL=llm.base_url,
            LLM_API_KEY="llm-key-123",
            LLM_MODEL="gpt-test",
        )
        code, result = run_import(SAMPLE, env)
    assert code == 0, result
    assert result["soulprint_text"].strip() == portrait
    assert len(llm.requests) == 2
    sent = json.dumps(llm.requests[-1]["json"])
    assert '"topics"' in sent.replace('\\"', '"')  # the structured profile went out
    source = scalar(
        db_url,
        "select profile -> 'narration' ->> 'source' from soulprints where job_id = %s",
        result["import_id"],
    )
    assert source == "llm"


def test_interrupted_run_releases_its_job_and_resumes(db_url: str, tmp_path: Path) -> None:
    """Guards pitfall 9 and Render's SIGTERM: Ctrl-C (as a shutdown signal) during embedding
    commits the running batch and releases the lease, so the same command resumes at once
    from there (no waiting for a lease to expire) and completes with every chunk once."""
    path = big_export(tmp_path)
    with standin_env(db_url, tmp_path / "data") as env:
        proc = start_cli("run", str(path), env=env)
        wait_for(
            db_url, LATEST_JOB, lambda j: j["stage"] == "embedding" and j["embedded_chunks"] >= 64
        )
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 130, stderr
        assert "resume" in stderr
        job = wait_for(db_url, LATEST_JOB, lambda j: True)
        assert job["stage"] == "embedding" and job["lease_owner"] is None
        assert 0 < job["embedded_chunks"] < job["chunks"]
        code, result = run_import(path, env)
        assert code == 0, result
        assert result["import_id"] == str(job["id"])
        assert (
            scalar(
                db_url,
                "select count(*) from memory_chunks where job_id = %s and embedding is not null",
                job["id"],
            )
            == result["chunks"]
        )
