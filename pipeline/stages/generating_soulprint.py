"""generating_soulprint: a portrait from the person's own messages, written with `complete`.

The soulprint and the stage `complete` are one transaction (complete_import_job): a job is
never complete without a soulprint, and no soulprint shows while the import still runs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator

from pipeline import person_notes
from pipeline.errors import LeaseLost
from pipeline.export_reader import ExportReader
from pipeline.models import Conversation
from pipeline.soulprint import build_soulprint
from pipeline.stages.context import StageContext
from pipeline.stages.export_file import delete_uploaded_export, ensure_export, person_file_name

log = logging.getLogger("soulprint.stages.soulprint")


def _conversations(ctx: StageContext, reader: ExportReader) -> Iterator[Conversation]:
    for conv in reader:
        yield conv
        ctx.report()  # throttled; raises on cancel or shutdown


def run(ctx: StageContext) -> None:
    reader = ExportReader(ensure_export(ctx), max_message_chars=ctx.settings.max_message_chars,
                          name=person_file_name(ctx.job))
    # Custom instructions and memory notes, as the parsing stage stored them.
    with ctx.connect() as conn:
        about = person_notes.load(conn, ctx.job.id)
    profile, text = build_soulprint(_conversations(ctx, reader), ctx.settings, about=about)
    profile["import"] = {
        # A damaged export is imported as far as it reads; the person should know.
        "export_truncated": reader.stats.truncated,
        "export_error": reader.stats.error,
        "cut_messages": reader.stats.cut_messages,
        "excluded_conversations": reader.stats.excluded,
        "conversations": ctx.job.conversations,
        "messages": ctx.job.messages,
        "chunks": ctx.job.chunks,
        "embedding_model": ctx.job.embedding_model,
        "embedding_dim": ctx.job.embedding_dim,
    }
    if not ctx.store.complete(ctx.job.id, ctx.owner, profile, text):
        raise LeaseLost()
    # Nobody's history stays on a worker's disk longer than the import needs it.
    ctx.export_path().unlink(missing_ok=True)
    log.info("job %s complete", ctx.job.id)
    if not ctx.settings.keep_export_after_import:
        _delete_raw_export(ctx)


# True when Storage now holds another version at the job's path (SQL function: the worker
# role cannot read storage.objects itself).
EXPORT_REPLACED = "select public.import_export_replaced(%s)"


def _replaced_since(ctx: StageContext) -> bool:
    """True when the person uploaded a new file at the same path after this import's one
    (an upsert). Only to say so in the log: the guard is Storage's delete policy, which
    refuses any version but the one a complete import read, in the DELETE itself, so an
    upload landing after this check is safe too."""
    with ctx.connect() as conn:
        row = conn.execute(EXPORT_REPLACED, (ctx.job.id,)).fetchone()
    return bool(row and row[0])


def _delete_raw_export(ctx: StageContext) -> None:
    """Nor in Storage: the whole chat history has served. The import is already complete,
    so a failure here is logged, never the job's failure (the person can still delete the
    file, and KEEP_EXPORT_AFTER_IMPORT keeps it on purpose)."""
    try:
        if _replaced_since(ctx):
            log.info("job %s: a newer upload replaced the export; it is left for its own "
                     "import", ctx.job.id)
            return
        deleted = delete_uploaded_export(ctx)
    except Exception as exc:  # the job is complete whatever happens here
        log.warning("job %s: the raw export could not be deleted from Storage (%s)",
                    ctx.job.id, type(exc).__name__)
        return
    if deleted:
        log.info("job %s: raw export deleted from Storage", ctx.job.id)
    else:
        log.warning("job %s: Storage did not delete the raw export (already gone, replaced "
                    "by a newer upload, or the worker's Storage role lacks delete on bucket "
                    "imports)", ctx.job.id)
