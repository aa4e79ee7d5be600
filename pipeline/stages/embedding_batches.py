"""Embedding batches: the part of an import's embedding that any instance may do.

The embedding stage's holder plans a job's chunks into batches (a range of chunk ids
each, ``EMBEDDING_BATCH_CHUNKS`` chunks at most); every instance, the holder included,
claims one batch at a time, embeds its chunks and writes the vectors. The rules are SQL's
(``supabase/migrations/20261201200000_embedding_fanout.sql``); this module calls them by
name. Entry point for an instance's pull loop::

    did_work = run_next_batch(settings, conninfo, owner)   # False: nothing to claim

A batch's lease is renewed by a thread while its embedder works, and every write is
conditional on that lease: an instance that stalls or dies loses its batch to the next
claimer after ``LEASE_SECONDS``, and what it wrote before stays written (chunks with a
vector are never embedded again). The next ``stage_batch_size`` chunks are embedded while
the current ones are written, as the single-instance stage did, across the boundary of
two batches of one job too (the next batch is claimed while the last chunks of the current
one are embedded).
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Generator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import orjson
import psycopg

from pipeline import lifecycle
from pipeline.db import connect
from pipeline.embedding import Embedder, EmbedderError, get_embedder
from pipeline.errors import SoulprintError
from pipeline.queries import QUERIES
from pipeline.settings import Settings
from pipeline.stages.context import worth_retrying

log = logging.getLogger("soulprint.stages")

# How a batch's work ended: all its chunks have vectors ('done'), the person cancelled
# ('cancel_requested'), the batch or its job is no longer ours ('not_yours'), or this
# process is shutting down ('stopped'; the batch is given back).
BatchOutcome = Literal["done", "cancel_requested", "not_yours", "stopped"]

# Sorts before every uuid: the keyset start of a batch's range.
_BEFORE_ALL = uuid.UUID(int=0)

# Why a batch is given back (see release_embedding_batch in pipeline/sql/queries.sql).
ReleaseReason = Literal["shutdown", "transient", "failed"]


@dataclass(frozen=True, slots=True)
class Batch:
    """One claimed batch: the chunks of ``job_id`` with ids in [first_chunk_id, last_chunk_id]."""

    job_id: uuid.UUID
    batch_no: int
    first_chunk_id: uuid.UUID
    last_chunk_id: uuid.UUID


Rows = list[tuple[uuid.UUID, str]]
# Connections from pipeline.db.connect: rows as dicts.
Conn = psycopg.Connection[dict[str, Any]]


def one(conn: Conn, query: str, params: Any) -> dict[str, Any]:
    """The one row a function call or an aggregate returns."""
    row = conn.execute(query, params).fetchone()
    assert row is not None  # a scalar function or a count: always one row
    return row


def _scalar(row: dict[str, Any]) -> Any:
    return next(iter(row.values()))


def claim(
    conn: Conn,
    owner: str,
    settings: Settings,
    embedder: Embedder,
    job_id: uuid.UUID | None = None,
) -> Batch | None:
    """Lease one open batch planned for ``embedder``'s model (of ``job_id`` only, when
    given), for ``settings.lease_seconds``. None: nothing claimable now."""
    row = conn.execute(
        QUERIES["claim_embedding_batch"],
        {
            "owner": owner,
            "lease": settings.lease_seconds,
            "model": embedder.model,
            "dim": embedder.dimensions,
            "max_attempts": settings.max_attempts,
            "job": job_id,
        },
    ).fetchone()
    conn.commit()
    if row is None:
        return None
    return Batch(**row)


def release(
    conninfo: str,
    batch: Batch,
    owner: str,
    reason: ReleaseReason,
    backoff_s: float = 0.0,
    code: str | None = None,
    message: str | None = None,
) -> None:
    """Give ``batch`` back for ``reason``: 'shutdown' takes the claim's attempt back,
    'transient' keeps it and lets nobody claim the batch for ``backoff_s`` x 2^(attempts-1)
    seconds, 'failed' marks it failed with ``code`` and ``message`` (a sentence for a
    person) so the job's holder fails the job with it. On its own connection: the caller's
    may be the one that broke. Never raises (a lease that lapses frees the batch anyway)."""
    try:
        with connect(conninfo, autocommit=True) as conn:
            conn.execute(
                QUERIES["release_embedding_batch"],
                (batch.job_id, batch.batch_no, owner, reason, backoff_s, code, message),
            )
    except psycopg.Error:
        log.warning("job %s: could not give back batch %s", batch.job_id, batch.batch_no)


class _BatchLease:
    """Renews a batch's lease every third of ``LEASE_SECONDS`` while its embedder works.

    Stops renewing (and says why in ``outcome``) when the batch or its job is no longer
    ours or a cancel is pending, and when the work has shown no progress for
    ``stall_seconds`` (a hung request must not hold a batch forever).
    """

    def __init__(self, conninfo: str, batch: Batch, owner: str, settings: Settings) -> None:
        self.conninfo, self.batch, self.owner = conninfo, batch, owner
        self.lease_seconds = settings.lease_seconds
        self.stall_seconds = settings.stage_stall_seconds
        self.progressed = time.monotonic()
        self.outcome: str = "ok"
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, name=f"batch-lease-{batch.batch_no}", daemon=True
        )

    def _run(self) -> None:
        while not self._stop.wait(max(self.lease_seconds / 3.0, 0.2)):
            if time.monotonic() - self.progressed > self.stall_seconds:
                return
            try:
                with connect(self.conninfo, autocommit=True) as conn:
                    row = one(
                        conn,
                        QUERIES["renew_embedding_batch"],
                        (self.batch.job_id, self.batch.batch_no, self.owner, self.lease_seconds),
                    )
            except psycopg.Error:
                continue  # the next write renews too, or the lease lapses
            self.outcome = _scalar(row)
            if self.outcome != "ok":
                return

    def __enter__(self) -> _BatchLease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)


def work(
    conn: Conn,
    conninfo: str,
    batch: Batch,
    embedder: Embedder,
    owner: str,
    settings: Settings,
    *,
    overlap: bool = True,
    after_write: Callable[[int], None] | None = None,
    next_batch: Callable[[], Batch | None] | None = None,
) -> BatchOutcome:
    """Embed and write every chunk of ``batch`` still without a vector, ``stage_batch_size``
    at a time, the next ones embedded while the current ones are written (unless
    ``overlap=False``). With ``next_batch`` (a claim), the batches it gives follow in the
    same pipeline: the next batch is claimed while the last chunks of the current one are
    embedded, so no round trip of the embedder goes unoverlapped between batches.
    ``after_write(n)`` runs after each committed write of ``n`` vectors (the holder reports
    progress there; what it raises stops the work).

    Returns 'done' when no batch is left to take, else why it stopped. Every batch still
    held when it stops or raises is given back: marked failed with the embedder's sentence
    for an ``EmbedderError`` (or a generic one for a bug), claimable at once otherwise.
    """
    ahead = ThreadPoolExecutor(1, thread_name_prefix="embed-ahead") if overlap else None
    size = embedder.stage_batch_size
    held: dict[int, _BatchLease] = {}

    def units() -> Generator[tuple[Batch, Rows], None, None]:
        """(batch, the next chunks of it to embed), batch after batch; a batch whose
        chunks all have vectors already comes once with no rows (an empty write closes it)."""
        current: Batch | None = batch
        while current is not None:
            held[current.batch_no] = _BatchLease(conninfo, current, owner, settings).__enter__()
            rows = _pending(conn, current, _BEFORE_ALL, size)
            yield current, rows
            while rows:
                rows = _pending(conn, current, rows[-1][0], size)
                if rows:
                    yield current, rows
            current = next_batch() if next_batch is not None else None

    stream = units()
    try:
        unit = next(stream, None)
        vectors = _start(ahead, embedder, unit[1] if unit else [])
        while unit is not None:
            current, rows = unit
            lease = held[current.batch_no]
            if lease.outcome != "ok":
                return _outcome(lease.outcome)
            if lifecycle.shutting_down():
                return "stopped"
            following = next(stream, None)
            ready = vectors.result()
            vectors = _start(ahead, embedder, following[1] if following else [])
            outcome, written = _write(conn, current, owner, settings, rows, ready)
            lease.progressed = time.monotonic()
            if outcome in ("cancel_requested", "not_yours"):
                return _outcome(outcome)
            if outcome == "done":
                held.pop(current.batch_no).__exit__()
            if after_write is not None:
                after_write(written)
            unit = following
        return "done"
    except BaseException as exc:
        reason, code, message = _failure(exc)
        for lease in held.values():
            lease.__exit__()
            release(
                conninfo, lease.batch, owner, reason, settings.retry_backoff_seconds, code, message
            )
        held.clear()
        raise
    finally:
        # Stopped early (shutdown, cancel, no longer ours): give back what is still ours
        # without counting the attempt; the batch did not fail.
        for lease in held.values():
            lease.__exit__()
            release(conninfo, lease.batch, owner, "shutdown")
        stream.close()
        if ahead is not None:
            # On cancel, shutdown or error, the chunks being embedded are dropped, not awaited.
            ahead.shutdown(wait=False, cancel_futures=True)


def _outcome(value: str) -> BatchOutcome:
    """A write's or renewal's answer as how the work stopped ('ok' never gets here)."""
    assert value in ("done", "cancel_requested", "not_yours"), value
    return value  # type: ignore[return-value]


def _failure(exc: BaseException) -> tuple[ReleaseReason, str | None, str | None]:
    """(why, code, sentence) for a batch given back after ``exc``: failed with a sentence
    for the person (the embedder refused it, or a bug); transient (a dependency failed:
    counted, with backoff); or a shutdown (a cancel, a lost lease, the process stopping:
    not counted)."""
    if isinstance(exc, EmbedderError):  # its message is written for a person, no secrets
        return "failed", exc.code, str(exc)
    if worth_retrying(exc):
        return "transient", None, None
    if isinstance(exc, SoulprintError) or not isinstance(exc, Exception):
        return "shutdown", None, None
    return (
        "failed",
        "internal_error",
        "Something went wrong while building your searchable memory. "
        "You can retry the import; your data so far is kept.",
    )


def _pending(conn: Conn, batch: Batch, after: uuid.UUID, size: int) -> Rows:
    rows = conn.execute(
        QUERIES["select_pending_chunks"],
        {
            "job": batch.job_id,
            "after": after,
            "first": batch.first_chunk_id,
            "last": batch.last_chunk_id,
            "limit": size,
        },
    ).fetchall()
    # Not idle in a transaction while the embedder works (seconds, or minutes of 429s).
    conn.commit()
    return [(r["id"], r["content"]) for r in rows]


def _start(ahead: ThreadPoolExecutor | None, embedder: Embedder, rows: Rows) -> Future[np.ndarray]:
    """The vectors of ``rows``: embedding in ``ahead``, or already done when there is none."""
    texts = [r[1] for r in rows]
    if not texts:
        done: Future[np.ndarray] = Future()
        done.set_result(np.zeros((0, 0), dtype=np.float32))
        return done
    if ahead is not None:
        return ahead.submit(embedder.embed, texts)
    done = Future()
    try:
        done.set_result(embedder.embed(texts))
    except Exception as exc:  # raised by .result(), as from the thread
        done.set_exception(exc)
    return done


def _write(
    conn: Conn,
    batch: Batch,
    owner: str,
    settings: Settings,
    rows: Rows,
    vectors: np.ndarray,
) -> tuple[str, int]:
    """(outcome of the write, vectors it wrote)."""
    # pgvector's text form '[0.1,...]', which orjson writes as is (and fast).
    vecs = [orjson.dumps(v, option=orjson.OPT_SERIALIZE_NUMPY).decode() for v in vectors]
    row = one(
        conn,
        QUERIES["write_embedding_batch"],
        (
            batch.job_id,
            batch.batch_no,
            owner,
            [r[0] for r in rows],
            vecs,
            settings.lease_seconds,
        ),
    )
    conn.commit()
    outcome = _scalar(row)
    return outcome, len(rows) if outcome in ("ok", "done") else 0


def run_next_batch(settings: Settings, conninfo: str, owner: str) -> bool:
    """Claim one open embedding batch of any import, embed it and write it, then the
    same import's next batches while there are any (in one pipeline).

    For an instance's pull loop: True when a batch was claimed (whatever came of it),
    False when there was nothing to claim (or this instance cannot embed at all). An
    embedder that refuses the batch marks it failed with its sentence for the person (the
    job's holder fails the job with it); a transient failure gives the batch back for
    anyone to retry. Never raises for those; ``owner`` names this instance in leases
    (unique per process, e.g. ``worker_identity()``).
    """
    try:
        embedder = get_embedder(settings)
        model, dims = embedder.model, embedder.dimensions
    except EmbedderError as exc:
        log.warning("no embedding batches taken here: %s", exc)
        return False
    with connect(conninfo, autocommit=True, application_name="soulprint-embedding-batch") as conn:
        batch = claim(conn, owner, settings, embedder)
        if batch is None:
            return False
        log.debug("job %s: batch %s claimed (%s, %s-d)", batch.job_id, batch.batch_no, model, dims)
        try:
            # The job's next batches follow in the same pipeline while there are any.
            outcome = work(
                conn,
                conninfo,
                batch,
                embedder,
                owner,
                settings,
                next_batch=lambda: claim(conn, owner, settings, embedder, batch.job_id),
            )
        except EmbedderError as exc:  # the batches are marked failed with its sentence
            log.info("job %s: embedding refused (%s)", batch.job_id, exc.code)
            return True
        except Exception as exc:
            if worth_retrying(exc):  # the batches are given back for anyone to retry
                log.warning("job %s: batches given back (%s)", batch.job_id, type(exc).__name__)
            else:
                log.exception("job %s: unexpected error in its embedding batches", batch.job_id)
            return True
    log.info("job %s: embedding batches from %s: %s", batch.job_id, batch.batch_no, outcome)
    return True
