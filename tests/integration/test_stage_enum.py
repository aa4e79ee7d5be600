"""Python's stage list (pipeline.stage) is SQL's: the enum, the active set and the path
import_next_stage walks. One owner per rule (issue 10): SQL decides, Python mirrors, and this
test fails the moment either side changes alone."""

from __future__ import annotations

import psycopg

from pipeline.stage import ACTIVE, PATH, TERMINAL, WORKED, Stage
from pipeline.stages import HANDLERS


def test_stage_enum_is_the_sql_enum_in_order(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        values = conn.execute(
            "select unnest(enum_range(null::public.import_stage))::text"
        ).fetchall()
    assert [v for (v,) in values] == [s.value for s in Stage]


def test_active_and_terminal_sets_are_sqls(db_url: str) -> None:
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "select s::text, public.import_stage_is_active(s)"
            " from unnest(enum_range(null::public.import_stage)) s"
        ).fetchall()
    assert {Stage(s) for s, active in rows if active} == ACTIVE
    assert {Stage(s) for s, active in rows if not active} == TERMINAL


def test_path_is_what_import_next_stage_walks(db_url: str) -> None:
    walked = [Stage.QUEUED]
    with psycopg.connect(db_url) as conn:
        while not walked[-1].terminal:
            (nxt,) = conn.execute(
                "select public.import_next_stage(%s::public.import_stage)::text", (walked[-1],)
            ).fetchone()
            walked.append(Stage(nxt))
    assert tuple(walked) == PATH


def test_every_worked_stage_has_a_handler_and_nothing_else_does() -> None:
    assert set(HANDLERS) == set(WORKED)


def test_every_literal_active_list_in_sql_is_the_active_set(db_url: str) -> None:
    """Review of issue 10, F7: the partial unique index that keeps one active import per
    person (pitfall 7) and the upload trigger's ON CONFLICT that must name the same predicate
    spell the active stages out (an index predicate and its ON CONFLICT inference must match
    textually). They stay, so this holds each of them equal to import_stage_is_active."""
    import re

    with psycopg.connect(db_url) as conn:
        sources = [
            r
            for (r,) in conn.execute(
                "select indexdef from pg_indexes where schemaname = 'public'"
                " and tablename = 'import_jobs' and indexdef ilike '%%stage = any (array[%%'"
            ).fetchall()
        ]
        sources.append(
            conn.execute(
                "select pg_get_functiondef('public._import_job_from_upload()'::regprocedure)"
            ).fetchone()[0]
        )
    assert len(sources) >= 3  # the two partial indexes and the trigger
    for source in sources:
        lists = re.findall(r"stage\s*(?:=\s*any\s*\(array\[|in\s*\()([^)\]]*)", source, re.I)
        assert lists, source
        for found in lists:
            named = {Stage(v) for v in re.findall(r"'(\w+)'", found)}
            assert named == ACTIVE, source
