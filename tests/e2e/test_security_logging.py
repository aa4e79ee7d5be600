"""Issue 8 F3: no token, key, signed URL or secret in any log record, event or job row.

One full import in production shape, in this process: the receiver on loopback, the relay
signing every event, the stages downloading through a signed Storage URL from the fake
Storage API (tests/fake_storage.py) with the worker's JWT. Every log record of every logger,
at DEBUG, is captured and searched.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg.rows import dict_row

from pipeline import lifecycle
from pipeline.commands.output import watch
from pipeline.local import LocalRuntime, local_bucket_root, new_webhook_secret
from pipeline.log_redaction import redact
from tests.fake_storage import fake_storage, worker_settings

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample-export.zip"


def test_a_production_import_logs_no_signed_url_token_or_secret(
    db_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Guards pitfall 8 (a signed link is a credential while it lives) and pitfall 3 (keys
    in the worker), issue 8 F3: httpx logs every request line at INFO, and the download's
    request line is the signed URL with its `token=`. After a whole import nothing in the
    logs, the job row, the events or the delivery log holds a token, the worker JWT, the
    webhook secret or any other configured key."""
    caplog.set_level(logging.DEBUG)
    for name in ("httpx", "httpcore", "pipeline", "handlers", "uvicorn", "psycopg"):
        caplog.set_level(logging.DEBUG, logger=name)

    data_dir = tmp_path / "data"
    with fake_storage(local_bucket_root(worker_settings(data_dir, "x"))) as storage:
        settings = worker_settings(data_dir, storage.url).model_copy(
            update=dict(
                database_url=db_url,
                webhook_secret=new_webhook_secret(),
                openai_api_key="sk-test-openai-key-never-logged",
                llm_api_key="sk-test-llm-key-never-logged",
            )
        )
        user = uuid.uuid4()
        lifecycle.reset()
        try:
            with LocalRuntime(settings) as runtime:
                runtime.ensure_user(user)
                job_id = runtime.upload(SAMPLE, user)
                job = watch(runtime, job_id, show_progress=False)
        finally:
            lifecycle.reset()  # the receiver's shutdown set the process-wide flag
        assert str(job.stage) == "complete"
        # The download really went through a signed URL (so there was a token to leak), and
        # the raw export was then deleted with the worker's JWT (so there was a key to leak).
        assert [m for m, _, _ in storage.requests] == ["POST", "GET", "DELETE"]

    secrets = [
        s
        for s in (
            settings.supabase_worker_jwt,
            settings.webhook_secret,
            settings.webhook_secret.removeprefix("whsec_"),
            settings.supabase_anon_key,
            settings.openai_api_key,
            settings.llm_api_key,
        )
        if s
    ]
    texts = [r.getMessage() for r in caplog.records]
    texts += [str(r.exc_info[1]) for r in caplog.records if r.exc_info and r.exc_info[1]]
    assert any("HTTP Request: GET" in t and "/object/sign/" in t for t in texts)
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        texts += [
            str(r)
            for r in conn.execute("select * from public.import_jobs where id = %s", (job_id,))
        ]
        texts += [
            str(r)
            for r in conn.execute("select * from public.import_events where job_id = %s", (job_id,))
        ]
        texts += [
            str(r)
            for r in conn.execute(
                "select d.* from public.event_deliveries d join public.import_events e"
                " on e.id = d.event_id where e.job_id = %s",
                (job_id,),
            )
        ]
    leaks = [
        t
        for t in texts
        if "token=" in t.replace("token=[redacted]", "") or any(s in t for s in secrets)
    ]
    assert leaks == []


def test_redaction_keeps_the_request_line_readable() -> None:
    """Guards pitfall 8 (a signed link is a credential while it lives), issue 8 F3: the
    query string of a URL is dropped, the method, path and status stay for debugging."""
    line = (
        "HTTP Request: GET https://p.supabase.co/storage/v1/object/sign/imports/u/x.zip"
        '?token=eyJhbGciOi.abc.def&download= "HTTP/1.1 200 OK"'
    )
    assert redact(line) == (
        "HTTP Request: GET https://p.supabase.co/storage/v1/object/sign/"
        'imports/u/x.zip?[redacted] "HTTP/1.1 200 OK"'
    )
