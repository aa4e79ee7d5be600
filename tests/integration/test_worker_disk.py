"""Issue 15 item 4: nothing of the person stays on a worker's disk after the stage that
needs it. Production shape: the fake Storage API over real HTTP as the worker's JWT, real
PostgreSQL as the worker role, the receiver pool's own unit of work (run_stage with
hand_off, as the pull source runs a claimed job) on two instances with their own data dirs,
one database.

Seed pitfalls guarded: 1 (work lost when an instance stops: a stage that ends any way but
done leaves its job for another instance, which fetches its own copy), 5 (a stage that dies
leaves no trace but its lease) and the privacy finding of issue 15 (17 of 20 imports left
the person's whole export on an instance that did not run the last stage).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import psycopg
import pytest

from pipeline import downloads, lifecycle
from pipeline.events import StageEvent
from pipeline.janitor import sweep_downloads
from pipeline.jobstore import JobStore
from pipeline.settings import Settings
from pipeline.stage import TERMINAL
from pipeline.stages import parsing as parsing_stage
from pipeline.stages import run_stage
from tests.dbutil import create_user, jobs_for, upload_object, walk_to
from tests.fake_openai import fake_openai
from tests.fake_storage import FakeStorage, fake_storage, worker_settings

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = ROOT / "examples" / "sample-export.zip"


def _upload(db_url: str, bucket: Path, src: Path = SAMPLE, name: str = "export.zip") -> uuid.UUID:
    """A person's upload: the bytes in the fake bucket, then the storage.objects row."""
    user = create_user(db_url)
    target = bucket / "imports" / f"{user}/{name}"
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, target)
    upload_object(db_url, user, name=name, size=src.stat().st_size)
    return jobs_for(db_url, user)[-1]["id"]


def make_runner(settings: Settings, conninfo: str) -> Callable[[StageEvent], None]:
    """What an instance's stage pool does with a job it claims (the stage, and downloading's
    hand-off to parsing in the same slot), for the job an event names: these tests decide
    which instance runs which stage, as a load balancer would."""
    store = JobStore(conninfo, lease_seconds=settings.lease_seconds)

    def run(event: StageEvent) -> None:
        run_stage(event.data.job_id, event.data.stage, settings, store, conninfo, hand_off=True)

    return run


def _event(store: JobStore, job_id: uuid.UUID) -> StageEvent:
    """The event the outbox emits for the job's current stage."""
    job = store.get(job_id)
    assert job is not None
    stage = str(job.stage)
    return StageEvent.model_validate(
        {
            "type": f"import.{stage}",
            "data": {"job_id": job_id, "user_id": job.user_id, "stage": stage},
        }
    )


def _files(*dirs: Path) -> list[str]:
    return sorted(
        p.name for d in dirs if (d / "downloads").is_dir() for p in (d / "downloads").iterdir()
    )


def _gets(storage: FakeStorage) -> int:
    return sum(1 for m, _, _ in storage.requests if m == "GET")


@pytest.fixture(autouse=True)
def _no_shutdown_left_over() -> Iterator[None]:
    """A receiver stopping here (or a test asking a stage to shut down) sets the
    process-wide shutdown flag; later tests' stages must not see it."""
    yield
    lifecycle.reset()


@pytest.fixture
def instances(tmp_path: Path) -> Iterator[tuple[FakeStorage, Settings, Settings]]:
    """Two instances (own data dirs) against one fake Storage and one OpenAI stand-in."""
    with fake_storage(tmp_path / "bucket") as storage, fake_openai() as srv:
        embed = {
            "embedding_provider": "openai",
            "openai_base_url": srv.base_url,
            "openai_api_key": srv.api_key,
        }
        a = worker_settings(tmp_path / "a", storage.url).model_copy(update=embed)
        b = worker_settings(tmp_path / "b", storage.url).model_copy(update=embed)
        yield storage, a, b


