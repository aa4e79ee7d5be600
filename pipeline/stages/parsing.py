"""parsing: read the export once and write its conversations and chunks in committed batches.

Parsing and chunking are one stage on purpose: the reader streams a file that can be
500 MB, and chunking a conversation needs nothing but that conversation. A separate
chunking stage would have to read the file a second time or persist every message
just to read it back. So this stage reports both (conversations, messages, chunks).

The soulprint's profile is built in the same pass and checkpointed with each batch
(`profile_state`), so the next stage, generating_soulprint, never reads the export: once
parsing has committed, the raw file leaves the worker's disk.
"""

from __future__ import annotations

import logging
from typing import Any

import psycopg

from pipeline.errors import StageError
from pipeline.exports import person_notes
from pipeline.exports.chunker import chunk_conversation
from pipeline.exports.models import Chunk, Conversation, ReadStats
from pipeline.exports.reader import ExportReader, PersonNotes
from pipeline.exports.timestamps import storable_epoch
from pipeline.queries import QUERIES
from pipeline.soulprint import ProfileBuilder
from pipeline.stages import profile_state
from pipeline.stages.context import StageContext
from pipeline.stages.export_file import ensure_export, person_file_name

log = logging.getLogger("soulprint.stages.parsing")

BATCH_CONVERSATIONS = 250
BATCH_CHUNKS = 2000
# The job counters (pipeline.jobstore.COUNTERS) this stage sets: each from the reader's
# ReadStats field of the same meaning, plus the chunks it cut.
FROM_STATS = {
    "conversations": "conversations",
    "skipped_conversations": "skipped",
    "messages": "messages",
    "user_messages": "user_messages",
    "assistant_messages": "assistant_messages",
}
COUNTERS = (*FROM_STATS, "chunks")


def _write(
    conn: psycopg.Connection,
    job_id: Any,
    user_id: Any,
    conversations: list[Conversation],
    chunks: list[Chunk],
) -> None:
    import orjson

    conn.execute(
        QUERIES["insert_conversations"],
        {
            "job": job_id,
            "user": user_id,
            "ids": [c.id for c in conversations],
            "titles": [c.title for c in conversations],
            "created": [storable_epoch(c.create_time) for c in conversations],
            "updated": [storable_epoch(c.update_time) for c in conversations],
            "n": [len(c.messages) for c in conversations],
            "n_user": [c.user_message_count for c in conversations],
            "n_assistant": [c.assistant_message_count for c in conversations],
            "meta": [orjson.dumps(c.metadata, default=str).decode() for c in conversations],
        },
    )
    if chunks:
        conn.execute(
            QUERIES["insert_chunks"],
            {
                "job": job_id,
                "user": user_id,
                "ids": [c.id for c in chunks],
                "conversation_ids": [c.conversation_id for c in chunks],
                "titles": [c.conversation_title for c in chunks],
                "idx": [c.index for c in chunks],
                "contents": [c.text for c in chunks],
                "first_at": [storable_epoch(c.first_time) for c in chunks],
                "last_at": [storable_epoch(c.last_time) for c in chunks],
                "n": [c.message_count for c in chunks],
            },
        )


def _totals(base: dict[str, int], stats: ReadStats, chunks: int) -> dict[str, int]:
    totals = {k: base[k] + int(getattr(stats, field)) for k, field in FROM_STATS.items()}
    return totals | {"chunks": base["chunks"] + chunks}


def _resume(
    ctx: StageContext, conn: psycopg.Connection, next_index: int
) -> tuple[int, ProfileBuilder, int]:
    """(next_index, profile builder, cut messages so far) to go on from. A checkpoint
    without a usable profile state (written before profiles were checkpointed) starts the
    pass over: rows are inserted idempotently, so re-reading costs time, not correctness."""
    if next_index:
        loaded = profile_state.load(conn, ctx.job.id)
        conn.commit()
        if loaded is not None:
            builder, export = loaded
            return next_index, builder, int(export.get("cut_messages", 0))
        log.warning("job %s: no profile checkpoint; reading the export again", ctx.job.id)
    return 0, ProfileBuilder(), 0


def run(ctx: StageContext) -> None:
    path = ensure_export(ctx)
    target = ctx.settings.chunk_target_chars
    conversations: list[Conversation] = []
    chunks: list[Chunk] = []
    notes = PersonNotes()  # this batch's, de-duplicated (one upsert may not hit a row twice)
    chunk_total = 0

    with ctx.connect() as conn:
        next_index, builder, cut_before = _resume(
            ctx, conn, int(ctx.checkpoint.get("next_index", 0))
        )
        # The job's counters were committed together with the checkpoint: they are the
        # totals up to next_index, so a resumed run adds to them.
        base = {k: int(getattr(ctx.job, k) or 0) if next_index else 0 for k in COUNTERS}
        excluded_base = int(ctx.job.excluded or 0) if next_index else 0
        reader = ExportReader(
            path,
            max_message_chars=ctx.settings.max_message_chars,
            skip=next_index,
            name=person_file_name(ctx.job),
        )

        def flush() -> None:
            nonlocal notes
            _write(conn, ctx.job.id, ctx.job.user_id, conversations, chunks)
            person_notes.store(conn, ctx.job.id, ctx.job.user_id, notes.items())
            stats = reader.stats
            conn.execute(
                QUERIES["report_export_facts"],
                (
                    ctx.job.id,
                    ctx.owner,
                    excluded_base + stats.excluded,
                    stats.truncated,
                    stats.error,
                ),
            )
            profile_state.save(
                conn,
                ctx.job.id,
                ctx.job.user_id,
                builder,
                {
                    "cut_messages": cut_before + stats.cut_messages,
                    "truncated": stats.truncated,
                    "error": stats.error,
                },
            )
            ctx.counters.update(_totals(base, stats, chunk_total))
            read, total = reader.bytes_progress()
            # Bytes are for the progress bar only; a resume goes by next_index.
            ctx.commit_batch(
                conn, {"next_index": next_index, "read_bytes": read, "total_bytes": total}
            )
            conversations.clear()
            chunks.clear()
            notes = PersonNotes()

        for conv in reader:
            conv_chunks = chunk_conversation(
                conv, target_chars=target, policy=ctx.settings.chunk_policy
            )
            builder.add(conv)
            conversations.append(conv)
            chunks.extend(conv_chunks)
            for note in conv.notes:
                notes.add(note)
            chunk_total += len(conv_chunks)
            next_index = reader.items_read  # raw items, skipped ones included
            if len(conversations) >= BATCH_CONVERSATIONS or len(chunks) >= BATCH_CHUNKS:
                flush()
        next_index = reader.items_read
        flush()

    stats = reader.stats
    if stats.truncated:
        log.warning("job %s: export broke off: %s", ctx.job.id, stats.error)
    if ctx.counters["conversations"] == 0:
        if stats.excluded and not stats.truncated:
            raise StageError(
                "empty_export",
                "Every conversation in this export is one you asked ChatGPT not "
                "to remember, so there is nothing to import.",
            )
        if stats.truncated:
            raise StageError(
                "corrupt_export",
                f"The export is damaged and no conversation could be read ({stats.error}).",
            )
        raise StageError("empty_export", "This export holds no conversations to import.")
    ctx.advance()
    # Committed: everything later stages need is in the database. Nobody's history stays
    # on a worker's disk longer than that.
    path.unlink(missing_ok=True)
