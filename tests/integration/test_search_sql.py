"""public.match_memories on the real database: RLS, the model check, fusion, languages,
and the index plans at 100k chunks."""

from __future__ import annotations

import time
import uuid

import psycopg
import pytest
from psycopg.rows import dict_row

from tests.dbutil import create_user, jobs_for, upload_object, user_session, walk_to
from tests.search_helpers import MODEL, completed_import, unit_vector, vec_literal

DIM = 384

MATCH = """
select * from public.match_memories(%s::extensions.vector, %s, %s, %s)
"""


def _search(
    conn: psycopg.Connection,
    vec: list[float] | None,
    text: str | None,
    k: int = 10,
    model: str | None = None,
) -> list[dict]:
    return conn.execute(MATCH, (vec_literal(vec) if vec else None, text, k, model)).fetchall()


def test_person_searches_only_their_own_current_import(db_url: str) -> None:
    """RLS: a person gets their current import's chunks, never another person's, never an
    import still in progress; anon may not call the function (pitfall: memory leaking
    across users through a search path that bypasses row-level security)."""
    alice, bob = create_user(db_url), create_user(db_url)
    completed_import(db_url, alice, [("a1", "Alice's beagle Biscuit", unit_vector(DIM, 1))])
    completed_import(db_url, bob, [("b1", "Bob's beagle Rex", unit_vector(DIM, 1))])
    # Alice starts a new import: its chunks exist but must stay invisible until it completes.
    upload_object(db_url, alice, name="second.zip")
    new_job = jobs_for(db_url, alice)[-1]["id"]
    walk_to(db_url, new_job, "embedding")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            "insert into public.memory_chunks (id, job_id, user_id, conversation_id,"
            " chunk_index, content, embedding, embedding_model, embedding_dim)"
            " values (%s, %s, %s, 'a2', 0, 'half-done beagle', %s::extensions.vector, %s, %s)",
            (uuid.uuid4(), new_job, alice, vec_literal(unit_vector(DIM, 1)), MODEL, DIM),
        )

    with user_session(db_url, alice) as conn:
        rows = _search(conn, unit_vector(DIM, 1), "beagle")
        assert [r["conversation_id"] for r in rows] == ["a1"]
    with user_session(db_url, bob) as conn:
        rows = _search(conn, unit_vector(DIM, 1), "beagle")
        assert [r["conversation_id"] for r in rows] == ["b1"]
    with user_session(db_url, None) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        _search(conn, unit_vector(DIM, 1), "beagle")


def test_no_completed_import_is_a_clear_error(db_url: str) -> None:
    """A person who has not finished an import gets a sentence, not an empty list that
    looks like 'nothing matched'."""
    carol = create_user(db_url)
    with (
        user_session(db_url, carol) as conn,
        pytest.raises(psycopg.errors.NoDataFound, match="no completed import"),
    ):
        _search(conn, unit_vector(DIM, 1), "anything")


def test_query_from_another_model_is_refused(db_url: str) -> None:
    """A query vector of another dimension or another model cannot be compared with the
    import's vectors: a clear error names both, instead of nonsense results."""
    dave = create_user(db_url)
    completed_import(db_url, dave, [("d1", "text", unit_vector(DIM, 1))])
    wrong_dim = pytest.raises(
        psycopg.errors.InvalidParameterValue, match="1536 dimensions but this import's model"
    )
    with user_session(db_url, dave) as conn, wrong_dim:
        _search(conn, unit_vector(1536, 1), "text")
    wrong_model = pytest.raises(
        psycopg.errors.InvalidParameterValue, match="embedded with text-embedding-3-small"
    )
    with user_session(db_url, dave) as conn, wrong_model:
        _search(conn, unit_vector(DIM, 1), "text", model="text-embedding-3-small")
    with user_session(db_url, dave) as conn:
        assert len(_search(conn, unit_vector(DIM, 1), "text", model=MODEL)) == 1


