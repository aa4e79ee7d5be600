"""An older import never replaces a newer one's memory (fresh-eyes review, finding 1): the
retry refusal and the completion guard of 20261130950000_retry_superseded_guard.sql, on the
real database as the worker role."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from psycopg.rows import dict_row

from pipeline.errors import RetryRefused, StageError
from pipeline.jobstore import JobStore
from tests.dbutil import create_user, jobs_for, upload_object, walk_to


@pytest.fixture
def store(worker_db_url: str):
    with JobStore(worker_db_url) as s:
        yield s


def _add_chunks(
    db_url: str, job_id: uuid.UUID, user_id: uuid.UUID, n: int, vectors: int | None = None
) -> None:
    """``n`` memory chunks of the job, the first ``vectors`` (default all) with a vector:
    the guard reads both the job's counters and the vectors."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        for k in range(n):
            has = k < (n if vectors is None else vectors)
            conn.execute(
                "insert into public.memory_chunks (id, job_id, user_id, conversation_id,"
                " chunk_index, content, embedding, embedding_model, embedding_dim)"
                " values (gen_random_uuid(), %s, %s, 'c1', %s, %s, %s::real[], %s, %s)",
                (job_id, user_id, k, f"chunk {k} of {job_id}")
                + (([0.1, 0.2, 0.3], "test", 3) if has else (None, None, None)),
            )


def _to_last_stage(
    store: JobStore, job_id: uuid.UUID, db_url: str, chunks: int, embedded: int, soulprint: str
) -> None:
    """Walk a job through parsing (``chunks`` counted, ``embedded`` vectors) and its
    soulprint stage (``soulprint`` shown) to embedding, the last stage, claimed as "w"."""
    walk_to(db_url, job_id, "parsing")
    assert store.claim(job_id, "parsing", "w") is not None
    assert (
        store.advance(job_id, "w", "parsing", {"chunks": chunks, "embedded_chunks": embedded})
        == "generating_soulprint"
    )
    assert store.claim(job_id, "generating_soulprint", "w") is not None
    assert store.show_soulprint(job_id, "w", {}, soulprint) == "embedding"
    assert store.claim(job_id, "embedding", "w") is not None


def _profile(db_url: str, user_id: uuid.UUID) -> dict:
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        return conn.execute(
            "select * from public.user_profiles where user_id = %s", (user_id,)
        ).fetchone()


def _chunk_jobs(db_url: str, user_id: uuid.UUID) -> set[uuid.UUID]:
    with psycopg.connect(db_url) as conn:
        return {
            r[0]
            for r in conn.execute(
                "select distinct job_id from public.memory_chunks where user_id = %s", (user_id,)
            )
        }


def _failed_then_newer_complete(
    db_url: str, store: JobStore
) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """Import A fails in embedding; import B (a later upload) completes with 2 chunks."""
    user = create_user(db_url)
    upload_object(db_url, user, name="a.zip")
    a = jobs_for(db_url, user)[0]["id"]
    walk_to(db_url, a, "embedding")
    assert store.claim(a, "embedding", "w") is not None
    assert store.fail(a, "w", "embedding_failed", "Unknown embedding provider 'foo'.")
    upload_object(db_url, user, name="b.zip")
    b = jobs_for(db_url, user)[-1]["id"]
    assert b != a
    _add_chunks(db_url, b, user, 2)
    _to_last_stage(store, b, db_url, chunks=2, embedded=2, soulprint="You are B.")
    assert store.complete(b, "w")
    return user, a, b


def test_retrying_an_older_failed_import_is_refused_and_the_memory_stays(
    db_url: str,
    store: JobStore,
) -> None:
    """Guards pitfall 9 (a person loses their data to an operation): `retry A` after a newer
    import B completed used to finish A over nothing (B's completion had deleted A's
    chunks), point the person at A and delete B's chunks and soulprint. Now the retry is
    refused with a sentence saying to upload again, and B stays the memory."""
    user, a, b = _failed_then_newer_complete(db_url, store)
    with pytest.raises(RetryRefused) as info:
        store.retry(a)
    message = str(info.value)
    assert str(b) in message and "upload it again" in message
    assert store.get(a).stage == "failed"
    profile = _profile(db_url, user)
    assert profile["current_import_id"] == b and profile["soulprint_text"] == "You are B."
    assert _chunk_jobs(db_url, user) == {b}


def test_a_failed_import_with_nothing_newer_still_retries(db_url: str, store: JobStore) -> None:
    """The refusal is only for superseded imports: the latest failed import resumes."""
    user = create_user(db_url)
    upload_object(db_url, user)
    a = jobs_for(db_url, user)[0]["id"]
    walk_to(db_url, a, "embedding")
    store.claim(a, "embedding", "w")
    store.fail(a, "w", "embedding_failed", "Unknown embedding provider 'foo'.")
    assert store.retry(a) == "embedding"


def test_completion_is_refused_while_chunks_lack_vectors(db_url: str, store: JobStore) -> None:
    """Guards pitfall 9 (silent partial success): a job whose embedded_chunks < chunks must
    not become the person's memory; the completion is refused as a whole (no soulprint,
    no profile switch, the previous import's data kept) with a readable reason."""
    user, _, b = _failed_then_newer_complete(db_url, store)
    upload_object(db_url, user, name="c.zip")
    c = jobs_for(db_url, user)[-1]["id"]
    _add_chunks(db_url, c, user, 3, vectors=1)
    _to_last_stage(store, c, db_url, chunks=3, embedded=1, soulprint="You are C.")
    with pytest.raises(StageError) as info:
        store.complete(c, "w")
    assert info.value.code == "not_completable" and "1 of its 3" in info.value.message
    assert store.get(c).stage == "embedding"
    profile = _profile(db_url, user)
    assert profile["current_import_id"] == b  # C's soulprint shows, B's memory stays
    assert _chunk_jobs(db_url, user) == {b, c}
    # The stage fails the job on that StageError, and the person gets B's soulprint back.
    assert store.fail(c, "w", info.value.code, info.value.message)
    assert _profile(db_url, user)["soulprint_text"] == "You are B."


def test_an_import_older_than_the_current_one_never_completes(db_url: str, store: JobStore) -> None:
    """Guards pitfall 9: whatever path brings an older import to its last stage (a retry
    from before this guard, a hand edit), completing it must not replace the newer memory."""
    user, a, b = _failed_then_newer_complete(db_url, store)
    with psycopg.connect(db_url, autocommit=True) as conn:  # reopened by hand, as before
        conn.execute(
            "update public.import_jobs set stage = 'embedding', failed_stage = null where id = %s",
            (a,),
        )
    assert store.claim(a, "embedding", "w") is not None
    with pytest.raises(StageError) as info:
        store.complete(a, "w")
    assert str(b) in info.value.message and "upload it again" in info.value.message
    profile = _profile(db_url, user)
    assert profile["current_import_id"] == b and _chunk_jobs(db_url, user) == {b}