@pytest.mark.slow
def test_two_instances_leave_no_export_on_either_disk(
    instances, db_url: str, worker_db_url: str, tmp_path: Path, monkeypatch
) -> None:
    """Six imports, each event delivered to whichever instance's turn it is, as Render's
    load balancer would; on two of them the instance parsing is told to shut down mid-stage
    (SIGTERM) and the other instance takes parsing over. After every single delivery, and
    so after every import completes, neither instance's disk holds a copy of anyone's
    export. Downloading hands its copy to parsing in the same slot: one download per
    import, two when parsing moved to the other instance."""
    storage, a, b = instances
    runners = {"a": make_runner(a, worker_db_url), "b": make_runner(b, worker_db_url)}
    store = JobStore(worker_db_url)
    jobs = [_upload(db_url, tmp_path / "bucket") for _ in range(6)]
    interrupted = {jobs[1], jobs[4]}
    real_chunk = parsing_stage.chunk_conversation
    seen_copy: dict[uuid.UUID, list[str]] = {}

    def chunk(conv, **kw):
        job_id = current[0]
        seen_copy.setdefault(job_id, _files(a.data_dir, b.data_dir))
        if job_id in interrupted and current[1] == "a":
            lifecycle.request_shutdown()  # SIGTERM on instance a: checkpoint and let go
        return real_chunk(conv, **kw)

    monkeypatch.setattr(parsing_stage, "chunk_conversation", chunk)
    gets: dict[uuid.UUID, int] = {}
    for i, job_id in enumerate(jobs):
        turn = 0 if i % 2 == 0 else 1
        before = _gets(storage)
        while str(store.get(job_id).stage) not in TERMINAL:
            name = "ab"[turn % 2] if job_id not in interrupted else "a"
            if job_id in interrupted and str(store.get(job_id).stage) == "parsing":
                name = "b"  # a let go of parsing; the sweeper's re-announcement lands on b
            current = (job_id, name)
            runners[name](_event(store, job_id))
            lifecycle.reset()
            assert _files(a.data_dir, b.data_dir) == [], (i, name)
            turn += 1
        gets[job_id] = _gets(storage) - before
        assert str(store.get(job_id).stage) == "complete", store.get(job_id).error_message
    assert _files(a.data_dir, b.data_dir) == []
    # While parsing ran, the only copy on either disk was its own job's.
    assert all(files == [f"{j}.export"] for j, files in seen_copy.items())
    assert {j: n for j, n in gets.items() if j not in interrupted} == {
        j: 1 for j in jobs if j not in interrupted
    }
    assert {gets[j] for j in interrupted} == {2}


def _one_import(
    storage: FakeStorage, settings: Settings, db_url: str, worker_db_url: str, bucket: Path
) -> tuple[uuid.UUID, JobStore, Callable[[StageEvent], None]]:
    job_id = _upload(db_url, bucket)
    store = JobStore(worker_db_url)
    runner = make_runner(settings, worker_db_url)
    runner(_event(store, job_id))  # queued -> downloading
    return job_id, store, runner


@pytest.mark.parametrize("ending", ["done", "failed", "cancelled", "released", "lease_lost"])
def test_the_copy_goes_however_parsing_ends(
    ending: str, instances, db_url: str, worker_db_url: str, tmp_path: Path, monkeypatch
) -> None:
    """Guards pitfall 5 (a stage that dies leaves no trace but its lease): downloading hands
    the copy to parsing here; whether parsing then finishes, hits an error it did not
    foresee, is cancelled by the person, is told to shut down or loses its lease to another
    instance, the copy is gone when the stage returns. The copy parsing read was the one
    downloading verified (one download)."""
    storage, a, _ = instances
    job_id, store, runner = _one_import(storage, a, db_url, worker_db_url, tmp_path / "bucket")
    real_chunk = parsing_stage.chunk_conversation
    present: list[bool] = []

    def chunk(conv, **kw):
        if not present:
            present.append((a.data_dir / "downloads" / f"{job_id}.export").is_file())
            if ending == "failed":
                raise RuntimeError("unforeseen")
            if ending == "cancelled":
                assert store.request_cancel(job_id) is not None
            if ending == "released":
                lifecycle.request_shutdown()
            if ending == "lease_lost":
                with psycopg.connect(db_url, autocommit=True) as conn:
                    conn.execute(
                        "update public.import_jobs set lease_owner = 'elsewhere:1:x' where id = %s",
                        (job_id,),
                    )
        return real_chunk(conv, **kw)

    monkeypatch.setattr(parsing_stage, "chunk_conversation", chunk)
    try:
        runner(_event(store, job_id))  # downloading, then parsing here
    finally:
        lifecycle.reset()
    assert present == [True]
    assert _files(a.data_dir) == []
    assert _gets(storage) == 1
    stage = str(store.get(job_id).stage)
    expected = {
        "done": "generating_soulprint",
        "failed": "failed",
        "cancelled": "cancelled",
        "released": "parsing",
        "lease_lost": "parsing",
    }
    assert stage == expected[ending]


def test_a_file_that_is_not_an_export_is_named_as_the_person_knows_it(
    instances, db_url: str, worker_db_url: str, tmp_path: Path
) -> None:
    """Guards the README's rule that messages name the person's file: a refused upload fails
    with its own name, never the worker's copy, and the copy is gone."""
    _, a, _ = instances
    notes = tmp_path / "notes.txt"
    notes.write_text("not a chatgpt export\n" * 50)
    job_id = _upload(db_url, tmp_path / "bucket", src=notes, name="notes.txt")
    store = JobStore(worker_db_url)
    runner = make_runner(a, worker_db_url)
    runner(_event(store, job_id))
    runner(_event(store, job_id))
    job = store.get(job_id)
    assert str(job.stage) == "failed"
    assert "notes.txt" in job.error_message
    assert "downloads" not in job.error_message and str(job_id) not in job.error_message
    assert _files(a.data_dir) == []


