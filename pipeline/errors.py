"""The project's errors: one root, and the three kinds a stage can end with.

    SoulprintError                 anything this project raises on purpose
    ├── StageError                 permanent: the job ends `failed` with code and message
    ├── TransientError             worth another attempt later (5xx, timeouts)
    ├── RetryRefused               retry_import_job said why not (a newer import completed)
    ├── StopStage                  the stage stops early without failing
    │   ├── CancelRequested        the person cancelled
    │   ├── LeaseLost              another worker holds the job now
    │   └── ShuttingDown           SIGTERM / Ctrl-C: release the lease
    └── the domain errors, each with a sentence for a person (and its stdlib base):
        SettingsError, NotAnExportError, EmbedderError (and its kinds), GraphBuildError,
        CacheDirError, NarrationError, SearchError (and its kinds), SignatureError,
        MigrationRefused, ImportAlreadyRunning

``except SoulprintError`` at the edge of a command catches every one of them and nothing
that is a bug.
"""

from __future__ import annotations


class SoulprintError(Exception):
    """Root of every error this project raises on purpose."""


class StageError(SoulprintError):
    """The import cannot go on; the job ends `failed` with this code and message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class RetryRefused(SoulprintError):
    """The database refused a retry with a sentence for the person (str(self))."""


class TransientError(SoulprintError):
    """A dependency failed in a way worth another attempt later (5xx, timeouts)."""


class StopStage(SoulprintError):
    """Base for the ways a stage stops early without failing."""


class CancelRequested(StopStage):
    """The person asked to cancel: remove this import's partial data, stage `cancelled`."""


class LeaseLost(StopStage):
    """Another worker holds the job now: stop without touching it."""


class ShuttingDown(StopStage):
    """SIGTERM: the last batch is committed; release the lease for another worker."""
