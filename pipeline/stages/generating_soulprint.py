"""generating_soulprint: the portrait, shown to the person as soon as this stage ends.

Parsing already built the profile (checkpointed in import_profile_states); this stage only
renders it (or has an LLM narrate it) and hands it to show_import_soulprint, which in one
transaction writes the soulprints row, puts the text in user_profiles, stamps soulprint_at
and moves the job on to embedding. The memory it describes swaps in later, at `complete`;
a cancel or failure before then gives the person their previous soulprint back.
"""

from __future__ import annotations

import logging

from pipeline.errors import LeaseLost
from pipeline.exports import person_notes
from pipeline.exports.reader import ExportReader
from pipeline.soulprint import ProfileBuilder, write_soulprint
from pipeline.stages import profile_state
from pipeline.stages.context import StageContext
from pipeline.stages.export_file import ensure_export, person_file_name

log = logging.getLogger("soulprint.stages.soulprint")


def _profile_from_export(ctx: StageContext) -> tuple[ProfileBuilder, dict[str, object]]:
    """A job parsed by a worker that did not checkpoint profiles (an upgrade mid-import):
    read the export once more."""
    log.warning("job %s: no profile checkpoint; reading the export again", ctx.job.id)
    reader = ExportReader(
        ensure_export(ctx),
        max_message_chars=ctx.settings.max_message_chars,
        name=person_file_name(ctx.job),
    )
    builder = ProfileBuilder()
    for conv in reader:
        builder.add(conv)
        ctx.report()  # throttled; raises on cancel or shutdown
    ctx.export_path().unlink(missing_ok=True)
    return builder, {
        "cut_messages": reader.stats.cut_messages,
        "truncated": reader.stats.truncated,
        "error": reader.stats.error,
    }


def run(ctx: StageContext) -> None:
    with ctx.connect() as conn:
        loaded = profile_state.load(conn, ctx.job.id)
        # Custom instructions and memory notes, as the parsing stage stored them.
        about = person_notes.load(conn, ctx.job.id)
    builder, export = loaded if loaded is not None else _profile_from_export(ctx)
    profile = builder.profile()
    profile["self_description"] = list(about.get("self_description", []))
    profile["memory_notes"] = list(about.get("memory_notes", []))
    profile["import"] = {
        # A damaged export is imported as far as it reads; the person should know.
        "export_truncated": export.get("truncated", False),
        "export_error": export.get("error"),
        "cut_messages": export.get("cut_messages", 0),
        "excluded_conversations": ctx.job.excluded,
        "conversations": ctx.job.conversations,
        "messages": ctx.job.messages,
        "chunks": ctx.job.chunks,
    }
    ctx.report(force=True)  # alive; and a cancel that came meanwhile stops us here
    profile, text = write_soulprint(profile, ctx.settings)
    shown = ctx.store.show_soulprint(ctx.job.id, ctx.owner, profile, text)
    if shown is None:
        raise LeaseLost()
    log.info(
        "job %s: soulprint %s",
        ctx.job.id,
        "shown" if shown != "cancelled" else "dropped: cancelled",
    )