def test_fusion_ranks_agreement_first_and_reports_its_parts(db_url: str) -> None:
    """Reciprocal rank fusion (k = 60): a chunk both lists put near the top beats one that
    only one list likes; each row says which lists ranked it and how."""
    erin = create_user(db_url)
    completed_import(
        db_url,
        erin,
        [
            ("near-only", "we talked about the weather", unit_vector(DIM, 1)),
            ("both", "saxophone lessons: my saxophone teacher", unit_vector(DIM, 1, 2)),
            ("words-only", "a saxophone shop downtown", unit_vector(DIM, 9)),
        ],
    )
    with user_session(db_url, erin) as conn:
        rows = _search(conn, unit_vector(DIM, 1), "saxophone lessons")
    assert rows[0]["conversation_id"] == "both"
    top = rows[0]
    assert (top["vector_rank"], top["lexical_rank"]) == (2, 1)
    assert top["score"] == pytest.approx(1 / (60 + 2) + 1 / (60 + 1))
    near = next(r for r in rows if r["conversation_id"] == "near-only")
    assert near["lexical_rank"] is None and near["similarity"] == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize(
    ("query", "wanted"),
    [
        ("我家狗叫什么名字", "zh-dog"),
        ("¿Cuándo es la boda de mi hermana?", "es-wedding"),
    ],
)
def test_lexical_side_finds_chinese_and_spanish(db_url: str, query: str, wanted: str) -> None:
    """Exports are often not English: a Chinese question finds the Chinese chunk (text
    without spaces, matched by character bigrams) and a Spanish one the Spanish chunk,
    by words alone (no vector), among English and other-language chunks."""
    fay = create_user(db_url)
    completed_import(
        db_url,
        fay,
        [
            ("zh-dog", "我家的狗叫豆豆，它昨天把拖鞋咬坏了。", unit_vector(DIM, 3)),
            ("zh-other", "今天天气很好，我们去公园散步。", unit_vector(DIM, 4)),
            (
                "es-wedding",
                "La boda de mi hermana Lucía será en junio en Sevilla.",
                unit_vector(DIM, 5),
            ),
            (
                "es-other",
                "Mi código de Python falla con un KeyError en la función.",
                unit_vector(DIM, 6),
            ),
            ("en", "My sister's wedding and my dog's name are on my mind.", unit_vector(DIM, 7)),
        ],
    )
    with user_session(db_url, fay) as conn:
        rows = _search(conn, None, query)
    assert rows and rows[0]["conversation_id"] == wanted


def test_small_import_is_found_when_others_crowd_the_index(db_url: str) -> None:
    """HNSW returns a fixed number of nearest rows BEFORE row-level security drops other
    people's: when 2,000 of someone else's chunks sit closer to the question, a small
    import must still get all of its own chunks back (an exact scan of its own vectors,
    chosen by the planner or by the function's fallback) instead of an empty answer."""
    hal, ivy = create_user(db_url), create_user(db_url)
    completed_import(
        db_url, hal, [(f"h{i}", f"hal note {i}", unit_vector(DIM, 2, 10 + i)) for i in range(3)]
    )
    job = completed_import(db_url, ivy, [("seed", "seed", unit_vector(DIM, 1))])
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute(
            """
            insert into public.memory_chunks (id, job_id, user_id, conversation_id,
                   chunk_index, content, embedding, embedding_model, embedding_dim)
            select gen_random_uuid(), %s, %s, 'i' || s, 0, 'ivy ' || s,
                   (select array_agg(case when d = 1 then 1.0 else random() * 0.01 end)
                      from generate_series(1, 384) d where s > 0)::extensions.vector,
                   %s, 384
              from generate_series(1, 2000) s
            """,
            (job, ivy, MODEL),
        )
        conn.execute("analyze public.memory_chunks")
    with user_session(db_url, hal) as conn:
        rows = _search(conn, unit_vector(DIM, 1), None)
    assert sorted(r["conversation_id"] for r in rows) == ["h0", "h1", "h2"]


def _fill_100k(conn: psycopg.Connection, job: uuid.UUID, user: uuid.UUID, n: int) -> None:
    """n chunks generated in SQL: each vector is the sum of two of 1,000 random base vectors
    and each text joins two of 1,000 random sentences (distinct pairs, cheap to make). Both
    indexes are dropped for the load and rebuilt from their own definitions (a bulk build
    is far faster than n inserts into them)."""
    defs = [
        conn.execute("select pg_get_indexdef(%s::regclass)", (name,)).fetchone()[0]
        for name in ("public.memory_chunks_embedding_384", "public.memory_chunks_lexemes")
    ]
    conn.execute("drop index public.memory_chunks_embedding_384, public.memory_chunks_lexemes")
    conn.execute(
        "create temp table words as"
        " select array_agg(substr(md5(g::text), 1, 4 + g % 5)) as w"
        " from generate_series(1, 3000) g"
    )
    conn.execute(
        """
        create temp table base as
        select i,
               (select array_agg(random() - 0.5)::extensions.vector
                  from generate_series(1, 384) where i >= 0) as v,
               (select string_agg(w[1 + (random() * 2999)::int], ' ')
                  from words, generate_series(1, 12) where i >= 0) as t
          from generate_series(0, 999) i
        """
    )
    conn.execute(
        """
        insert into public.memory_chunks (id, job_id, user_id, conversation_id, chunk_index,
                                          content, embedding, embedding_model, embedding_dim)
        select gen_random_uuid(), %(job)s, %(user)s, 'c' || (s / 4), s %% 4,
               a.t || ' ' || b.t, a.v operator(extensions.+) b.v, %(model)s, 384
          from generate_series(0, %(n)s - 1) s
          join base a on a.i = s %% 1000
          join base b on b.i = (s / 1000 + 7 * (s %% 13)) %% 1000
        """,
        {"job": job, "user": user, "model": MODEL, "n": n},
    )
    # A rare word in a handful of chunks: what a name or an identifier in a question is.
    conn.execute(
        "update public.memory_chunks set content = content || ' zanzibarite'"
        " where job_id = %s and chunk_index = 0 and conversation_id like 'c1%%7'",
        (job,),
    )
    conn.execute("set maintenance_work_mem = '256MB'")
    for definition in defs:
        conn.execute(definition)
    conn.execute(
        "update public.import_jobs set embedded_chunks = chunks + %s,"
        " chunks = chunks + %s where id = %s",
        (n, n, job),
    )
    conn.execute("analyze public.memory_chunks")


