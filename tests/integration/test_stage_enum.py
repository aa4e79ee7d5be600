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
