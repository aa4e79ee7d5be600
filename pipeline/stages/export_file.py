"""The worker's local copy of the uploaded export: fetched once, re-fetched if this disk lost it."""

from __future__ import annotations

import zipfile
from pathlib import Path

from pipeline.errors import StageError
from pipeline.export_reader import NotAnExportError, open_export
from pipeline.stages.context import StageContext
from pipeline.storage import Fetched, object_source

SNIFF_BYTES = 64


def fetch_export(ctx: StageContext, *, on_progress=None) -> Fetched:
    source = object_source(ctx.settings)
    return source.fetch(ctx.job.bucket_id, ctx.job.object_name, ctx.export_path(),
                        owner=ctx.job.user_id, max_bytes=ctx.settings.max_upload_bytes,
                        progress=on_progress or (lambda _n: None))


def delete_uploaded_export(ctx: StageContext) -> bool:
    """Delete the person's raw export from Storage (the import is complete and holds all it
    needs). True when Storage deleted it."""
    source = object_source(ctx.settings)
    return source.delete(ctx.job.bucket_id, ctx.job.object_name, owner=ctx.job.user_id)


def ensure_export(ctx: StageContext) -> Path:
    """Later stages may run on another instance (Render restarts): fetch again if needed."""
    path = ctx.export_path()
    if path.is_file() and (not ctx.job.bytes_total or path.stat().st_size == ctx.job.bytes_total):
        return path
    fetched = fetch_export(ctx)
    if ctx.job.sha256 and fetched.sha256 != ctx.job.sha256:
        raise StageError("object_changed",
                         "The uploaded file changed during the import. Please upload it again.")
    return fetched.path


def check_is_export(path: Path) -> None:
    """Reject what is not a ChatGPT export (a zip or JSON holding conversations)."""
    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    if head.startswith(b"PK"):
        try:
            with zipfile.ZipFile(path) as zf:
                bad = zf.testzip() if path.stat().st_size < 64 * 1024 * 1024 else None
        except zipfile.BadZipFile as exc:
            raise StageError(
                "corrupt_export",
                "The file looks like a zip archive but it is damaged. "
                "Download the export from ChatGPT again and upload it.",
            ) from exc
        if bad is not None:
            raise StageError("corrupt_export",
                             f"The zip archive is damaged (first bad member: {bad}).")
    else:
        stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
        if stripped[:1] not in (b"[", b"{"):
            raise StageError(
                "not_an_export",
                "This file is not a ChatGPT export. Upload the .zip you got from ChatGPT "
                "(Settings > Data controls > Export data) or its conversations.json.",
            )
    try:
        open_export(path)
    except NotAnExportError as exc:
        raise StageError("not_an_export", str(exc)) from exc
