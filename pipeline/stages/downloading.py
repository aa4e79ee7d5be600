"""downloading: stream the upload to this worker's disk, hash it, and check it is an export."""

from __future__ import annotations

from pipeline.stages.context import StageContext
from pipeline.stages.export_file import check_is_export, fetch_export, person_file_name
from pipeline.storage import too_large


def run(ctx: StageContext) -> None:
    limit = ctx.settings.max_upload_bytes
    declared = ctx.job.file_size or 0
    if declared > limit:  # before reading a byte
        raise too_large(declared, limit)
    ctx.counters.update(bytes_total=declared, bytes_done=0)
    ctx.report(force=True)

    def on_progress(done: int) -> None:
        ctx.counters["bytes_done"] = done
        ctx.report()

    fetched = fetch_export(ctx, on_progress=on_progress)
    check_is_export(fetched.path, person_file_name(ctx.job))
    ctx.counters.update(bytes_total=fetched.size, bytes_done=fetched.size, sha256=fetched.sha256)
    ctx.advance()
