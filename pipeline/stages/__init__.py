"""Stage handlers and the dispatcher the receiver calls for each verified event.

Which stage follows which is decided in SQL (public.import_next_stage); this table
only says which code runs while a job sits in a stage.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from contextlib import nullcontext
from pathlib import Path
from uuid import UUID

from pipeline import downloads
from pipeline.errors import (
    CancelRequested,
    LeaseLost,
    ShuttingDown,
    StageError,
)
from pipeline.jobstore import Job, JobStore
from pipeline.settings import Settings
from pipeline.stage import Stage
from pipeline.stages import (
    downloading,
    embedding,
    embedding_batches,
    generating_soulprint,
    parsing,
    queued,
)
from pipeline.stages.context import StageContext, worker_identity, worth_retrying
from pipeline.stages.lease import LeaseKeeper

log = logging.getLogger("soulprint.stages")

# The code that runs while a job sits in a stage (pipeline.stage.WORKED; `chunking` is never
# entered: see parsing.py).
# Keyed by str: events name stages as text, and a Stage is equal (and hashes) to its text.
HANDLERS: dict[str, Callable[[StageContext], None]] = {
    Stage.QUEUED: queued.run,
    Stage.DOWNLOADING: downloading.run,
    Stage.PARSING: parsing.run,
    Stage.GENERATING_SOULPRINT: generating_soulprint.run,
    Stage.EMBEDDING: embedding.run,
}

# Worth another attempt later (the database or network blinked), not a reason to fail.


# Stages that read the person's export from this worker's disk. run_stage holds the copy
# for exactly as long as one of them runs (pipeline.downloads): when it ends, in any way,
# the copy is deleted. generating_soulprint reads it only for jobs parsed before profiles
# were checkpointed.
READS_EXPORT: frozenset[str] = frozenset(
    {Stage.DOWNLOADING, Stage.PARSING, Stage.GENERATING_SOULPRINT}
)

# When downloading ends here, parsing is claimed right here, next, in the same pool slot,
# and reads the copy downloading just verified: one download per import instead of two.
# Parsing's own event then finds the job taken and is dropped (not_claimed); if another
# instance claimed parsing first, the copy here goes and that instance fetches its own.
HAND_OFF: dict[str, Stage] = {Stage.DOWNLOADING: Stage.PARSING}
# How long a hand-off that lost its claim keeps the copy for a thread of this process that
# may have won it (another instance's win costs this slot that long, rarely).
PASS_ON_SECONDS = 2.0


def run_stage(
    job_id: UUID,
    stage: str,
    settings: Settings,
    store: JobStore,
    conninfo: str,
    *,
    hand_off: bool = False,
) -> str:
    """Claim the job in `stage` and run that stage; returns what happened (for logs/tests).

    ``hand_off`` (the receiver's runner): after a stage in HAND_OFF is done, claim and run
    the next stage here too, while this stage's copy of the export is still held. The
    outcome returned is this stage's; the next one's is logged.
    """
    if stage not in HANDLERS:
        return "ignored"
    owner = worker_identity()
    job = store.claim(job_id, stage, owner, settings.lease_seconds)
    if job is None:
        return "not_claimed"  # stale or duplicate event, or another worker has it
    return run_claimed(job, owner, settings, store, conninfo, hand_off=hand_off)


def run_claimed(
    job: Job,
    owner: str,
    settings: Settings,
    store: JobStore,
    conninfo: str,
    *,
    hand_off: bool = False,
) -> str:
    """Run the stage of a job ``owner`` has just claimed, keeping its lease alive, and end
    the attempt (advance, fail, release, cancel); returns what happened. ``hand_off``: as
    in run_stage."""
    job_id, stage = job.id, job.stage
    handler = HANDLERS[stage]
    ctx = StageContext(job=job, store=store, settings=settings, conninfo=conninfo, owner=owner)
    copy = (
        downloads.hold(downloads.export_path(settings.data_dir, job_id))
        if stage in READS_EXPORT
        else nullcontext()
    )
    with copy:
        outcome = _run_claimed(ctx, handler, stage)
        nxt = HAND_OFF.get(stage)
        if hand_off and outcome == "done" and nxt is not None:
            then = run_stage(job_id, nxt, settings, store, conninfo)
            if then == "not_claimed":
                _pass_copy_on(downloads.export_path(settings.data_dir, job_id))
            log.info("job %s: %s went on here with the downloaded copy: %s", job_id, nxt, then)
    return outcome


def _pass_copy_on(path: Path) -> None:
    """The hand-off lost its claim: if it was to another thread of this process (woken by
    the same advance), that thread claimed first and holds the copy a moment later. Keep
    the copy until it does, at most PASS_ON_SECONDS, or it would fetch the export again
    (seen under load: two downloads of one import)."""
    downloads.wait_held(path, 2, PASS_ON_SECONDS)


def _run_claimed(ctx: StageContext, handler: Callable[[StageContext], None], stage: str) -> str:
    """Run a claimed stage to its end and settle the job by how it ended."""
    job_id, owner, store, settings = ctx.job.id, ctx.owner, ctx.store, ctx.settings
    try:
        with LeaseKeeper(
            store,
            job_id,
            owner,
            settings.lease_seconds,
            progressed=lambda: ctx.last_progress,
            stall_seconds=settings.stage_stall_seconds,
        ) as ctx.lease:
            handler(ctx)
        return "done"
    except CancelRequested:
        store.finish_cancel(job_id, owner)
        return "cancelled"
    except ShuttingDown:
        store.release(job_id, owner)
        return "released"
    except LeaseLost:
        return "lease_lost"
    except StageError as exc:
        log.info("job %s failed in %s: %s", job_id, stage, exc.code)
        store.fail(job_id, owner, exc.code, exc.message)
        return "failed"
    except Exception as exc:
        if worth_retrying(exc):
            # The policy (count, back off, fail readably at MAX_ATTEMPTS) is SQL's, shared
            # with the sweeper: see release_import_job.
            outcome = store.release(
                job_id,
                owner,
                "transient",
                max_attempts=settings.max_attempts,
                backoff_s=settings.retry_backoff_seconds,
            )
            log.warning(
                "job %s: transient error in %s (%s): %s",
                job_id,
                stage,
                type(exc).__name__,
                outcome,
            )
            return "failed" if outcome == "failed" else "released"
        log.exception("job %s: unexpected error in %s", job_id, stage)
        store.fail(
            job_id,
            owner,
            "internal_error",
            f"Something went wrong while {Stage(stage).doing}. "
            f"You can retry the import; your data so far is kept.",
        )
        return "failed"


def import_work(
    settings: Settings,
    store: JobStore,
    conninfo: str,
    stages: Iterable[str] = HANDLERS,
) -> Callable[[], bool]:
    """A work source for the stage pool: claim the import job that has waited longest in
    one of ``stages`` (default: every stage with a handler; any instance may, SKIP LOCKED)
    and run that stage. True when one ran, False when nothing is runnable."""
    handled = [str(stage) for stage in stages if stage in HANDLERS]

    def pull() -> bool:
        owner = worker_identity()
        job = store.claim_next(
            owner,
            handled,
            lease_seconds=settings.lease_seconds,
            max_attempts=settings.max_attempts,
        )
        if job is None:
            return False
        # hand_off: a download done here goes on to parsing here, with the copy it made.
        outcome = run_claimed(job, owner, settings, store, conninfo, hand_off=True)
        log.info("job %s: %s %s", job.id, job.stage, outcome)
        return True

    return pull


def embedding_batch_work(settings: Settings, conninfo: str) -> Callable[[], bool]:
    """A work source for the stage pool: claim an open embedding batch of any import (the
    fan-out, pipeline.stages.embedding_batches) and work that import's batches. True when
    one was claimed, False when none is open."""

    def pull() -> bool:
        return embedding_batches.run_next_batch(settings, conninfo, worker_identity())

    return pull


def make_work_sources(settings: Settings, conninfo: str) -> list[Callable[[], bool]]:
    """What the receiver's stage pool pulls from, in turn (handlers.pool.WorkSource): the
    import stages, and other imports' embedding batches."""
    store = JobStore(conninfo, lease_seconds=settings.lease_seconds)
    return [import_work(settings, store, conninfo), embedding_batch_work(settings, conninfo)]
