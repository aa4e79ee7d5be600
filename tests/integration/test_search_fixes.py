"""Fixes from the fresh-eyes review of memory search (issue 11, review findings F1-F5):
bad input and database errors answer with a sentence, never a 500 or a traceback; a long
query costs bounded database time whichever way it arrives; five slots hold five memories
when the person asked the same thing twice; a result's score is explained by its parts."""

from __future__ import annotations

import psycopg
import pytest

from pipeline.embedded import searcher_url
from tests.cli_helpers import cli, cli_env
from tests.dbutil import create_user, user_session
from tests.search_helpers import completed_import, unit_vector, vec_literal
from tests.search_service import ALICE, import_texts, search, token

DIM = 384
MATCH = "select * from public.match_memories(%s::extensions.vector, %s, %s)"
REVOKE = "revoke execute on function public.match_memories from authenticated"

ASKED = (
    "User: Can you help me write a short email to my landlord? The radiator in the "
    "bedroom is broken and my cat Pistachio sleeps there."
)


def test_a_nul_in_the_query_is_a_400_not_a_500(db_url, start_service, embedder):
    """F1: PostgreSQL text cannot hold NUL, and the query went to the database unchecked:
    a `\\u0000` in the JSON query answered 500 with a stack trace in the log. It is a bad
    query (400 `bad_query`), refused before anything is embedded; the next search works."""
    alice = create_user(db_url)
    import_texts(db_url, embedder, alice, ALICE)
    svc = start_service()
    r = search(svc, token(alice), {"query": "Biscuit\u0000sneakers"})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "bad_query" and "NUL" in r.json()["message"]
    r = search(svc, token(alice), {"query": "Biscuit sneakers"})
    assert r.status_code == 200 and r.json()["results"], r.text


def test_a_database_error_is_a_503_with_a_sentence(db_url, start_service, embedder):
    """F1: any database error other than a lost connection (here: the grant on
    match_memories missing, as on a project where a migration was not applied) escaped
    the handler as a 500. It is a 503 JSON body naming no internals."""
    alice = create_user(db_url)
    import_texts(db_url, embedder, alice, ALICE)
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(REVOKE)
    svc = start_service()
    r = search(svc, token(alice), {"query": "Biscuit sneakers"})
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["error"] == "database_error" and "match_memories" not in body["message"]


def test_cli_search_reports_a_database_error_in_a_sentence(db_url, tmp_path):
    """F1 for `soulprint-import search`: a database error is one line naming the problem
    and exit status 1, not a Python traceback."""
    env = cli_env(db_url, tmp_path, SEARCH_DATABASE_URL=searcher_url(db_url))
    a = create_user(db_url)
    completed_import(db_url, a, [("a1", "alpha pottery wheel", unit_vector(DIM, 1))])
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(REVOKE)
    out = cli("search", "pottery", "--user", str(a), "--mode", "lexical", env=env)
    assert out.returncode == 1, (out.stdout, out.stderr)
    assert "Traceback" not in out.stderr and "database" in out.stderr.lower()


def test_the_query_text_is_cut_inside_the_database(db_url: str) -> None:
    """F2: /v1/search cuts a question to 2,000 characters, but match_memories is also
    called straight through PostgREST, and memory_search_query / cjk_bigrams cost grew
    faster than the text (16,000 CJK characters: 4.2 s of database time per call, with no
    rate limit). Both functions now read only the first 2,000 characters: words after
    that do not search, and a 100,000-character CJK question answers well inside a
    statement timeout far below what it cost before."""
    user = create_user(db_url)
    completed_import(
        db_url, user, [("c1", "User: extraordinarily rhododendron", unit_vector(DIM, 1))]
    )
    padded = "the " * 600 + "extraordinarily rhododendron"  # the words from char 2,400
    cjk = "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(100_000))
    with user_session(db_url, user) as conn:
        conn.execute("set local statement_timeout = '5s'")
        assert conn.execute(MATCH, (None, "extraordinarily rhododendron", 5)).fetchall()
        assert conn.execute(MATCH, (None, padded, 5)).fetchall() == []
        same = conn.execute(
            "select public.memory_search_query(%s) is not distinct from"
            " public.memory_search_query(left(%s, 2000)) as same",
            (cjk, cjk),
        ).fetchone()
        assert same["same"]
        assert conn.execute(MATCH, (None, cjk, 5)).fetchall() == []


def _bigrams(text: str) -> set[str]:
    """Python reference of cjk_bigrams: overlapping pairs of each CJK run (a run of one
    character kept whole)."""
    import re

    pieces: set[str] = set()
    cjk = "[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]+"
    for run in re.findall(cjk, text):
        pieces |= {run} if len(run) == 1 else {run[i : i + 2] for i in range(len(run) - 1)}
    return pieces


