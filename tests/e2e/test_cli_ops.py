"""The operational commands as a person or an operator meets them: status, cancel, retry,
migrate, db up, sweep and run's refusals, on the real database (worker role where production
uses it), in process or as a real subprocess where the terminal matters."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
import zipfile
from pathlib import Path

import orjson
import psycopg
import pytest

from pipeline.cli import main
from pipeline.exports.reader import ExportReader
from pipeline.jobstore import JobStore
from pipeline.local import directory_as_zip
from pipeline.settings import Settings
from pipeline.sizes import human_bytes
from pipeline.storage import too_large
from tests.dbutil import create_user, finish_import, jobs_for, upload_object, walk_to

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample-export.zip"
# An idempotent migration whose history row a test may delete to make it "pending".
PENDING = "20261128300000"


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """A clean environment for in-process CLI calls; returns a setter for DATABASE_URL."""
    for name in list(os.environ):
        if name.startswith(("EMBEDDING_", "OPENAI_", "LLM_", "WEBHOOK_", "SUPABASE_")) or name in (
            "LEASE_SECONDS",
            "MAX_ATTEMPTS",
            "DATABASE_URL",
        ):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SOULPRINT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SOULPRINT_LOCAL_BUCKET_DIR", str(tmp_path / "bucket"))
    return lambda url: monkeypatch.setenv("DATABASE_URL", url)


def _job(db_url: str, name: str = "export.zip", user: uuid.UUID | None = None) -> uuid.UUID:
    user = user or create_user(db_url)
    upload_object(db_url, user, name=name)
    return jobs_for(db_url, user)[-1]["id"]


def _fail(db_url: str, job_id: uuid.UUID) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("select public.claim_import_job(%s, 'queued', 'w', 60)", (job_id,))
        conn.execute("select public.fail_import_job(%s, 'w', 'boom', 'It broke.')", (job_id,))


def _history_has(db_url: str, version: str) -> bool:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "select exists (select 1 from supabase_migrations.schema_migrations"
            " where version = %s)",
            (version,),
        ).fetchone()[0]


# -- Defect 2: resolving a connection has no side effects --------------------------------


def test_status_cancel_and_retry_no_wait_work_as_the_worker_role(
    db_url: str,
    worker_db_url: str,
    env,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Guards pitfall 3 (service key in the worker): production's DATABASE_URL is the
    least-privilege worker role, and the operator commands must work with it instead of
    dying on `permission denied for schema auth` while trying to migrate."""
    running, failed = _job(db_url), _job(db_url)
    _fail(db_url, failed)
    env(worker_db_url)
    assert main(["status"]) == 0
    listing = capsys.readouterr().out
    assert str(running) in listing and str(failed) in listing
    assert main(["status", str(failed)]) == 0
    assert "It broke." in capsys.readouterr().out
    assert main(["retry", str(failed), "--no-wait"]) == 0
    assert "re-opened at queued" in capsys.readouterr().out
    assert main(["cancel", str(running)]) == 0
    assert "cancelled" in capsys.readouterr().out


def test_a_read_only_command_never_migrates_and_migrate_does(
    db_url: str,
    env,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With an admin URL, `status` used to apply pending migrations to the database it
    read (production, if pointed there). Now only `migrate` (or `db up`, or a local `run`)
    changes the schema."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "delete from supabase_migrations.schema_migrations where version = %s", (PENDING,)
        )
    env(db_url)
    assert main(["status"]) == 0
    assert not _history_has(db_url, PENDING)
    assert main(["migrate"]) == 0
    assert f"applied {PENDING}_receipt_retention" in capsys.readouterr().out
    assert _history_has(db_url, PENDING)
    assert main(["migrate"]) == 0
    assert capsys.readouterr().out.strip() == "up to date"


