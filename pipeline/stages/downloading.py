"""downloading: stream the upload to this worker's disk, hash it, and check it is an export.

Why a file on disk at all: telling an export from anything else needs the whole file
(a zip's directory is at its end), and so does the sha256 that later stages check their
own copy against; 500 MB does not fit in a 512 MB instance's memory. Why it does not
outlive the work: the copy is held by run_stage (pipeline.downloads) and deleted when the
stage ends, however it ends, unless the receiver hands the job straight on to parsing in
the same pool slot (run_stage's HAND_OFF), which then reads this very copy and deletes it
when it ends. So a copy lives from this stage's start to parsing's end, on the one
instance that ran both, and never longer; parsing elsewhere fetches its own. Streaming
parsing straight from Storage instead would lose resumption (a checkpoint restarts at
conversation N, which needs to seek) and zip reading (the directory is at the end).
"""

from __future__ import annotations

from pipeline import downloads
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
    downloads.mark_verified(fetched.path)  # parsing here may read it (the hand-off)
    ctx.counters.update(bytes_total=fetched.size, bytes_done=fetched.size, sha256=fetched.sha256)
    ctx.advance()