# -- the janitor -------------------------------------------------------------------------


def _leave(data_dir: Path, name: str) -> Path:
    path = downloads.downloads_dir(data_dir) / name
    path.write_bytes(SAMPLE.read_bytes())
    return path


def _set_lease(db_url: str, job_id: uuid.UUID, owner: str | None, live: bool) -> None:
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "update public.import_jobs set lease_owner = %s, lease_expires_at = now() + "
            "case when %s then interval '5 minutes' else interval '-5 minutes' end "
            "where id = %s",
            (owner, live, job_id),
        )


@pytest.fixture
def leftovers(db_url: str, tmp_path: Path) -> dict[str, Path]:
    """A worker disk after a bad day: copies from a crashed run and in-use ones."""
    data = tmp_path / "worker"
    jobs = {
        k: _upload(db_url, tmp_path / "bucket") for k in ("crashed", "done", "here", "other", "far")
    }
    for key in ("crashed", "here", "other", "far"):
        walk_to(db_url, jobs[key], "parsing")
    walk_to(db_url, jobs["done"], "embedding")
    host = socket.gethostname()
    _set_lease(db_url, jobs["crashed"], f"{host}:999999:dead", live=False)  # kill -9 earlier
    _set_lease(db_url, jobs["here"], f"{host}:{os.getpid()}:live", live=True)
    _set_lease(db_url, jobs["other"], f"{host}:1:live", live=True)  # another process here
    _set_lease(db_url, jobs["far"], "other-host:7:live", live=True)  # parsing elsewhere
    files = {k: _leave(data, f"{j}.export") for k, j in jobs.items()}
    files["part"] = _leave(data, f"{jobs['crashed']}.export.part")
    files["gone"] = _leave(data, f"{uuid.uuid4()}.export")
    files["unknown"] = _leave(data, "notes.txt")
    for path in files.values():  # left by a run that died minutes ago
        past = time.time() - 600
        os.utime(path, (past, past))
    jobs["fresh"] = _upload(db_url, tmp_path / "bucket")
    walk_to(db_url, jobs["fresh"], "parsing")
    # Written a moment ago, no live lease seen: another process here may have just claimed
    # it and be writing this file; it waits for a later pass.
    files["fresh"] = _leave(data, f"{jobs['fresh']}.export")
    return files


def test_janitor_removes_leftovers_and_never_a_copy_in_use(
    leftovers: dict[str, Path], worker_db_url: str
) -> None:
    """Guards pitfall 5: what a crashed run left (its lease lapsed), copies of jobs past
    parsing, of deleted jobs and files of no job are deleted, by the worker role; the copy a
    stage of this process holds right now, one another process on this host is using (live
    lease), and one written a moment ago (maybe by a process that just claimed its job),
    stay. A live lease on another host does not protect a copy here."""
    data = leftovers["here"].parent.parent
    with downloads.hold(leftovers["here"]):
        result = sweep_downloads(data, worker_db_url)
        assert leftovers["here"].is_file()
    assert {k for k, p in leftovers.items() if p.exists()} == {"other", "fresh"}
    assert {r: len(v) for r, v in result.removed.items()} == {
        "idle": 3,  # crashed, its .part, far
        "not_needed": 1,
        "gone": 1,
        "unknown": 1,
    }
    assert {r: len(v) for r, v in result.kept.items()} == {"in_use": 1, "leased": 1, "recent": 1}


def test_janitor_never_deletes_a_file_a_process_has_open(
    db_url: str, worker_db_url: str, tmp_path: Path
) -> None:
    """A copy some process on this host is reading stays, even when this database knows no
    such job (a `run` with another database on the same data dir); once closed, it goes."""
    data = tmp_path / "worker"
    copy = _leave(data, f"{uuid.uuid4()}.export")
    with open(copy, "rb"):
        result = sweep_downloads(data, worker_db_url)
        assert copy.is_file() and result.kept == {"open": [copy.name]}
    assert sweep_downloads(data, worker_db_url).removed == {"gone": [copy.name]}
    assert not copy.exists()


def test_janitor_command_keeps_copies_any_local_process_is_using(
    leftovers: dict[str, Path], worker_db_url: str
) -> None:
    """`soulprint-import janitor` runs no stages of its own: a live lease held by any process
    on this host keeps its copy (the receiver beside it may be reading it)."""
    data = leftovers["here"].parent.parent
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "WEBHOOK_"))}
    env.update(DATABASE_URL=worker_db_url, SOULPRINT_DATA_DIR=str(data))
    out = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "janitor", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    body = orjson.loads(out.stdout)
    assert {k for k, p in leftovers.items() if p.exists()} == {"here", "other", "fresh"}
    assert sorted(body["kept"]) == ["leased", "recent"] and len(body["kept"]["leased"]) == 2
    assert sum(len(v) for v in body["removed"].values()) == 6


