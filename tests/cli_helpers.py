"""The CLI as a person runs it, for end-to-end tests: a separate process with the test
database and data dir in its environment (provider and secret variables of the developer's
shell removed), plus small polling and query helpers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = ROOT / "examples" / "sample-export.zip"
COUNTS = ("conversations", "messages", "user_messages", "assistant_messages", "chunks")


def cli_env(db_url: str, data_dir: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("EMBEDDING_", "OPENAI_", "LLM_", "WEBHOOK_", "SUPABASE_"))
    }
    env.update(DATABASE_URL=db_url, SOULPRINT_DATA_DIR=str(data_dir), **extra)
    return env


def cli(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "pipeline.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_cli(*args: str, env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )


def parse_counts(path: Path, env: dict[str, str]) -> dict[str, int]:
    out = cli("parse", str(path), "--json", env=env)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def run_import(path: Path, env: dict[str, str], *extra: str) -> tuple[int, dict]:
    out = cli("run", str(path), "--json", *extra, env=env)
    assert out.stdout.strip(), f"no JSON result; stderr:\n{out.stderr[-3000:]}"
    return out.returncode, json.loads(out.stdout)


def scalar(db_url: str, sql: str, *params: object) -> object:
    with psycopg.connect(db_url) as conn:
        return conn.execute(sql, params).fetchone()[0]


def wait_for(db_url: str, job_sql: str, predicate, timeout: float = 120) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with psycopg.connect(db_url) as conn:
            conn.row_factory = psycopg.rows.dict_row
            row = conn.execute(job_sql).fetchone()
        if row is not None and predicate(row):
            return row
        time.sleep(0.1)
    raise AssertionError(f"condition not reached within {timeout}s; last row: {row}")


LATEST_JOB = "select * from public.import_jobs order by created_at desc limit 1"
