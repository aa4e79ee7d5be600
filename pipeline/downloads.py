"""The worker's copies of people's exports: where they live, and who is using one right now.

A copy is ``<data_dir>/downloads/<job id>.export`` (``.export.part`` while it streams in).
It exists only while a stage of this process holds it (`hold`): the last holder to let go
deletes it, whatever way the stage ended (done, failed, cancelled, released, lease lost,
an exception). The in-use set here is also what the janitor asks before deleting a file,
under the same lock, so a file being written or read by a stage in this process is never
taken from under it.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SUFFIX = ".export"
PART_SUFFIX = ".part"

# Absolute path of a copy -> how many running stages of this process hold it.
_holders: dict[Path, int] = {}
_lock = threading.Lock()
_held = threading.Condition(_lock)  # notified whenever a stage takes hold of a copy
# Copies a stage of this process fetched and checked (sha256, is an export): trusted by the
# next stage here while they exist. A file nobody here verified (a run that died) is not.
_verified: set[Path] = set()


def downloads_dir(data_dir: Path) -> Path:
    """``<data_dir>/downloads``, created if missing."""
    path = data_dir / "downloads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def export_path(data_dir: Path, job_id: uuid.UUID) -> Path:
    """Where this worker keeps job ``job_id``'s export while a stage needs it."""
    return downloads_dir(data_dir) / f"{job_id}{SUFFIX}"


def job_of(path: Path) -> uuid.UUID | None:
    """The job a file in the downloads dir belongs to, from its name; None when the name is
    not ``<uuid>.export`` or ``<uuid>.export.part`` (nothing of ours is named otherwise)."""
    name = path.name
    if name.endswith(PART_SUFFIX):
        name = name[: -len(PART_SUFFIX)]
    if not name.endswith(SUFFIX):
        return None
    try:
        return uuid.UUID(name[: -len(SUFFIX)])
    except ValueError:
        return None


def _key(path: Path) -> Path:
    return path.absolute()


def _remove(path: Path) -> None:
    path.unlink(missing_ok=True)
    path.with_name(path.name + PART_SUFFIX).unlink(missing_ok=True)


@contextmanager
def hold(path: Path) -> Iterator[None]:
    """Mark the copy at ``path`` in use for the block; the last holder deletes it (and any
    half-written ``.part``) on the way out, however the block ends."""
    key = _key(path)
    with _held:
        _holders[key] = _holders.get(key, 0) + 1
        _held.notify_all()
    try:
        yield
    finally:
        with _lock:
            left = _holders[key] - 1
            if left:
                _holders[key] = left
            else:
                del _holders[key]
                _verified.discard(key)
                _remove(key)


def wait_held(path: Path, count: int, timeout: float) -> bool:
    """Block until at least ``count`` running stages of this process hold ``path``, at most
    ``timeout`` seconds; True when they do."""
    key = _key(path)
    with _held:
        return _held.wait_for(lambda: _holders.get(key, 0) >= count, timeout)


def mark_verified(path: Path) -> None:
    """The copy at ``path``, held by the caller, was fetched and checked in this process."""
    key = _key(path)
    with _lock:
        if _holders.get(key):
            _verified.add(key)


def verified(path: Path) -> bool:
    """True while ``path`` is a copy this process fetched and checked (see mark_verified)."""
    key = _key(path)
    with _lock:
        return key in _verified and key.is_file()


def holders(path: Path) -> int:
    """How many running stages of this process hold ``path`` (0: nobody here uses it)."""
    with _lock:
        return _holders.get(_key(path), 0)


def remove_unless_held(path: Path) -> bool:
    """Delete ``path`` unless a stage of this process holds its copy (checked and deleted
    under one lock, so no stage can take it up in between). True when deleted."""
    base = (
        path.with_name(path.name[: -len(PART_SUFFIX)]) if path.name.endswith(PART_SUFFIX) else path
    )
    with _lock:
        if _holders.get(_key(base), 0):
            return False
        path.unlink(missing_ok=True)
        return True
