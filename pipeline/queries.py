"""Every query the Python side runs, read once from ``pipeline/sql/queries.sql``.

``QUERIES["claim_job"]`` is the SQL text of the block that starts ``-- name: claim_job``
(format: that file's header). The file ships in the wheel beside this module. Parsing
happens at import, so a malformed file or a duplicated name fails every entry point at
once; an unknown name raises KeyError, and tests/integration/test_queries.py checks every
name the code asks for (and that every query in the file is used) before that can happen.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib.resources import files
from types import MappingProxyType

# `-- name: <query_name>` on a line of its own starts a block.
_NAME_LINE = re.compile(r"^-- name: ([a-z][a-z0-9_]*)[ \t]*$", re.MULTILINE)


class QueryFileError(ValueError):
    """queries.sql is malformed: a block without SQL, or a name used twice."""


def _strip_comments(block: str) -> str:
    """The block's SQL without its comment lines (the next block's description is the
    tail of this one) and without the trailing ``;``."""
    lines = [line for line in block.splitlines() if not line.lstrip().startswith("--")]
    return "\n".join(lines).strip().removesuffix(";").rstrip()


def parse_queries(text: str) -> dict[str, str]:
    """``{name: sql}`` of a queries file. Raises QueryFileError on an empty block or a name
    defined twice."""
    parts = _NAME_LINE.split(text)
    queries: dict[str, str] = {}
    # parts: [header, name1, body1, name2, body2, ...]
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        sql = _strip_comments(body)
        if not sql:
            raise QueryFileError(f"queries.sql: query {name!r} has no SQL")
        if name in queries:
            raise QueryFileError(f"queries.sql: query {name!r} is defined twice")
        queries[name] = sql
    return queries


def _load() -> Mapping[str, str]:
    text = files("pipeline").joinpath("sql", "queries.sql").read_text(encoding="utf-8")
    return MappingProxyType(parse_queries(text))


# Read-only: a query is changed in the file, never at run time.
QUERIES: Mapping[str, str] = _load()
