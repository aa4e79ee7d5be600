"""The job store: the only Python code that changes an import job.

Every method is a thin call of one SQL function from supabase/migrations (the rules live
next to the data, as in procrastinate): one statement, one transaction, retried as a whole
on transient errors. Every transition is conditional on what the caller believes (stage,
lease owner), so losing a race is an answer (``None`` / ``False`` / ``"not_yours"``), never
an exception. Errors that are not races (the database down for longer than the retries, a
bug) still raise.

Thread-safe: calls share a small connection pool; stages run in threads.

Lease owners are arbitrary text, but must be unique per running stage (e.g.
``host:pid:random``): the same owner may re-claim its own lease, which is what makes a
retried claim idempotent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar
from uuid import UUID

import psycopg
from psycopg.abc import Params
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from pipeline.db import APPLICATION_NAME, retry_transient
from pipeline.errors import RetryRefused, StageError
from pipeline.queries import QUERIES
from pipeline.stage import ACTIVE

_T = TypeVar("_T")
ProgressOutcome = Literal["ok", "cancel_requested", "not_yours"]
# Why a lease holder gives a job back, and what came of it (see release()).
ReleaseReason = Literal["shutdown", "transient"]
ReleaseOutcome = Literal["released", "retrying", "failed", "cancelled"]


# The job's counters: bigint columns of import_jobs, reported as absolute values (never
# deltas). The one Python list; SQL's is public._import_apply_counters.
COUNTERS = (
    "bytes_total",
    "bytes_done",
    "conversations",
    "skipped_conversations",
    "messages",
    "user_messages",
    "assistant_messages",
    "chunks",
    "embedded_chunks",
)
# Facts a stage reports with its counters (set once known, never cleared by a report).
FACTS = ("sha256", "embedding_model", "embedding_dim")
PROGRESS_KEYS = frozenset(COUNTERS + FACTS)

# One progress write per job per second is plenty for a progress bar and keeps a fast
# stage from turning into a write storm on the job row (and Realtime).
PROGRESS_MIN_INTERVAL_S = 1.0


@dataclass(slots=True)
class Job:
    """One row of public.import_jobs."""

    id: UUID
    user_id: UUID
    stage: str
    bucket_id: str | None = None
    object_name: str | None = None
    object_version: str | None = None
    object_id: UUID | None = None
    file_size: int | None = None
    stage_changed_at: datetime | None = None
    stage_timings: dict[str, Any] | None = None
    bytes_total: int = 0
    bytes_done: int = 0
    conversations: int = 0
    skipped_conversations: int = 0
    messages: int = 0
    user_messages: int = 0
    assistant_messages: int = 0
    chunks: int = 0
    embedded_chunks: int = 0
    excluded: int = 0  # "do not remember" conversations passed over
    export_truncated: bool = False
    export_warning: str | None = None  # where the export broke off (names the person's file)
    sha256: str | None = None
    embedding_model: str | None = None
    embedding_dim: int | None = None
    checkpoint: dict[str, Any] | None = None
    error_code: str | None = None
    error_message: str | None = None
    failed_stage: str | None = None
    attempts: int = 0
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    cancel_requested_at: datetime | None = None
    retry_at: datetime | None = None  # after a transient failure: no claim before this
    created_at: datetime | None = None
    updated_at: datetime | None = None
    completed_at: datetime | None = None
    soulprint_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.stage in ACTIVE

    @classmethod
    def from_row(cls, row: dict[str, Any] | None) -> Job | None:
        """A Job from a row dict; None for no row or the all-NULL row a SQL function
        returning ``import_jobs`` gives when nothing matched. Unknown columns (added by later
        migrations) are ignored."""
        if row is None or row.get("id") is None:
            return None
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in row.items() if k in known})


def _refusal(exc: psycopg.Error) -> str:
    """A state-machine refusal (SQLSTATE 55000) as the person reads it: why, then what to
    do (the message and hint the SQL function wrote)."""
    why = exc.diag.message_primary or str(exc).splitlines()[0]
    hint = exc.diag.message_hint
    return f"{why}. {hint}" if hint else why


def _values(row: Any) -> tuple[Any, ...]:
    """A row's values in column order, whether the cursor gave a tuple or a dict."""
    return tuple(row.values()) if isinstance(row, dict) else tuple(row)


def _counters(counters: dict[str, Any] | None) -> Jsonb:
    return Jsonb({k: v for k, v in (counters or {}).items() if k in PROGRESS_KEYS})


