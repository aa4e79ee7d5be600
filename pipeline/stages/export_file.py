"""The worker's copy of the uploaded export, for the stage reading it (pipeline.downloads)."""

from __future__ import annotations

import logging
from pathlib import Path

from pipeline import downloads
from pipeline.errors import StageError
from pipeline.exports.reader import NotAnExportError, open_export
from pipeline.exports.sources import CORRUPT_EXPORT, NOT_AN_EXPORT
from pipeline.jobstore import Job
from pipeline.queries import QUERIES
from pipeline.stages.context import StageContext
from pipeline.storage import Fetched, ProgressFn, object_source

log = logging.getLogger("soulprint.stages.export_file")


def fetch_export(ctx: StageContext, *, on_progress: ProgressFn | None = None) -> Fetched:
    source = object_source(ctx.settings)
    assert ctx.job.bucket_id is not None and ctx.job.object_name is not None  # set on upload
    return source.fetch(
        ctx.job.bucket_id,
        ctx.job.object_name,
        ctx.export_path(),
        owner=ctx.job.user_id,
        max_bytes=ctx.settings.max_upload_bytes,
        progress=on_progress or (lambda _n: None),
    )


def delete_uploaded_export(ctx: StageContext) -> bool:
    """Delete the person's raw export from Storage (the import is complete and holds all it
    needs). True when Storage deleted it."""
    source = object_source(ctx.settings)
    assert ctx.job.bucket_id is not None and ctx.job.object_name is not None  # set on upload
    return source.delete(ctx.job.bucket_id, ctx.job.object_name, owner=ctx.job.user_id)


def _replaced_since(ctx: StageContext) -> bool:
    """True when the person uploaded a new file at the same path after this import's one
    (an upsert). Only to say so in the log: the guard is Storage's delete policy, which
    refuses any version but the one a complete import read, in the DELETE itself, so an
    upload landing after this check is safe too."""
    with ctx.connect() as conn:
        row = conn.execute(QUERIES["export_replaced"], (ctx.job.id,)).fetchone()
    return bool(row and row[0])


def delete_raw_export(ctx: StageContext) -> None:
    """After `complete`: the whole chat history has served, so it leaves Storage too. The
    import is already complete, so a failure here is logged, never the job's failure (the
    person can still delete the file, and KEEP_EXPORT_AFTER_IMPORT keeps it on purpose)."""
    try:
        if _replaced_since(ctx):
            log.info(
                "job %s: a newer upload replaced the export; it is left for its own import",
                ctx.job.id,
            )
            return
        deleted = delete_uploaded_export(ctx)
    except Exception as exc:  # the job is complete whatever happens here
        log.warning(
            "job %s: the raw export could not be deleted from Storage (%s)",
            ctx.job.id,
            type(exc).__name__,
        )
        return
    if deleted:
        log.info("job %s: raw export deleted from Storage", ctx.job.id)
    else:
        log.warning(
            "job %s: Storage did not delete the raw export (already gone, replaced "
            "by a newer upload, or the worker's Storage role lacks delete on bucket "
            "imports)",
            ctx.job.id,
        )


def ensure_export(ctx: StageContext) -> Path:
    """This stage's copy of the export: the one downloading verified in this process (it
    handed the job over here, or another thread here won the claim while the copy was
    passed on), else a fresh download, checked against the sha256 downloading recorded. A
    file left by a run that died is never trusted: nobody here verified it, so it is
    fetched over. Raises StageError('object_changed') when Storage now holds other bytes."""
    path = ctx.export_path()
    if downloads.verified(path):
        return path
    fetched = fetch_export(ctx)
    if ctx.job.sha256 and fetched.sha256 != ctx.job.sha256:
        raise StageError(
            "object_changed", "The uploaded file changed during the import. Please upload it again."
        )
    return fetched.path


def person_file_name(job: Job) -> str:
    """The file as the person knows it: the last segment of the uploaded object's name
    (every message they can see names this, never the worker's copy)."""
    return (job.object_name or "").rsplit("/", 1)[-1] or "the uploaded file"


_ADVICE = {
    NOT_AN_EXPORT: "Upload the .zip you got from ChatGPT (Settings > Data controls > Export "
    "data) or its conversations.json.",
    CORRUPT_EXPORT: "Download the export from ChatGPT again and upload it.",
}


def check_is_export(path: Path, name: str) -> None:
    """Reject what is not a ChatGPT export, by the reader's own resolution (the very
    check `parse` makes): a zip cut short that still holds conversations passes, and is
    read up to its break by the parsing stage. ``name`` is the person's file name."""
    try:
        open_export(path, name=name)
    except NotAnExportError as exc:
        detail = exc.detail.rstrip(".")
        raise StageError(exc.code, f"The file “{exc.where}”{detail}. {_ADVICE[exc.code]}") from exc
