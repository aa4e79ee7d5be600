"""The stages of an import, as Python knows them: the one list, with its sets and labels.

The state machine itself is SQL's (enum ``public.import_stage``, ``import_next_stage``,
``import_stage_is_active`` in supabase/migrations): this module mirrors it, and
tests/integration/test_stage_enum.py holds the two equal. Which code runs in a stage is
``pipeline.stages.HANDLERS``.
"""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """One value of ``public.import_stage``, in the enum's order."""

    QUEUED = "queued"
    DOWNLOADING = "downloading"
    PARSING = "parsing"
    CHUNKING = "chunking"  # kept for clients that list stages; parsing chunks, never entered
    EMBEDDING = "embedding"
    GENERATING_SOULPRINT = "generating_soulprint"
    COMPLETE = "complete"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"

    @property
    def active(self) -> bool:
        """A worker still has something to do (``import_stage_is_active``)."""
        return self in ACTIVE

    @property
    def terminal(self) -> bool:
        return self in TERMINAL

    @property
    def label(self) -> str:
        """The stage's line in the terminal progress view ("Reading conversations")."""
        return _LABELS.get(self, self.value.replace("_", " ").capitalize())

    @property
    def doing(self) -> str:
        """What the worker is doing, as a person reads it mid-sentence: "Something went
        wrong while {doing}"."""
        return _DOING.get(self, "importing your export")


# The happy path, in the order import_next_stage walks it (soulprint before embedding: it
# is what the person waits for, and it needs no vectors).
PATH: tuple[Stage, ...] = (
    Stage.QUEUED,
    Stage.DOWNLOADING,
    Stage.PARSING,
    Stage.GENERATING_SOULPRINT,
    Stage.EMBEDDING,
    Stage.COMPLETE,
)
ACTIVE = frozenset(
    {
        Stage.QUEUED,
        Stage.DOWNLOADING,
        Stage.PARSING,
        Stage.CHUNKING,
        Stage.EMBEDDING,
        Stage.GENERATING_SOULPRINT,
    }
)
TERMINAL = frozenset(Stage) - ACTIVE
# The active stages a worker runs code for, in path order (chunking is never entered).
WORKED: tuple[Stage, ...] = tuple(s for s in PATH if s in ACTIVE)

_LABELS = {
    Stage.QUEUED: "Waiting for the worker",
    Stage.DOWNLOADING: "Downloading",
    Stage.PARSING: "Reading conversations",
    Stage.GENERATING_SOULPRINT: "Writing the soulprint",
    Stage.EMBEDDING: "Embedding memory",
}
_DOING = {
    Stage.QUEUED: "starting the import",
    Stage.DOWNLOADING: "downloading your export",
    Stage.PARSING: "reading your conversations",
    Stage.GENERATING_SOULPRINT: "writing your soulprint",
    Stage.EMBEDDING: "building your searchable memory",
}

__all__ = ["ACTIVE", "PATH", "TERMINAL", "WORKED", "Stage"]