def test_migrating_as_the_worker_role_says_what_to_do(
    worker_db_url: str,
    env,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`migrate` and `db up` with the worker's URL end with a sentence naming the fix, not
    a psycopg traceback."""
    env(worker_db_url)
    for argv in (["migrate"], ["db", "up"]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "may not change the schema" in err and "admin" in err


# -- Defect 3: locked out after Ctrl-C ----------------------------------------------------


def test_the_running_import_is_found_behind_a_refused_upload(
    db_url: str,
    worker_db_url: str,
) -> None:
    """Guards pitfall 9 (user stuck): an interrupted import sits unleased in `embedding`;
    an upload of another file is refused (`rejected`, newer). The running one is still
    what `run` finds and resumes, not the refused one."""
    user = create_user(db_url)
    interrupted = _job(db_url, "first.zip", user)
    walk_to(db_url, interrupted, "embedding")
    refused = _job(db_url, "second.zip", user)
    with JobStore(worker_db_url) as store:
        assert store.latest_for_user(user).id == refused
        assert store.get(refused).stage == "rejected"
        assert store.active_for_user(user).id == interrupted


def test_run_of_another_file_names_the_running_import_and_how_to_go_on(
    db_url: str,
    env,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Guards pitfall 7 (duplicate imports) without locking the person out: `run` of a
    different file while an import runs is refused with that import's id, how to resume it
    and how to cancel it; nothing new is uploaded."""
    user = create_user(db_url)
    interrupted = _job(db_url, "first.zip", user)
    walk_to(db_url, interrupted, "embedding")
    other = tmp_path / "second.zip"
    other.write_bytes(SAMPLE.read_bytes())
    env(db_url)
    assert main(["run", str(other), "--user", str(user)]) == 1
    err = capsys.readouterr().err
    assert str(interrupted) in err and "embedding" in err
    assert "soulprint-import run first.zip" in err
    assert f"soulprint-import cancel {interrupted}" in err
    assert len(jobs_for(db_url, user)) == 1


def test_retry_while_another_import_runs_names_it(
    db_url: str,
    worker_db_url: str,
    env,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Guards pitfall 7 (duplicate imports) without a dead end: retrying a failed import
    while a newer one runs is refused with the running one's id and how to resume or cancel
    it, instead of "has not failed"."""
    user = create_user(db_url)
    failed = _job(db_url, "old.zip", user)
    _fail(db_url, failed)
    running = _job(db_url, "new.zip", user)
    env(worker_db_url)
    assert main(["retry", str(failed), "--no-wait"]) == 1
    err = capsys.readouterr().err
    assert str(running) in err and f"soulprint-import cancel {running}" in err
    assert "soulprint-import run new.zip" in err


# -- Defect 4: the CLI ----------------------------------------------------------------------


def test_cancel_of_a_finished_import_says_so_and_exits_1(
    db_url: str,
    env,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Cancelling a failed import used to print "Cancel requested" and exit 0."""
    job_id = _job(db_url)
    _fail(db_url, job_id)
    env(db_url)
    assert main(["cancel", str(job_id)]) == 1
    captured = capsys.readouterr()
    assert "not running (it is failed)" in captured.err and "requested" not in captured.out
    assert main(["cancel", str(uuid.uuid4())]) == 1
    assert "no import" in capsys.readouterr().err


def test_a_bad_setting_names_its_variable(
    db_url: str,
    env,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`LEASE_SECONDS=abc` used to raise a bare ValueError from int()."""
    env(db_url)
    monkeypatch.setenv("LEASE_SECONDS", "abc")
    monkeypatch.setenv("EMBEDDING_CONCURRENCY", "four")
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert "LEASE_SECONDS=abc" in err and "EMBEDDING_CONCURRENCY=four" in err
    assert "Traceback" not in err
    # Built from arguments, settings never read the environment.
    assert Settings(max_attempts=2).lease_seconds == 60


def test_a_secret_setting_is_never_echoed(monkeypatch: pytest.MonkeyPatch) -> None:
    """Guards pitfall 3 (secrets in the worker's output): a bad value beside a secret
    names the variable without printing any secret."""
    monkeypatch.setenv("WEBHOOK_SECRET", "whsec_c2VjcmV0")
    monkeypatch.setenv("MAX_ATTEMPTS", "many")
    with pytest.raises(ValueError) as info:
        Settings.from_env()
    assert "MAX_ATTEMPTS=many" in str(info.value) and "c2VjcmV0" not in str(info.value)


def test_status_shows_no_running_clock_on_a_finished_stage(
    db_url: str,
    env,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A failed import used to show "running" beside its `failed` stage."""
    job_id = _job(db_url)
    _fail(db_url, job_id)
    env(db_url)
    assert main(["status", str(job_id)]) == 0
    out = capsys.readouterr().out
    assert "failed" in out and "running" not in out
    running = _job(db_url)
    assert main(["status", str(running)]) == 0
    assert "running" in capsys.readouterr().out


def test_status_json_carries_the_soulprint(
    db_url: str,
    env,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`status --json` always said `soulprint_text: null`, even for a complete import."""
    job_id = _job(db_url)
    finish_import(JobStore(db_url), db_url, job_id, "You write late at night.")
    env(db_url)
    assert main(["status", str(job_id), "--json"]) == 0
    summary = orjson.loads(capsys.readouterr().out)
    assert summary["stage"] == "complete"
    assert summary["soulprint_text"] == "You write late at night."


def test_status_without_a_job_lists_the_recent_imports(
    db_url: str,
    env,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`status` with no id lists imports (id, stage, when, counts), newest first, and
    `--user` narrows it to one person."""
    mine = _job(db_url)
    theirs = _job(db_url)
    env(db_url)
    assert main(["status"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["import", "stage", "created"]
    assert str(theirs) in out[1] and str(mine) in out[2] and "queued" in out[1]
    assert "conversations" in out[1]
    user = jobs_for(db_url, create_user(db_url))  # nobody's imports: an empty list
    assert user == []
    with psycopg.connect(db_url) as conn:
        owner = conn.execute("select user_id from import_jobs where id = %s", (mine,)).fetchone()[0]
    assert main(["status", "--user", str(owner), "--json"]) == 0
    listed = orjson.loads(capsys.readouterr().out)
    assert [row["import_id"] for row in listed] == [str(mine)]


def test_status_piped_into_head_ends_quietly(db_url: str, tmp_path: Path) -> None:
    """`status | head` used to end in a BrokenPipeError traceback."""
    _job(db_url)
    read, write = os.pipe()
    os.close(read)  # the reader (head) has already gone
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDDING_")}
    env.update(DATABASE_URL=db_url, SOULPRINT_DATA_DIR=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "status"],
        env=env,
        stdout=write,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
        check=False,
    )
    os.close(write)
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
    assert proc.returncode == 141


def test_sweep_prints_each_action_once(db_url: str, worker_db_url: str, tmp_path: Path) -> None:
    """`sweep` printed its action and logged it too: two lines per job on a terminal."""
    job_id = _job(db_url)
    with psycopg.connect(worker_db_url, autocommit=True) as conn:
        conn.execute("select public.claim_import_job(%s, 'queued', 'gone', 0)", (job_id,))
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMBEDDING_")}
    env.update(DATABASE_URL=worker_db_url, SOULPRINT_DATA_DIR=str(tmp_path))
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "sweep"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert (proc.stdout + proc.stderr).count(str(job_id)) == 1
    assert proc.stdout.strip() == f"{job_id} reemitted"


def test_size_limits_are_shown_in_units_that_keep_their_digits() -> None:
    """`MAX_UPLOAD_BYTES=1000` used to say "0 MB over the 0 MB limit"."""
    message = too_large(1_500, 1_000).message
    assert "1.5 KB" in message and "1.0 KB limit" in message and "0 MB" not in message
    assert human_bytes(999) == "999 bytes"
    assert human_bytes(250_000_000) == "250.0 MB"
    assert human_bytes(2_000_000_000) == "2.0 GB"


def test_run_of_a_directory_uploads_it_as_the_zip_the_app_would_send(tmp_path: Path) -> None:
    """Guards pitfall 4 (export variations): `run DIR` (an unpacked export, as `--help`
    offers) crashed with IsADirectoryError. The directory goes up as a zip of its
    conversation files, which reads exactly like the directory."""
    unpacked = tmp_path / "my-export"
    with zipfile.ZipFile(SAMPLE) as zf:
        zf.extractall(unpacked)
    packed = directory_as_zip(unpacked, tmp_path / "up")
    assert packed.name == "my-export.zip"

    def counts(path: Path) -> tuple[int, int]:
        reader = ExportReader(path)
        conversations = sum(1 for _ in reader)
        return conversations, reader.stats.messages

    assert counts(packed) == counts(unpacked) and counts(packed)[0] > 0


def test_run_of_a_directory_without_conversations_says_so(
    db_url: str,
    env,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A directory that is no export ends with a sentence naming it (exit 2)."""
    empty = tmp_path / "photos"
    empty.mkdir()
    env(db_url)
    assert main(["run", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "photos" in err and "not a ChatGPT export" in err