def test_plans_use_hnsw_and_gin_at_100k_chunks(db_url: str) -> None:
    """At 100k chunks the two candidate queries of match_memories run through the HNSW and
    GIN indexes (EXPLAIN of the statements it runs), and the whole search, as the person
    with RLS on, answers in well under a second (an exact scan of 100k vectors would not).
    About 90 s here, most of it building the HNSW index over 100k vectors."""
    gus = create_user(db_url)
    job = completed_import(db_url, gus, [("seed", "seed chunk", unit_vector(DIM, 1))])
    with psycopg.connect(db_url, autocommit=True) as conn:
        _fill_100k(conn, job, gus, 100_000)
        word = "zanzibarite"
    probe = vec_literal(unit_vector(DIM, 5, 6, 7))
    with user_session(db_url, gus) as conn:
        conn.row_factory = dict_row
        conn.execute("set local hnsw.ef_search = 40")
        # The same statements match_memories runs (its dynamic vector query, its lexical one).
        vplan = "\n".join(
            r["QUERY PLAN"]
            for r in conn.execute(
                "explain select m.id from public.memory_chunks m"
                " where m.job_id = %s and m.embedding_dim = 384"
                " order by m.embedding::extensions.vector(384) operator(extensions.<=>)"
                " %s::extensions.vector(384) limit 40",
                (job, probe),
            ).fetchall()
        )
        assert "memory_chunks_embedding_384" in vplan, vplan
        times = []
        for _ in range(5):
            t0 = time.perf_counter()
            rows = _search(conn, unit_vector(DIM, 5, 6, 7), word)
            times.append(time.perf_counter() - t0)
        assert len(rows) == 10
        assert any(r["lexical_rank"] is not None for r in rows)
        assert sorted(times)[2] < 0.5, times
    # The lexical candidates come from a SECURITY DEFINER helper (RLS would forbid the GIN
    # index: @@ is not leakproof); its statement, for this person's claims:
    with psycopg.connect(db_url, row_factory=dict_row) as conn:
        conn.execute(
            "select set_config('request.jwt.claims', %s, true)",
            (f'{{"sub": "{gus}", "role": "authenticated"}}',),
        )
        tsq = conn.execute("select public.memory_search_query(%s)::text as q", (word,)).fetchone()[
            "q"
        ]
        lplan = "\n".join(
            r["QUERY PLAN"]
            for r in conn.execute(
                "explain select m.id, ts_rank(m.lexemes, %s::tsquery) from public.memory_chunks m"
                " where m.job_id = public.current_import_id() and m.user_id = auth.uid()"
                " and m.lexemes @@ %s::tsquery order by 2 desc, m.id limit 40",
                (tsq, tsq),
            ).fetchall()
        )
        assert "memory_chunks_lexemes" in lplan, lplan


def test_minilm_query_of_any_precision_searches_an_older_import(db_url: str) -> None:
    """An import recorded as sentence-transformers/all-MiniLM-L6-v2 (before the ONNX
    switch) is searched with a query embedded as all-MiniLM-L6-v2/onnx-int8 or -float32:
    one model family, one vector space. Another model is still refused (review of 13)."""
    gil = create_user(db_url)
    completed_import(db_url, gil, [("g1", "text", unit_vector(DIM, 1))], model=MODEL)
    for model in ("all-MiniLM-L6-v2/onnx-int8", "all-MiniLM-L6-v2/onnx-float32"):
        with user_session(db_url, gil) as conn:
            assert len(_search(conn, unit_vector(DIM, 1), "text", model=model)) == 1
    with (
        user_session(db_url, gil) as conn,
        pytest.raises(psycopg.errors.InvalidParameterValue, match="embedded with text-embedding"),
    ):
        _search(conn, unit_vector(DIM, 1), "text", model="text-embedding-3-small")


@pytest.mark.parametrize("query", ["谁要结婚", "豆豆"])
def test_short_chinese_question_matches_on_one_shared_bigram(db_url: str, query: str) -> None:
    """A short Chinese question ('谁要结婚', who is getting married?) shares only one
    bigram (结婚) with the memory; two shared lexemes were required, so it found nothing
    by words. CJK-only questions of up to four characters match on one bigram."""
    hal = create_user(db_url)
    completed_import(
        db_url,
        hal,
        [
            ("zh-wedding", "我姐姐下个月结婚，婚礼在杭州。", unit_vector(DIM, 3)),
            ("zh-dog", "我家的狗叫豆豆，它昨天把拖鞋咬坏了。", unit_vector(DIM, 4)),
            ("zh-other", "今天天气很好，我们去公园散步。", unit_vector(DIM, 5)),
        ],
    )
    with user_session(db_url, hal) as conn:
        rows = _search(conn, None, query)
    wanted = "zh-wedding" if "婚" in query else "zh-dog"
    assert [r["conversation_id"] for r in rows] == [wanted]
