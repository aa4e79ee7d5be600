"""The janitor: deletes copies of exports that no running stage on this machine needs.

Stages delete their own copy when they end (pipeline.downloads.hold); what is left is what
a process that died mid-stage (kill -9, out of memory, a crash of the host) left behind.
A file in ``<data_dir>/downloads`` goes when:

- its name names no job (``unknown``), or its job is gone (``gone``);
- its job is in no stage that reads the export (``not_needed``): past them, or not yet
  at them (queued);
- its job's live lease belongs to a process on this host that no longer exists
  (``crashed``: kill -9, out of memory);
- no stage here is using it (``idle``): no stage of this process holds it, and the job's
  live lease is held on another host, or there is no live lease and the file was last
  written over IDLE_GRACE_SECONDS ago. A stage that runs later fetches its own copy (only
  a copy held right now is ever reused).

It stays while a stage of this process holds it (checked under the same lock the stage
takes, at the moment of deletion), while the job's lease is live and owned by another
living process on this host (``soulprint-import janitor`` beside a receiver on one disk),
and while any process on this host has it open (Linux).

Runs in the receiver (at start-up, then every JANITOR_INTERVAL_SECONDS) and as
``soulprint-import janitor``. Logs name jobs, never people's files.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from pipeline import downloads
from pipeline.queries import QUERIES
from pipeline.stages import READS_EXPORT

log = logging.getLogger("soulprint.janitor")

# A copy whose job still sits in a stage that reads it, written less than this long ago,
# is left for the next pass: another process on this host may have claimed the job after
# the janitor read its lease and be writing that very file (a new copy is always written
# fresh, so its mtime is recent). A stage of this process needs no grace: the lock decides.
IDLE_GRACE_SECONDS = 60.0


@dataclass
class Sweep:
    """What one pass did: file names (job ids, never the person's file) by reason."""

    removed: dict[str, list[str]] = field(default_factory=dict)
    kept: dict[str, list[str]] = field(default_factory=dict)

    def note(self, bucket: dict[str, list[str]], reason: str, name: str) -> None:
        bucket.setdefault(reason, []).append(name)

    @property
    def removed_count(self) -> int:
        return sum(len(v) for v in self.removed.values())


def _local_holder(lease_owner: str | None) -> int | None:
    """The pid in a lease owner (``host:pid:nonce``, see worker_identity) when that process
    runs on this host (and so may be using this disk), else None."""
    host, _, rest = (lease_owner or "").partition(":")
    pid = rest.partition(":")[0]
    if host != socket.gethostname() or not pid.isdigit():
        return None
    return int(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _verdict(path: Path, lease_owner: str | None, leased: bool, this_process: bool) -> str:
    """For a copy whose job sits in a stage that reads the export: a reason to delete it,
    or ``keep:<why>``. While the lease is live nobody else can claim the job, so only its
    holder could be writing the copy; with no live lease, any process here might just have
    claimed it, hence the grace for copies written a moment ago."""
    if leased:
        pid = _local_holder(lease_owner)
        if pid is None:
            return "idle"  # the stage runs on another host: this copy serves nobody
        if this_process and pid == os.getpid():
            return "idle"  # ours: the in-use set (checked at deletion) is exact
        return "keep:leased" if _alive(pid) else "crashed"
    return "keep:recent" if _recent(path) else "idle"


def _recent(path: Path) -> bool:
    try:
        return time.time() - path.stat().st_mtime < IDLE_GRACE_SECONDS
    except FileNotFoundError:
        return False


def _open_anywhere(paths: list[Path]) -> set[str]:
    """Which of ``paths`` some process on this host has open right now (Linux: the links in
    /proc/<pid>/fd; elsewhere none are known). The last guard, for what the database cannot
    tell: a process using this data dir with another database (a developer's `run` beside a
    test receiver), whose jobs this database calls gone."""
    wanted = {str(p.absolute()) for p in paths}
    found: set[str] = set()
    for fd_dir in Path("/proc").glob("[0-9]*/fd"):
        try:
            links = list(fd_dir.iterdir())
        except OSError:  # gone meanwhile, or not ours to look at
            continue
        for link in links:
            try:
                target = os.readlink(link)
            except OSError:
                continue
            if target in wanted:
                found.add(target)
    return found


def sweep_downloads(data_dir: Path, conninfo: str, *, this_process: bool = True) -> Sweep:
    """One pass over ``<data_dir>/downloads``. ``this_process``: the caller runs stages
    itself (the receiver), so its in-use set speaks for its own leases. Raises
    psycopg.Error when the database cannot be asked (then nothing is deleted)."""
    result = Sweep()
    folder = data_dir / "downloads"
    if not folder.is_dir():
        return result
    files = [p for p in folder.iterdir() if p.is_file() or p.is_symlink()]
    if not files:
        return result
    jobs = [j for j in {downloads.job_of(p) for p in files} if j is not None]
    rows = []
    if jobs:
        with psycopg.connect(conninfo, autocommit=True) as conn:
            rows = conn.execute(QUERIES["janitor_job_states"], (jobs,)).fetchall()
    states: dict[uuid.UUID, tuple[str, str | None, bool]] = {r[0]: (r[1], r[2], r[3]) for r in rows}
    open_now = _open_anywhere(files)
    for path in files:
        if str(path.absolute()) in open_now:
            result.note(result.kept, "open", path.name)
            continue
        job = downloads.job_of(path)
        state = states.get(job) if job is not None else None
        if job is None:
            reason = "unknown"
        elif state is None:
            reason = "gone"
        elif state[0] not in READS_EXPORT:
            reason = "not_needed"
        else:
            reason = _verdict(path, state[1], state[2], this_process)
            if reason.startswith("keep:"):
                result.note(result.kept, reason.removeprefix("keep:"), path.name)
                continue
        if downloads.remove_unless_held(path):
            result.note(result.removed, reason, path.name)
        else:
            result.note(result.kept, "in_use", path.name)
    if result.removed:
        log.info(
            "janitor: removed %d leftover export cop%s from %s: %s",
            result.removed_count,
            "y" if result.removed_count == 1 else "ies",
            folder,
            {k: len(v) for k, v in result.removed.items()},
        )
    return result


async def janitor_loop(data_dir: Path, conninfo: str, interval_s: float) -> None:
    """The receiver's janitor: a pass at start-up, then one every ``interval_s`` seconds,
    until cancelled. A pass that fails (database asleep) is logged and tried next time."""
    while True:
        try:
            await asyncio.to_thread(sweep_downloads, data_dir, conninfo)
        except (psycopg.Error, OSError) as exc:
            log.warning(
                "janitor: pass skipped (%s); next in %.0f s", type(exc).__name__, interval_s
            )
        await asyncio.sleep(interval_s)