# A worker process that is killed (SIGKILL, as kill -9 or the OOM killer) in the middle of
# parsing, with its copy of the export on disk and its lease still live.
CRASHING_WORKER = """
import os, signal, sys, uuid
from pathlib import Path
from pipeline.jobstore import JobStore
from pipeline.stages import parsing, run_stage
from tests.fake_storage import worker_settings

job_id, url, data, storage_url = uuid.UUID(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), sys.argv[4]
parsing.chunk_conversation = lambda conv, **kw: os.kill(os.getpid(), signal.SIGKILL)
run_stage(job_id, "downloading", worker_settings(data, storage_url), JobStore(url), url,
          hand_off=True)
"""


def test_a_copy_left_by_a_killed_worker_is_removed_at_once(
    instances, db_url: str, worker_db_url: str, tmp_path: Path
) -> None:
    """Guards pitfall 5 (a process that dies mid-stage): a worker on this host killed with
    SIGKILL while parsing leaves the person's export on disk and a live lease. The janitor
    sees the lease's process is gone and deletes the copy at once, without waiting for the
    lease to lapse; the job is then the sweeper's to revive, on any instance."""
    storage, a, _ = instances
    job_id = _upload(db_url, tmp_path / "bucket")
    store = JobStore(worker_db_url)
    make_runner(a, worker_db_url)(_event(store, job_id))  # queued -> downloading
    died = subprocess.run(
        [
            sys.executable,
            "-c",
            CRASHING_WORKER,
            str(job_id),
            worker_db_url,
            str(a.data_dir),
            storage.url,
        ],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        timeout=120,
    )
    assert died.returncode == -9, died.stderr.decode()[-2000:]
    assert _files(a.data_dir) == [f"{job_id}.export"]
    job = store.get(job_id)
    assert str(job.stage) == "parsing" and job.lease_owner
    result = sweep_downloads(a.data_dir, worker_db_url)
    assert result.removed == {"crashed": [f"{job_id}.export"]}
    assert _files(a.data_dir) == []


def test_receiver_runs_the_janitor_at_start_up_and_periodically(
    leftovers: dict[str, Path], worker_db_url: str, db_url: str, tmp_path: Path
) -> None:
    """A receiver restarted after a crash clears what the crash left at once, and what a
    later crash of another process leaves within JANITOR_INTERVAL_SECONDS."""
    from handlers.app import create_app
    from handlers.server import serve_in_thread
    from pipeline.local import new_webhook_secret

    data = leftovers["here"].parent.parent
    settings = Settings(
        data_dir=data, webhook_secret=new_webhook_secret(), janitor_interval_seconds=0.3
    )
    app = create_app(settings, conninfo=worker_db_url)
    with downloads.hold(leftovers["here"]):
        handle = serve_in_thread(app)
        try:
            _wait_for(lambda: not leftovers["crashed"].exists())
            assert leftovers["here"].is_file() and leftovers["other"].is_file()
            later = _upload(db_url, tmp_path / "bucket")
            stale = _leave(data, f"{later}.export")  # queued: no stage reads it yet
            _wait_for(lambda: not stale.exists())
            assert leftovers["here"].is_file()
        finally:
            handle.stop()


def _wait_for(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_local_run_downloads_once_and_leaves_nothing(
    db_url: str, tmp_path: Path, monkeypatch
) -> None:
    """`run` (local mode: receiver, relay and sweeper in one process) copies the export out
    of the bucket once per import, as before (downloading hands its copy to parsing), and
    the data dir holds no copy once the import is complete."""
    from pipeline.commands.output import watch
    from pipeline.local import LocalRuntime
    from pipeline.storage import LocalBucket

    fetches: list[str] = []
    real_fetch = LocalBucket.fetch

    def counting(self, bucket, name, dest, **kw):
        fetches.append(name)
        return real_fetch(self, bucket, name, dest, **kw)

    monkeypatch.setattr(LocalBucket, "fetch", counting)
    with fake_openai() as srv:
        settings = Settings(
            database_url=db_url,
            data_dir=tmp_path / "data",
            embedding_provider="openai",
            openai_base_url=srv.base_url,
            openai_api_key=srv.api_key,
        )
        with LocalRuntime(settings) as runtime:
            user = uuid.uuid4()
            runtime.ensure_user(user)
            job = watch(runtime, runtime.upload(SAMPLE, user), show_progress=False)
    assert str(job.stage) == "complete", job.error_message
    assert fetches == [f"{user}/{SAMPLE.name}"]
    assert _files(tmp_path / "data") == []