class JobStore:
    """Calls the job transition functions of the schema. ``conninfo``: the worker's URL
    (least privilege), or an admin URL for operator commands."""

    def __init__(
        self,
        conninfo: str,
        *,
        lease_seconds: int = 60,
        progress_interval_s: float = PROGRESS_MIN_INTERVAL_S,
        max_connections: int = 4,
    ) -> None:
        self.conninfo = conninfo
        self.lease_seconds = lease_seconds
        self.progress_interval_s = progress_interval_s
        self._pool: ConnectionPool[psycopg.Connection[dict[str, Any]]] = ConnectionPool(
            conninfo,
            min_size=0,
            max_size=max_connections,
            kwargs={
                "autocommit": True,  # each call is one statement: its own transaction
                "row_factory": dict_row,
                "application_name": f"{APPLICATION_NAME} jobstore",
                "connect_timeout": 10,
                "prepare_threshold": None,  # transaction-mode poolers (see pipeline.db)
            },
            check=ConnectionPool.check_connection,  # drop connections the server closed
            open=True,
            name="jobstore",
        )
        # job_id -> (monotonic time of the last progress write, its outcome)
        self._last_progress: dict[UUID, tuple[float, ProgressOutcome]] = {}
        # job_id -> lease length of the claim: progress renews the lease by the same amount.
        self._lease_of: dict[UUID, int] = {}
        self._lock = threading.Lock()

    # -- plumbing --------------------------------------------------------------------------

    def close(self) -> None:
        self._pool.close()

    def __enter__(self) -> JobStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @retry_transient()
    def _one(self, sql: str, params: Params = ()) -> dict[str, Any] | None:
        with self._pool.connection() as conn:
            return conn.execute(sql, params).fetchone()

    @retry_transient()
    def _all(self, sql: str, params: Params = ()) -> list[dict[str, Any]]:
        with self._pool.connection() as conn:
            return conn.execute(sql, params).fetchall()

    def _scalar(self, sql: str, params: Params = ()) -> Any:
        row = self._one(sql, params)
        return None if row is None else next(iter(row.values()))

    @retry_transient()
    def _with_conn(self, call: Callable[..., _T], *args: Any) -> _T:
        """``call(conn, *args)`` on a pooled connection (committed when it returns)."""
        with self._pool.connection() as conn:
            return call(conn, *args)

    # -- writes in the caller's transaction --------------------------------------------
    # The few job writes that must commit with the caller's own rows take its connection;
    # they are still JobStore's, so the job row has one writer.

    @staticmethod
    def progress_in(
        conn: psycopg.Connection[Any],
        job_id: UUID,
        owner: str,
        counters: dict[str, Any],
        checkpoint: dict[str, Any] | None,
    ) -> ProgressOutcome:
        """Report absolute counters and the checkpoint on ``conn``, in its transaction
        (``StageContext.commit_batch``: a batch's rows and its checkpoint are one commit).
        The lease is left alone. Unthrottled; not committed here."""
        row = conn.execute(
            QUERIES["report_progress"],
            (job_id, owner, _counters(counters), None if checkpoint is None else Jsonb(checkpoint)),
        ).fetchone()
        outcome = None if row is None else next(iter(_values(row)))
        return outcome if outcome in ("ok", "cancel_requested") else "not_yours"

    @staticmethod
    def sweep_in(
        conn: psycopg.Connection[Any], stale_after_s: float, max_attempts: int
    ) -> list[tuple[UUID, str]]:
        """One sweeper pass on ``conn`` (see ``sweep``)."""
        rows = conn.execute(
            QUERIES["sweep_jobs"], (timedelta(seconds=stale_after_s), max_attempts)
        ).fetchall()
        return [(UUID(str(job_id)), str(action)) for job_id, action in map(_values, rows)]

    @staticmethod
    async def acknowledge_in(
        conn: psycopg.AsyncConnection[Any], webhook_id: str, event: dict[str, Any]
    ) -> bool:
        """The receiver's acknowledgement, on its own async connection and transaction:
        record the webhook id (only its first delivery counts) and acknowledge the event
        and the job's other pending events of its type (``event``: ``event_id``,
        ``job_id``, ``type``). False: a retry or replay of a webhook already taken."""
        cur = await conn.execute(QUERIES["insert_webhook_receipt"], (webhook_id,))
        if cur.rowcount == 0:
            return False
        await conn.execute(QUERIES["ack_import_events"], event)
        return True

    # -- transitions ---------------------------------------------------------------------

    def claim(
        self, job_id: UUID, stage: str, owner: str, lease_seconds: int | None = None
    ) -> Job | None:
        """Take the lease on the job if it is in ``stage``, unheld (or expired, or already
        ours) and not being cancelled. Counts an attempt. None: not yours."""
        lease = lease_seconds or self.lease_seconds
        row = self._one(
            QUERIES["claim_job"],
            (job_id, stage, owner, lease),
        )
        job = Job.from_row(row)
        if job is not None:
            self._forget_progress(job_id)
            with self._lock:
                self._lease_of[job_id] = lease
        return job

    def claim_next(
        self,
        owner: str,
        stages: Iterable[str],
        *,
        lease_seconds: int | None = None,
        max_attempts: int = 5,
    ) -> Job | None:
        """Claim the runnable job in one of ``stages`` that has waited longest (the pull
        queue: ``claim_next_import_job``, FOR UPDATE SKIP LOCKED). A lapsed lease below
        ``max_attempts`` counts as runnable. None: nothing to do now."""
        lease = lease_seconds or self.lease_seconds
        job = Job.from_row(
            self._one(QUERIES["claim_next_job"], (owner, lease, list(stages), max_attempts))
        )
        if job is not None:
            self._forget_progress(job.id)
            with self._lock:
                self._lease_of[job.id] = lease
        return job

    def renew(self, job_id: UUID, owner: str) -> ProgressOutcome:
        """Extend the lease by the length it was claimed for (the LeaseKeeper's call, the
        one renewer). Also says whether a cancel is pending or the job is no longer ours."""
        with self._lock:
            lease = self._lease_of.get(job_id, self.lease_seconds)
        outcome = self._scalar(
            QUERIES["renew_lease"],
            (job_id, owner, lease),
        )
        return outcome if outcome in ("ok", "cancel_requested") else "not_yours"

    def progress(
        self,
        job_id: UUID,
        owner: str,
        counters: dict[str, Any],
        checkpoint: dict[str, Any] | None = None,
        force: bool = False,
    ) -> ProgressOutcome:
        """Report absolute counters (and the checkpoint of the last committed batch); the
        lease is left alone (``renew`` keeps it). Throttled to one write per
        ``progress_interval_s`` per job unless ``force``: a skipped report returns "ok" (a
        resume from the previous checkpoint is safe, batches being idempotent)."""
        now = time.monotonic()
        with self._lock:
            last = self._last_progress.get(job_id)
        if (
            not force
            and last is not None
            and last[1] == "ok"
            and now - last[0] < self.progress_interval_s
        ):
            return "ok"
        result = self._with_conn(self.progress_in, job_id, owner, counters, checkpoint)
        with self._lock:
            self._last_progress[job_id] = (now, result)
        return result

    def advance(
        self, job_id: UUID, owner: str, from_stage: str, counters: dict[str, Any] | None = None
    ) -> str | None:
        """Move on to the next stage (the database emits its event). Returns the new stage,
        ``"cancelled"`` when a cancel was pending, None when not yours."""
        self._forget_progress(job_id)
        stage = self._scalar(
            QUERIES["advance_job"],
            (job_id, owner, from_stage, _counters(counters)),
        )
        return None if stage is None else str(stage)

    def fail(self, job_id: UUID, owner: str, code: str, message: str) -> bool:
        """Stop the job with an error code and a sentence a person understands."""
        self._forget_progress(job_id)
        return bool(self._scalar(QUERIES["fail_job"], (job_id, owner, code, message)))

    def release(
        self,
        job_id: UUID,
        owner: str,
        reason: ReleaseReason = "shutdown",
        *,
        max_attempts: int = 5,
        backoff_s: float = 30.0,
    ) -> ReleaseOutcome | None:
        """Give the lease back, saying why (the policy is SQL's ``release_import_job``).

        ``shutdown``: the attempt is not counted and another worker is invited at once.
        ``transient``: the attempt counts; the stage is re-announced after ``backoff_s`` x
        2^(attempts-1) seconds, or the job fails readably once ``max_attempts`` claims failed.
        Returns ``released`` | ``retrying`` | ``failed`` | ``cancelled``; None: not yours.
        """
        self._forget_progress(job_id)
        outcome = self._scalar(
            QUERIES["release_job"],
            (job_id, owner, reason, max_attempts, backoff_s),
        )
        return None if outcome is None else outcome

    def finish_cancel(self, job_id: UUID, owner: str) -> bool:
        """Acknowledge a cancel request: partial data deleted, stage cancelled."""
        self._forget_progress(job_id)
        return bool(self._scalar(QUERIES["finish_cancel"], (job_id, owner)))

    def show_soulprint(
        self, job_id: UUID, owner: str, profile: dict[str, Any], soulprint_text: str
    ) -> str | None:
        """generating_soulprint -> embedding with the soulprint shown to the person (one
        transaction). Returns the next stage, 'cancelled' if a cancel was pending, None when
        not yours."""
        self._forget_progress(job_id)
        stage = self._scalar(
            QUERIES["show_soulprint"],
            (job_id, owner, Jsonb(profile), soulprint_text),
        )
        return None if stage is None else str(stage)

    def complete(self, job_id: UUID, owner: str) -> bool:
        """Finish after embedding: memory and soulprint swapped in for the person, in one
        transaction. False when not yours (or cancelled instead).
        Raises StageError when the database refuses to complete the job (chunks without
        vectors, or a newer import completed since: the completion guard's 55000)."""
        self._forget_progress(job_id)
        try:
            return bool(self._scalar(QUERIES["complete_job"], (job_id, owner)))
        except psycopg.errors.ObjectNotInPrerequisiteState as exc:
            raise StageError("not_completable", _refusal(exc)) from None

    # -- operator and app actions ----------------------------------------------------------

    def retry(self, job_id: UUID) -> str | None:
        """failed -> the stage it failed in; None if not failed or another import runs.
        Raises RetryRefused when a newer import of the person has completed since."""
        try:
            stage = self._scalar(QUERIES["retry_job"], (job_id,))
        except psycopg.errors.ObjectNotInPrerequisiteState as exc:
            raise RetryRefused(_refusal(exc)) from None
        return None if stage is None else str(stage)

    def request_cancel(self, job_id: UUID) -> str | None:
        """Cancel (at once if nobody holds it, else at the holder's next report). Returns the
        stage afterwards, None if there is no such job."""
        stage = self._scalar(QUERIES["request_cancel"], (job_id,))
        return None if stage is None else str(stage)

    def sweep(self, stale_after_s: float, max_attempts: int) -> list[tuple[UUID, str]]:
        """One sweeper pass: [(job_id, 'reemitted' | 'failed' | 'cancelled'), ...]."""
        return self._with_conn(self.sweep_in, stale_after_s, max_attempts)

    # -- reads -----------------------------------------------------------------------------

    def get(self, job_id: UUID) -> Job | None:
        return Job.from_row(self._one(QUERIES["job_by_id"], (job_id,)))

    def latest_for_user(self, user_id: UUID) -> Job | None:
        return Job.from_row(
            self._one(
                QUERIES["latest_job_of_user"],
                (user_id,),
            )
        )

    def active_for_user(self, user_id: UUID) -> Job | None:
        """The person's running import, whatever was uploaded after it (at most one: the
        partial unique index), or None."""
        return Job.from_row(
            self._one(
                QUERIES["active_job_of_user"],
                (user_id,),
            )
        )

    def latest(self) -> Job | None:
        """The most recent job of anyone (local mode: the one person on this machine)."""
        return Job.from_row(self._one(QUERIES["latest_job"]))

    def recent(self, user_id: UUID | None = None, limit: int = 10) -> list[Job]:
        """The most recent imports, newest first: one person's, or everyone's."""
        rows = self._all(
            QUERIES["recent_jobs"],
            {"user_id": user_id, "limit": limit},
        )
        return [job for job in map(Job.from_row, rows) if job is not None]

    def soulprint_text(self, job_id: UUID) -> str | None:
        """The soulprint one import wrote; None before its soulprint stage has finished, and
        None for the worker role, which may not read people's soulprints (security model)."""
        try:
            text: str | None = self._scalar(QUERIES["soulprint_text"], (job_id,))
            return text
        except psycopg.errors.InsufficientPrivilege:
            return None

    def export_facts(self, job_id: UUID) -> dict[str, int]:
        """What the import kept besides conversations, for `run`/`status --json`:
        {"custom_instructions", "memory_notes"} (counts)."""
        row = self._one(QUERIES["export_fact_counts"], {"job": job_id})
        return {k: int(v) for k, v in (row or {}).items()}

    def _forget_progress(self, job_id: UUID) -> None:
        with self._lock:
            self._last_progress.pop(job_id, None)
            self._lease_of.pop(job_id, None)


__all__ = [
    "COUNTERS",
    "FACTS",
    "Job",
    "JobStore",
    "ProgressOutcome",
    "ReleaseOutcome",
    "ReleaseReason",
]