@pytest.mark.parametrize(
    "text",
    [
        "",
        "no cjk here",
        "小",
        "我女儿叫小雨，她九月开始上学。",
        "mix 小动物 and ひらがな and 한국어 a 字 b",
        "".join(chr(0x4E00 + (i * 7919) % 20000) for i in range(3000)),
    ],
)
def test_cjk_bigrams_are_unchanged(db_url: str, text: str) -> None:
    """F2: cjk_bigrams was rewritten to run in linear time (measured here, best of two,
    one CJK run: 4,000 / 8,000 / 16,000 characters took 198 / 973 / 3,587 ms before and
    12 / 15 / 28 ms after); it feeds the stored lexemes column, so it must give exactly the
    pieces it gave before (stored rows are not recomputed)."""
    with psycopg.connect(db_url) as conn:
        got = conn.execute(
            "select pg_catalog.tsvector_to_array(public.cjk_bigrams(%s))", (text,)
        ).fetchone()[0]
    assert set(got) == _bigrams(text)


def test_the_same_message_in_two_conversations_takes_one_slot(db_url: str) -> None:
    """F3: a request pasted again into a new chat gets a different answer, so the chunks
    differ (person chunks carry the start of the answer) and both took a slot of five.
    What the person said is one memory: it comes back once, the better-ranked copy."""
    user = create_user(db_url)
    completed_import(
        db_url,
        user,
        [
            ("c1", ASKED + "\n\nAssistant: Dear landlord, the radiator", unit_vector(DIM, 1, 2)),
            ("c2", ASKED + "\n\nAssistant: Here is a short email.", unit_vector(DIM, 1, 3)),
            ("c3", "User: What is the capital of Peru?", unit_vector(DIM, 4)),
            ("c4", "User: Pistachio ice cream recipe please", unit_vector(DIM, 5)),
        ],
    )
    with user_session(db_url, user) as conn:
        rows = conn.execute(MATCH, (vec_literal(unit_vector(DIM, 1)), "Pistachio", 5)).fetchall()
    convs = [r["conversation_id"] for r in rows]
    assert sorted(convs) == ["c1", "c3", "c4"] or sorted(convs) == ["c2", "c3", "c4"], convs
    assert convs[0] in ("c1", "c2")


def test_a_folded_result_is_explained_by_its_parts(db_url: str) -> None:
    """F4: a message shown for the sentence it holds carried the sentence's score but its
    own ranks, so score != 1/(60 + vector_rank) + 1/(60 + lexical_rank). Every result's
    parts now add up to its score: a folded one carries the parts that earned it."""
    message = (
        "User: Could you proofread my note to the parents? I teach geography at a "
        "secondary school in Leeds.\n\nAssistant: Of course. Here is a corrected version."
    )
    sentence = "User: I teach geography at a secondary school in Leeds."
    user = create_user(db_url)
    completed_import(
        db_url,
        user,
        [
            ("c1", message, unit_vector(DIM, 2, 3, 4)),
            ("c1", sentence, unit_vector(DIM, 1)),
            *[(f"n{i}", f"User: noise {i}", unit_vector(DIM, 1, 10 + i)) for i in range(6)],
        ],
    )
    with user_session(db_url, user) as conn:
        rows = conn.execute(
            MATCH, (vec_literal(unit_vector(DIM, 1)), "geography Leeds", 5)
        ).fetchall()
    assert rows[0]["content"] == message
    for r in rows:
        parts = sum(1.0 / (60 + rank) for rank in (r["vector_rank"], r["lexical_rank"]) if rank)
        assert r["score"] == pytest.approx(parts), r
    assert rows[0]["vector_rank"] == 1 and rows[0]["similarity"] == pytest.approx(1.0, abs=1e-5)


def test_match_count_at_the_int_maximum_gets_the_range_message(db_url: str) -> None:
    """F5: match_count 2147483647 overflowed while sizing the candidate pool, before the
    range check, and PostgREST passed on a bare 'integer out of range'."""
    user = create_user(db_url)
    completed_import(db_url, user, [("c1", "User: cat", unit_vector(DIM, 1))])
    refused = pytest.raises(psycopg.errors.InvalidParameterValue, match="between 1 and 100")
    with user_session(db_url, user) as conn, refused:
        conn.execute(MATCH, (None, "cat", 2147483647))


def test_search_module_refuses_a_nul_with_a_sentence(db_url: str) -> None:
    """F1 for every caller of pipeline.search (CLI, bench): a NUL in the query is a
    BadQuery naming the character, not psycopg's DataError from deep inside."""
    from pipeline.search import BadQuery, match_memories

    user = create_user(db_url)
    completed_import(db_url, user, [("c1", "User: cat", unit_vector(DIM, 1))])
    with psycopg.connect(searcher_url(db_url)) as conn, pytest.raises(BadQuery, match="NUL"):
        match_memories(conn, user, "cat\x00dog", None, mode="lexical")
