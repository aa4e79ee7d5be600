"""`soulprint-import run PATH`: a full local import through real signed events."""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import uuid
from pathlib import Path

from pipeline.settings import Settings


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("run", help="import an export end to end on this machine")
    p.add_argument("path", type=Path, help="export .zip, conversations.json, shard or directory")
    p.add_argument(
        "--user",
        type=uuid.UUID,
        default=None,
        help="the person's id (default: this machine's local user)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pipeline.exports.sources import NotAnExportError
    from pipeline.local import ImportAlreadyRunning, default_local_user

    path: Path = args.path
    if not path.exists():
        print(f"soulprint-import: {path}: no such file or directory", file=sys.stderr)
        return 2
    settings = Settings.from_env()
    user = args.user or default_local_user()
    try:
        summary = _import(path, user, settings, args.json)
    except KeyboardInterrupt:
        # The running stage committed its batch and released its lease on the way out.
        print(
            "\nInterrupted. Run the same command again to resume where it stopped.", file=sys.stderr
        )
        return 130
    except ImportAlreadyRunning as exc:
        print(f"soulprint-import: {exc}", file=sys.stderr)
        return 1
    except NotAnExportError as exc:
        print(f"soulprint-import: {exc}", file=sys.stderr)
        return 2
    from pipeline.commands.output import print_result

    print_result(summary, args.json)
    return 0 if summary["stage"] == "complete" else 1


def _import(path: Path, user: uuid.UUID, settings: Settings, as_json: bool) -> dict[str, object]:
    """Resume the person's running import when it is this file's, else upload the file.
    Raises ImportAlreadyRunning when another file's import is running."""
    from pipeline.commands.output import job_summary, watch
    from pipeline.local import (
        ImportAlreadyRunning,
        LocalRuntime,
        directory_as_zip,
        upload_name,
    )

    # Look before the runtime starts: its stage pool takes up any runnable import at once
    # (the queue is the database), so an interrupted import could finish meanwhile and this
    # file's import would start instead of being refused.
    _refuse_if_another_runs(path, user, settings)
    if not as_json:
        _prepare_model(settings)
    with LocalRuntime(settings) as runtime:
        runtime.ensure_user(user)
        # The person's running import, even if a refused upload came after it.
        active = runtime.active_job(user)
        if active is not None and active.object_name != f"{user}/{upload_name(path)}":
            raise ImportAlreadyRunning(active)
        if active is not None:
            job_id = active.id  # an earlier run was interrupted: the sweeper revives it
            if not as_json:
                print(f"Resuming import {job_id} ({active.stage})", file=sys.stderr)
        elif path.is_dir():
            settings.data_dir.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(dir=settings.data_dir) as tmp:
                job_id = runtime.upload(directory_as_zip(path, Path(tmp)), user)
        else:
            job_id = runtime.upload(path, user)
        job = watch(runtime, job_id, show_progress=not as_json and sys.stderr.isatty())
        if job.stage == "rejected":
            # Another import started between our look and the upload.
            running = runtime.active_job(user)
            if running is not None:
                raise ImportAlreadyRunning(running)
        return job_summary(job, runtime.soulprint_text(job.id)) | runtime.store.export_facts(job.id)


def _prepare_model(settings: Settings) -> None:
    """Build the offline model's graph now, after saying so, when it is missing: otherwise
    a first import pauses silently for its one-time build in the embedding stage. A build
    that fails here is left to the import, whose job then records the reason."""
    from pipeline.embedding import EmbedderError, get_embedder
    from pipeline.embedding.minilm import MiniLMEmbedder
    from pipeline.embedding.readiness import graph_state

    state = graph_state(settings)
    if state is None or state.ready or state.problem:
        return
    print("Building the embedding model (one time, ~10 s)...", file=sys.stderr, flush=True)
    # On failure the embedding stage meets it again and fails the job with the message.
    with contextlib.suppress(EmbedderError):
        embedder = get_embedder(settings)
        if isinstance(embedder, MiniLMEmbedder):
            embedder.warm_up()


def _refuse_if_another_runs(path: Path, user: uuid.UUID, settings: Settings) -> None:
    """ImportAlreadyRunning when the person has an active import of another file."""
    from pipeline.embedded import worker_url
    from pipeline.jobstore import JobStore
    from pipeline.local import ImportAlreadyRunning, admin_url_for, upload_name

    with JobStore(worker_url(admin_url_for(settings))) as store:
        active = store.active_for_user(user)
    if active is not None and active.object_name != f"{user}/{upload_name(path)}":
        raise ImportAlreadyRunning(active)
