"""The download hand-off's copy when another thread of this process won the parsing claim
(seen under load in test_security_logging: the export downloaded twice)."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

from pipeline import downloads
from pipeline.stages import PASS_ON_SECONDS, _pass_copy_on


def test_a_lost_hand_off_keeps_the_copy_until_the_winning_thread_holds_it(tmp_path: Path):
    """Guards pitfall 6 (work repeated): the thread that downloaded lets go of the copy only
    once the thread that claimed parsing holds it, so that thread reads it instead of
    fetching the export again; and it never waits longer than PASS_ON_SECONDS."""
    path = downloads.export_path(tmp_path, uuid.uuid4())
    path.write_bytes(b"export")
    seen: list[bool] = []
    winner_holds = threading.Event()

    def winner() -> None:
        time.sleep(0.3)  # claimed in the database first, holds the copy a moment later
        with downloads.hold(path):
            winner_holds.set()
            seen.append(path.is_file())
            time.sleep(0.1)

    t = threading.Thread(target=winner)
    with downloads.hold(path):  # the downloading stage's hold
        t.start()
        started = time.monotonic()
        _pass_copy_on(path)
        waited = time.monotonic() - started
    t.join()
    assert winner_holds.is_set() and seen == [True]
    assert 0.25 < waited < PASS_ON_SECONDS
    assert not path.exists()  # the last holder removed it


def test_with_no_thread_coming_the_copy_goes_after_the_pass_on_time(tmp_path: Path):
    """Another instance won the claim: the copy is kept at most PASS_ON_SECONDS, then goes."""
    path = downloads.export_path(tmp_path, uuid.uuid4())
    path.write_bytes(b"export")
    with downloads.hold(path):
        started = time.monotonic()
        _pass_copy_on(path)
        assert time.monotonic() - started >= PASS_ON_SECONDS * 0.95
    assert not path.exists()


def test_the_verified_copy_stays_trusted_after_the_downloader_lets_go(tmp_path: Path):
    """Guards pitfall 6 (work repeated), the cause behind the double download: the thread
    that won parsing checked the copy only after the downloader had let go of it, found no
    other holder, and fetched the export again. A copy this process verified is trusted
    while it exists; a file nobody here verified (left by a run that died) is not."""
    path = downloads.export_path(tmp_path, uuid.uuid4())
    path.write_bytes(b"export")
    with downloads.hold(path):  # parsing's hold
        with downloads.hold(path):  # downloading's hold
            downloads.mark_verified(path)
        assert downloads.verified(path)  # the downloader is gone, the check is still true
    assert not path.exists() and not downloads.verified(path)
    path.write_bytes(b"left by a run that died")
    with downloads.hold(path):
        assert not downloads.verified(path)
