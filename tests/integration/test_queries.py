"""Every query the Python side runs lives in pipeline/sql/queries.sql (issue 10, "SQL from
Python"): the names the code asks for and the names the file defines are the same set."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import psycopg
import pytest

from pipeline.queries import QUERIES, QueryFileError, parse_queries

ROOT = Path(__file__).resolve().parents[2]
CODE = sorted([*ROOT.joinpath("pipeline").rglob("*.py"), *ROOT.joinpath("handlers").rglob("*.py")])
NOT_YET_MOVED: set[str] = set()
assert len(CODE) > 50, "the scan must see the packages"
# A string literal that reads like a statement somebody runs.
_LOOKS_LIKE_SQL = re.compile(
    r"^\s*(select|insert into|update \w+(\.\w+)? set|delete from|with \w+ as \(|listen \w|"
    r"create (table|schema)|alter table \w+(\.\w+)? add)\b",
    re.IGNORECASE,
)


def _names_asked_for() -> dict[str, list[str]]:
    """{query name: [file:line, ...]} of every ``QUERIES["name"]`` in the code."""
    asked: dict[str, list[str]] = {}
    for path in CODE:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Subscript)
                and isinstance(node.value, ast.Name)
                and node.value.id == "QUERIES"
            ):
                assert isinstance(node.slice, ast.Constant), f"{path}:{node.lineno}: a literal name"
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                asked.setdefault(node.slice.value, []).append(where)
    return asked


def test_every_name_the_code_asks_for_exists() -> None:
    """A misspelt or removed query name fails here, not in production at the first call."""
    missing = {n: w for n, w in _names_asked_for().items() if n not in QUERIES}
    assert not missing


def test_every_query_in_the_file_is_used() -> None:
    """No dead query: a query the code stopped using is removed with it."""
    unused = set(QUERIES) - set(_names_asked_for())
    assert not unused


def _sql_literals(tree: ast.Module) -> list[ast.Constant]:
    """String literals run as SQL: the first argument of a call that runs a statement, or
    a module-level constant that reads like one (operator messages quoting SQL are not)."""
    runners = {"execute", "executemany", "one", "row", "_one", "_all", "_scalar", "_rows"}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            first = node.args[0]
            if name in runners and isinstance(first, (ast.Constant, ast.JoinedStr)):
                found.append(first)
    for stmt in tree.body:
        value = stmt.value if isinstance(stmt, ast.Assign) else None
        if (
            isinstance(value, ast.Constant)
            and isinstance(value.value, str)
            and _LOOKS_LIKE_SQL.match(value.value)
        ):
            found.append(value)
    return found


def test_no_sql_literals_left_in_the_code() -> None:
    """SQL is not written inline again beside the file (except where the header says)."""
    found = []
    for path in CODE:
        rel = str(path.relative_to(ROOT))
        if rel in NOT_YET_MOVED:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        found += [f"{rel}:{node.lineno}" for node in _sql_literals(tree)]
    assert not found


def test_the_loader_refuses_a_malformed_file() -> None:
    """A name defined twice or a block without SQL fails at import, loudly."""
    good = "-- header\n\n-- what and why\n-- name: a\nselect 1;\n\n-- name: b\nselect 2;\n"
    assert parse_queries(good) == {"a": "select 1", "b": "select 2"}
    with pytest.raises(QueryFileError, match="twice"):
        parse_queries("-- name: a\nselect 1;\n-- name: a\nselect 2;\n")
    with pytest.raises(QueryFileError, match="no SQL"):
        parse_queries("-- name: a\n-- just a comment\n-- name: b\nselect 2;\n")


# Queries PREPARE cannot check: utility statements (LISTEN, SET, DDL), and doctor's reads of
# hosted-only schemas (Vault) that the embedded test database does not have.
_UNPREPARABLE = re.compile(r"^\s*(listen|set |create|alter|reset)\b", re.IGNORECASE)
_HOSTED_ONLY = ("vault.",)


def _numbered(sql: str) -> str:
    """``%s`` placeholders as the server's ``$1, $2, ...``."""
    parts = sql.split("%s")
    return "".join(p + (f"${i}" if i < len(parts) else "") for i, p in enumerate(parts, 1))


def test_every_query_prepares_against_the_migrated_database(db_url: str) -> None:
    """Every query parses and names real tables, columns and functions (a typo in the file
    fails here rather than at the first call)."""
    failures = []
    with psycopg.connect(db_url, autocommit=True) as conn:
        for name, sql in QUERIES.items():
            if _UNPREPARABLE.match(sql) or any(s in sql for s in _HOSTED_ONLY):
                continue
            # psycopg's placeholders as the server's, so PREPARE infers their types.
            text = _numbered(re.sub(r"%\((\w+)\)s", "NULL", sql)).replace("%%", "%")
            try:
                with conn.transaction():
                    conn.execute(f"prepare q_check as {text}")
                    conn.execute("deallocate q_check")
            except psycopg.Error as exc:
                failures.append(f"{name}: {exc.diag.message_primary}")
    assert not failures
