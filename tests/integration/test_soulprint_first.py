"""Soulprint first: shown when its stage ends, taken back if the import never completes.

Order queued -> downloading -> parsing -> generating_soulprint -> embedding -> complete, on
the real database as the worker role; what the person sees is read as that person (RLS).
"""

from __future__ import annotations

import uuid

import psycopg
import pytest

from pipeline.jobstore import JobStore
from tests.dbutil import (
    create_user,
    finish_import,
    jobs_for,
    upload_object,
    user_session,
    walk_to,
)


@pytest.fixture
def store(worker_db_url: str) -> JobStore:
    """A job store logged in as import_worker, as the stages use it."""
    with JobStore(worker_db_url) as s:
        yield s


def _new_import(db_url: str, user: uuid.UUID) -> uuid.UUID:
    upload_object(db_url, user, name=f"{uuid.uuid4().hex[:6]}.zip")
    return jobs_for(db_url, user)[-1]["id"]


def _shown(store: JobStore, db_url: str, job_id: uuid.UUID, text: str) -> None:
    """Run the job up to the end of its soulprint stage: `text` is shown, embedding next."""
    walk_to(db_url, job_id, "generating_soulprint")
    assert store.claim(job_id, "generating_soulprint", "sp") is not None
    assert store.show_soulprint(job_id, "sp", {"tag": text}, text) == "embedding"


def _seen(db_url: str, user: uuid.UUID) -> tuple[str | None, list[str]]:
    """What the person reads: their profile's soulprint and the soulprint rows RLS lets
    through."""
    with user_session(db_url, user) as conn:
        row = conn.execute(
            "select soulprint_text from public.user_profiles where user_id = %s", (user,)
        ).fetchone()
        rows = [
            r["soulprint_text"]
            for r in conn.execute(
                "select soulprint_text from public.soulprints order by created_at"
            )
        ]
    return (row["soulprint_text"] if row else None), rows


def _traces(db_url: str, job_id: uuid.UUID) -> int:
    with psycopg.connect(db_url) as conn:
        return conn.execute(
            "select (select count(*) from public.soulprints where job_id = %(j)s)"
            " + (select count(*) from public.import_profile_states where job_id = %(j)s)"
            " + (select count(*) from public.memory_chunks where job_id = %(j)s)"
            " + (select count(*) from public.import_conversations where job_id = %(j)s)",
            {"j": job_id},
        ).fetchone()[0]


def test_soulprint_shows_before_memory_and_memory_swaps_at_complete(
    db_url: str, store: JobStore
) -> None:
    """Guards pitfall 5 (no progress): the person reads their soulprint as soon as its stage
    ends, with soulprint_at on the job row the app watches, while their memory is still the
    previous import's until `complete`."""
    user = create_user(db_url)
    first = _new_import(db_url, user)
    finish_import(store, db_url, first, "old soulprint")
    second = _new_import(db_url, user)
    _shown(store, db_url, second, "new soulprint")

    job = store.get(second)
    assert job.stage == "embedding" and job.soulprint_at is not None
    assert _seen(db_url, user) == ("new soulprint", ["old soulprint", "new soulprint"])
    with user_session(db_url, user) as conn:
        current = conn.execute(
            "select current_import_id from public.user_profiles where user_id = %s", (user,)
        ).fetchone()["current_import_id"]
    assert current == first  # memory has not swapped yet

    assert store.claim(second, "embedding", "w") is not None
    assert store.complete(second, "w")
    assert _seen(db_url, user) == ("new soulprint", ["new soulprint"])
    assert _traces(db_url, first) == 0


@pytest.mark.parametrize("held", [False, True])
def test_cancel_after_the_soulprint_showed_restores_the_previous_one(
    db_url: str, store: JobStore, held: bool
) -> None:
    """Guards pitfall 7 (duplicate imports / half-swapped data): a cancelled import leaves
    no trace, even after its soulprint was shown: the person's previous soulprint is back,
    word for word, whether nobody held the job (cancelled at once) or the embedding stage
    held it (cancelled at its next report)."""
    user = create_user(db_url)
    first = _new_import(db_url, user)
    finish_import(store, db_url, first, "old soulprint")
    second = _new_import(db_url, user)
    _shown(store, db_url, second, "new soulprint")
    if held:
        assert store.claim(second, "embedding", "w") is not None
        assert store.request_cancel(second) == "embedding"
        assert store.progress(second, "w", {}, force=True) == "cancel_requested"
        assert store.finish_cancel(second, "w")
    else:
        assert store.request_cancel(second) == "cancelled"

    job = store.get(second)
    assert job.stage == "cancelled" and job.soulprint_at is None
    assert _seen(db_url, user) == ("old soulprint", ["old soulprint"])
    assert _traces(db_url, second) == 0


