"""What a stage gets: its claimed job, the job store, and the rules for stopping between batches."""

from __future__ import annotations

import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg
from psycopg.types.json import Jsonb

from pipeline import downloads, lifecycle
from pipeline.db import is_transient
from pipeline.errors import CancelRequested, LeaseLost, ShuttingDown, TransientError
from pipeline.jobstore import Job, JobStore
from pipeline.settings import Settings
from pipeline.stages.lease import LeaseKeeper

log = logging.getLogger("soulprint.stages")


def worker_identity() -> str:
    """Lease owner: host and pid say who held it; the suffix makes each claim distinct."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def worth_retrying(exc: BaseException) -> bool:
    """A stage's failure that another attempt later may not meet: the database or the network
    blinked, or a dependency said "later" (TransientError). The one definition, for stages
    and embedding batches alike; the retry policy itself is SQL's."""
    return is_transient(exc) or isinstance(exc, (httpx.TransportError, TransientError))


@dataclass
class StageContext:
    job: Job
    store: JobStore
    settings: Settings
    conninfo: str
    owner: str
    counters: dict[str, Any] = field(default_factory=dict)
    # The one renewer of the job's lease while the stage runs (run_stage sets it); what it
    # learns (lease lost, cancel requested) stops the stage at its next report or batch.
    lease: LeaseKeeper | None = None
    # When the stage last showed it is alive (any report or batch); read by the LeaseKeeper.
    last_progress: float = field(default_factory=time.monotonic)

    @property
    def job_id(self) -> uuid.UUID:
        return self.job.id

    @property
    def checkpoint(self) -> dict[str, Any]:
        return dict(self.job.checkpoint or {})

    def downloads_dir(self) -> Path:
        return downloads.downloads_dir(self.settings.data_dir)

    def export_path(self) -> Path:
        """This job's copy of the export (held for the stage by run_stage: see
        pipeline.downloads)."""
        return downloads.export_path(self.settings.data_dir, self.job.id)

    def connect(self) -> psycopg.Connection:
        # pgvector lives in schema `extensions` on Supabase and in the bootstrap.
        return psycopg.connect(
            self.conninfo,
            autocommit=False,
            application_name=f"soulprint-stage-{self.job.stage}",
            options="-c search_path=public,extensions",
        )

    # -- progress and stopping -------------------------------------------------------

    def report(self, *, force: bool = False, checkpoint: dict[str, Any] | None = None) -> None:
        """Publish counters (throttled by the store, about one write a second); stop here if
        the lease was lost, a cancel is pending, or the worker is shutting down. Never
        renews the lease: the LeaseKeeper does."""
        self.last_progress = time.monotonic()
        self._obey(self.store.progress(self.job.id, self.owner, self.counters, checkpoint, force))

    def commit_batch(self, conn: psycopg.Connection, checkpoint: dict[str, Any]) -> None:
        """Record counters and checkpoint in the batch's own transaction, then commit.

        A restart resumes after the last committed batch: its rows and its checkpoint
        are one commit, so neither can exist without the other.
        """
        row = conn.execute(
            "select public.report_import_progress(%s, %s, %s, %s, %s)",
            (
                self.job.id,
                self.owner,
                Jsonb(self.counters),
                Jsonb(checkpoint),
                None,  # the lease is the LeaseKeeper's to renew
            ),
        ).fetchone()
        assert row is not None  # a function's result: always one row
        outcome = row[0]
        if outcome == "not_yours":
            conn.rollback()
            raise LeaseLost()
        conn.commit()
        self.last_progress = time.monotonic()
        self._obey(outcome)

    def _obey(self, outcome: str) -> None:
        """Stop the stage (raise) when its job is no longer its to run."""
        if outcome == "not_yours" or (self.lease is not None and self.lease.lost):
            raise LeaseLost()
        if outcome == "cancel_requested" or (
            self.lease is not None and self.lease.cancel_requested
        ):
            raise CancelRequested()
        if lifecycle.shutting_down():
            raise ShuttingDown()

    def advance(self) -> None:
        """Hand the job to the next stage (which emits the next event)."""
        nxt = self.store.advance(self.job.id, self.owner, self.job.stage, self.counters)
        if nxt is None:
            raise LeaseLost()
        log.info("job %s: %s -> %s", self.job.id, self.job.stage, nxt)
