"""Local mode: production's path on one machine.

Embedded PostgreSQL (or DATABASE_URL), a directory as the `imports` bucket, the receiver
on a loopback port, the outbox relay and the sweeper loop. An "upload" writes the file to
the bucket and inserts the storage.objects row exactly as Supabase Storage does; from there
on, every stage runs because a signed HTTP event arrived, as in production.
"""

from __future__ import annotations

import base64
import hashlib
import mimetypes
import secrets
import threading
import uuid
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, cast

import psycopg
from psycopg.types.json import Jsonb

from pipeline.errors import SoulprintError
from pipeline.jobstore import Job, JobStore
from pipeline.queries import QUERIES
from pipeline.settings import Settings
from pipeline.storage import LocalBucket, local_bucket_root

if TYPE_CHECKING:  # imported where used at run time (see __enter__)
    from handlers.server import ServerHandle
    from pipeline.delivery.relay import Relay

BUCKET = "imports"
# Locally the worker that held a lease may have been killed: take over within seconds.
LOCAL_LEASE_SECONDS = 15
SWEEP_INTERVAL_SECONDS = 2.0
# A stable person for imports run without --user on this machine.
LOCAL_USER_NAMESPACE = uuid.UUID("6f1c5e36-8a4f-4b4e-9a57-3f7c2a1d0b11")


def new_webhook_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def default_local_user() -> uuid.UUID:
    return uuid.uuid5(LOCAL_USER_NAMESPACE, "local-user")


def admin_url_for(settings: Settings) -> str:
    """The admin URL a local run works with: the embedded server (migrated when started), or
    DATABASE_URL, which a local run is asked to migrate (``run``, ``retry`` without
    ``--no-wait``). Other commands resolve URLs through pipeline.connections, which never
    migrates."""
    from pipeline.connections import database_url, migrate_or_explain

    url = database_url(settings)
    if settings.database_url:
        migrate_or_explain(url)
    return url


class LocalRuntime:
    """Context manager running receiver, relay and sweeper around local imports."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings.model_copy(
            update={
                "webhook_secret": settings.webhook_secret or new_webhook_secret(),
                "lease_seconds": min(settings.lease_seconds, LOCAL_LEASE_SECONDS),
            }
        )
        self.admin_url = ""
        self.worker_url = ""
        self.bucket = LocalBucket(local_bucket_root(self.settings))
        self._stop = threading.Event()
        self._server: ServerHandle | None = None
        self._relay: Relay | None = None
        self._sweeper: threading.Thread | None = None

    def __enter__(self) -> LocalRuntime:
        from handlers.app import create_app
        from handlers.server import serve_in_thread
        from pipeline.delivery.relay import Relay
        from pipeline.embedded import worker_url
        from pipeline.stages import make_work_sources
        from pipeline.sweeper import start_sweeper_loop

        self.admin_url = admin_url_for(self.settings)
        self.worker_url = worker_url(self.admin_url)
        self.store = JobStore(self.worker_url)
        app = create_app(
            self.settings,
            conninfo=self.worker_url,
            sources=make_work_sources(self.settings, self.worker_url),
        )
        self._server = serve_in_thread(app, host="127.0.0.1", port=0)
        self._relay = Relay(
            self.worker_url,
            self._server.url + "/webhooks/supabase",
            self.settings.webhook_secret or "",
            max_delay_s=self.settings.relay_max_delay_seconds,
            failure_threshold=self.settings.relay_breaker_failures,
        )
        self._relay.start()
        self._sweeper = start_sweeper_loop(
            self.worker_url, self.settings, SWEEP_INTERVAL_SECONDS, self._stop
        )
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        if self._relay is not None:
            self._relay.stop()
        if self._server is not None:
            self._server.stop()
        if self._sweeper is not None:
            self._sweeper.join(timeout=5)

    # -- the app's side: a person and an upload ---------------------------------------

    def ensure_user(self, user_id: uuid.UUID) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(
                QUERIES["local_ensure_user"],
                (user_id, f"{user_id}@local.invalid"),
            )

    def active_job(self, user_id: uuid.UUID) -> Job | None:
        """The person's running import, even when a refused upload came after it."""
        return self.store.active_for_user(user_id)

    def upload(self, path: Path, user_id: uuid.UUID) -> uuid.UUID:
        """Store the bytes, then the storage.objects row (which fires the trigger)."""
        name = f"{user_id}/{path.name}"
        self.bucket.put(BUCKET, name, path)
        size = path.stat().st_size
        version = str(uuid.uuid4())
        etag = hashlib.md5(f"{name}:{version}".encode()).hexdigest()
        metadata = {
            "size": size,
            "mimetype": mimetypes.guess_type(path.name)[0] or "application/octet-stream",
            "eTag": f'"{etag}"',
        }
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            row = conn.execute(
                QUERIES["local_upload_object"],
                (BUCKET, name, str(user_id), Jsonb(metadata), version),
            ).fetchone()
            assert row is not None  # an upsert's returning: always one row
            job = conn.execute(
                QUERIES["local_job_of_upload"],
                (row[0], version),
            ).fetchone()
        if job is None:
            raise RuntimeError("The upload created no import job: is the trigger installed?")
        return cast(uuid.UUID, job[0])

    def soulprint_text(self, job_id: uuid.UUID) -> str | None:
        with psycopg.connect(self.admin_url) as conn:
            row = conn.execute(QUERIES["soulprint_text"], (job_id,)).fetchone()
        return row[0] if row else None


class ImportAlreadyRunning(SoulprintError):
    """The person has an import running; the message names it and how to resume or cancel."""

    def __init__(self, job: Job) -> None:
        self.job = job
        file = (job.object_name or "").split("/", 1)[-1] or "its export"
        super().__init__(
            f"an import is already running for this person: {job.id} ({job.stage}, from "
            f"{file}). Resume it with `soulprint-import run {file}` (same file name), or "
            f"cancel it with `soulprint-import cancel {job.id}`."
        )


def upload_name(path: Path) -> str:
    """The object name an upload of ``path`` gets: a directory goes up as ``<dir>.zip``."""
    return f"{path.name}.zip" if path.is_dir() else path.name


def directory_as_zip(directory: Path, dest: Path) -> Path:
    """Pack the conversation files of an unpacked export into ``dest/<dir>.zip``, as the
    app would upload it (stored, not compressed: the bytes are copied once). Raises
    NotAnExportError when the directory holds no conversations."""
    import zipfile

    from pipeline.exports.sources import resolve

    names = [m.name for m in resolve(directory)]
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / upload_name(directory)
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in names:
            zf.write(directory / name, arcname=name)
    return target