def test_cancel_of_a_first_import_after_its_soulprint_showed_leaves_none(
    db_url: str, store: JobStore
) -> None:
    """Guards pitfall 7: with no earlier import, cancelling takes the shown soulprint away
    (there was none before), and a cancel at complete time does the same."""
    user = create_user(db_url)
    job_id = _new_import(db_url, user)
    _shown(store, db_url, job_id, "fresh soulprint")
    assert _seen(db_url, user) == ("fresh soulprint", ["fresh soulprint"])
    assert store.claim(job_id, "embedding", "w") is not None
    assert store.request_cancel(job_id) == "embedding"
    assert store.complete(job_id, "w") is False  # the person asked first
    assert store.get(job_id).stage == "cancelled"
    assert _seen(db_url, user) == (None, [])
    assert _traces(db_url, job_id) == 0


def test_a_cancel_pending_when_the_soulprint_is_ready_shows_nothing(
    db_url: str, store: JobStore
) -> None:
    """Guards pitfall 7: a cancel that arrived while the soulprint was being written wins:
    nothing is shown, the import is cancelled."""
    user = create_user(db_url)
    job_id = _new_import(db_url, user)
    walk_to(db_url, job_id, "generating_soulprint")
    assert store.claim(job_id, "generating_soulprint", "sp") is not None
    assert store.request_cancel(job_id) == "generating_soulprint"
    assert store.show_soulprint(job_id, "sp", {}, "too late") == "cancelled"
    assert _seen(db_url, user) == (None, [])
    assert _traces(db_url, job_id) == 0


def test_failure_restores_the_previous_soulprint_and_retry_shows_the_new_one_again(
    db_url: str, store: JobStore
) -> None:
    """Guards pitfall 9 (status never written) and 7: an import that fails after its
    soulprint showed gives the previous one back (a failed import is not who they are yet);
    a retry resumes embedding with the new soulprint shown again, and completes."""
    user = create_user(db_url)
    first = _new_import(db_url, user)
    finish_import(store, db_url, first, "old soulprint")
    second = _new_import(db_url, user)
    _shown(store, db_url, second, "new soulprint")
    assert store.claim(second, "embedding", "w") is not None
    assert store.fail(second, "w", "embedder_down", "We could not build your memory.")
    assert store.get(second).soulprint_at is None
    assert _seen(db_url, user)[0] == "old soulprint"

    assert store.retry(second) == "embedding"
    assert store.get(second).soulprint_at is not None
    assert _seen(db_url, user)[0] == "new soulprint"
    assert store.claim(second, "embedding", "w2") is not None
    assert store.complete(second, "w2")
    assert _seen(db_url, user) == ("new soulprint", ["new soulprint"])


def test_sweeper_failing_a_stalled_embedding_restores_the_previous_soulprint(
    db_url: str, store: JobStore
) -> None:
    """Guards pitfall 1 (work that vanishes): a worker that died in embedding after the
    soulprint showed is failed by the sweeper, and that failure takes the soulprint back
    like any other."""
    user = create_user(db_url)
    first = _new_import(db_url, user)
    finish_import(store, db_url, first, "old soulprint")
    second = _new_import(db_url, user)
    _shown(store, db_url, second, "new soulprint")
    for n in range(3):
        assert store.claim(second, "embedding", f"dead-{n}", 1) is not None
        with psycopg.connect(db_url, autocommit=True) as conn:
            conn.execute(
                "update public.import_jobs set lease_expires_at = now() - interval"
                " '1 s' where id = %s",
                (second,),
            )
        actions = dict(store.sweep(3600, 3))
    assert actions[second] == "failed"
    assert _seen(db_url, user)[0] == "old soulprint"


def test_retry_of_a_failed_soulprint_stage_shows_nothing_until_it_ends(
    db_url: str, store: JobStore
) -> None:
    """Guards pitfall 9: a soulprint stage that failed is retried in that stage; nothing is
    shown until the retried stage writes its soulprint."""
    user = create_user(db_url)
    job_id = _new_import(db_url, user)
    walk_to(db_url, job_id, "generating_soulprint")
    assert store.claim(job_id, "generating_soulprint", "sp") is not None
    assert store.fail(job_id, "sp", "internal_error", "Something went wrong.")
    assert store.retry(job_id) == "generating_soulprint"
    assert _seen(db_url, user) == (None, [])
    assert store.claim(job_id, "generating_soulprint", "sp2") is not None
    assert store.show_soulprint(job_id, "sp2", {}, "second try") == "embedding"
    assert _seen(db_url, user) == ("second try", ["second try"])
