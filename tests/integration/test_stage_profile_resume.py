"""The profile is built in the parsing pass, checkpointed with each batch, and resumed.

Real database (worker role), the export served by the Storage stand-in, the stages run as
the receiver runs them (run_stage).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from pipeline.exports import person_notes
from pipeline.exports.reader import ExportReader
from pipeline.jobstore import JobStore
from pipeline.soulprint import build_soulprint
from pipeline.soulprint.profile import ProfileBuilder
from pipeline.stages import parsing, run_stage
from tests.dbutil import create_user, upload_object
from tests.fake_storage import fake_storage, worker_settings

SAMPLE = Path(__file__).resolve().parents[2] / "examples" / "sample-export.zip"


class Killed(BaseException):
    """The process dying mid-batch: nothing after it runs, nothing is released."""


@pytest.fixture
def uploaded(db_url: str, worker_db_url: str, tmp_path: Path) -> Iterator[tuple]:
    """The sample export uploaded by a new person, the job downloaded and in `parsing`."""
    user = create_user(db_url)
    folder = tmp_path / "bucket" / "imports" / str(user)
    folder.mkdir(parents=True)
    export = folder / "export.zip"
    export.write_bytes(SAMPLE.read_bytes())
    upload_object(db_url, user, name="export.zip", size=export.stat().st_size)
    store = JobStore(worker_db_url)
    job_id = store.latest_for_user(user).id
    with fake_storage(tmp_path / "bucket") as storage:
        settings = worker_settings(tmp_path / "worker", storage.url)
        for stage in ("queued", "downloading"):
            assert run_stage(job_id, stage, settings, store, worker_db_url) == "done"
        yield store, settings, job_id
    store.close()


def _comparable(profile: dict) -> str:
    return json.dumps(
        {k: v for k, v in profile.items() if k not in ("import", "narration")},
        sort_keys=True,
        ensure_ascii=False,
    )


def test_a_kill_mid_parse_resumes_the_profile_and_gives_the_same_soulprint(
    uploaded: tuple, db_url: str, worker_db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Guards pitfall 1 (work that vanishes) and 6 (a 500 MB export read twice): a worker
    killed halfway through parsing leaves rows, counters and the profile committed together;
    the next worker reads on from the checkpoint (not from the start) and the soulprint is
    exactly the one an uninterrupted pass gives. The export is not read again for the
    soulprint, and leaves the worker's disk once parsing has committed."""
    store, settings, job_id = uploaded
    monkeypatch.setattr(parsing, "BATCH_CONVERSATIONS", 5)

    seen: list[int] = []
    kill_at = [22]  # once
    real_add = ProfileBuilder.add

    def add(self: ProfileBuilder, conv) -> None:
        seen.append(conv.index)
        if kill_at and conv.index == kill_at[0]:
            kill_at.clear()
            raise Killed()
        real_add(self, conv)

    monkeypatch.setattr(ProfileBuilder, "add", add)
    with pytest.raises(Killed):
        run_stage(job_id, "parsing", settings, store, worker_db_url)
    job = store.get(job_id)
    assert job.stage == "parsing" and job.checkpoint["next_index"] == 20
    assert job.conversations == 20  # counters are the committed batches' totals
    with psycopg.connect(db_url, autocommit=True) as conn:  # the dead worker's lease runs out
        conn.execute(
            "update public.import_jobs set lease_expires_at = now() - interval '1 s' where id = %s",
            (job_id,),
        )

    seen.clear()
    assert run_stage(job_id, "parsing", settings, store, worker_db_url) == "done"
    assert seen[0] == 20  # resumed after the last committed batch, not from the start
    job = store.get(job_id)
    assert job.stage == "generating_soulprint" and job.conversations == 38
    assert not list((settings.data_dir / "downloads").glob("*.export"))  # parsed: deleted

    monkeypatch.setattr(ProfileBuilder, "add", lambda *_: pytest.fail("export read again"))
    assert run_stage(job_id, "generating_soulprint", settings, store, worker_db_url) == "done"
    with psycopg.connect(db_url) as conn:
        profile, text = conn.execute(
            "select profile, soulprint_text from public.soulprints where job_id = %s", (job_id,)
        ).fetchone()
        states = conn.execute(
            "select count(*) from public.import_profile_states where job_id = %s", (job_id,)
        ).fetchone()[0]
        # The person's own notes (custom instructions, memory notes), as parsing stored them.
        about = person_notes.load(conn, job_id)
    monkeypatch.undo()  # an uninterrupted pass, for comparison, may read the export
    expected, expected_text = build_soulprint(ExportReader(SAMPLE), about=about)
    assert _comparable(profile) == _comparable(expected)
    assert text == expected_text
    assert states == 0  # the checkpoint goes once the soulprint exists
    assert store.get(job_id).stage == "embedding"
    # The same event delivered again (a replay, a sweep) finds the job moved on: no effect.
    assert (
        run_stage(job_id, "generating_soulprint", settings, store, worker_db_url) == "not_claimed"
    )
    assert run_stage(job_id, "parsing", settings, store, worker_db_url) == "not_claimed"
