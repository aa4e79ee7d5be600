"""PostgreSQL connections and the retry policy for transient database errors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ParamSpec, TypeVar, overload

import psycopg
from psycopg.rows import dict_row
from tenacity import (
    before_sleep_log,
    retry,
    retry_if_exception,
    stop_after_attempt,
    wait_random_exponential,
)

log = logging.getLogger(__name__)

APPLICATION_NAME = "soulprint-import"

T = TypeVar("T")
P = ParamSpec("P")


def connect(conninfo: str, **kw: Any) -> psycopg.Connection[dict[str, Any]]:
    """Open a connection: autocommit off, rows as dicts, our application_name, no
    server-side prepared statements.

    Keyword arguments go to ``psycopg.connect`` and override these defaults.
    """
    kw.setdefault("row_factory", dict_row)
    kw.setdefault("autocommit", False)
    kw.setdefault("application_name", APPLICATION_NAME)
    kw.setdefault("connect_timeout", 10)
    # Supabase's pooler in transaction mode (what an IPv4-only host like Render reaches)
    # cannot keep server-side prepared statements across transactions.
    kw.setdefault("prepare_threshold", None)
    return psycopg.connect(conninfo, **kw)


# Errors where running the same transaction again can succeed: the server went away or
# restarted, the connection broke (no SQLSTATE: raised by the client), or PostgreSQL ran out
# of a resource or chose us as the victim of a conflict. psycopg maps many SQLSTATE classes to
# OperationalError, including 55000, which the state machine raises on purpose (a refusal is
# an answer, not an outage) and 54 (a limit a retry hits again): so decide by SQLSTATE class.
_TRANSIENT_CLASSES = frozenset({"08", "40", "53", "57"})  # connection, rollback, resources, admin
_TRANSIENT_STATES = frozenset({"55P03"})  # lock_not_available


def is_transient(exc: BaseException) -> bool:
    """True for errors worth retrying the whole call for (see above)."""
    if not isinstance(exc, psycopg.OperationalError):
        return False
    state = exc.sqlstate
    return state is None or state[:2] in _TRANSIENT_CLASSES or state in _TRANSIENT_STATES


@overload
def retry_transient(
    fn: Callable[P, T], *, attempts: int = ..., max_wait: float = ...
) -> Callable[P, T]: ...
@overload
def retry_transient(
    fn: None = None, *, attempts: int = ..., max_wait: float = ...
) -> Callable[[Callable[P, T]], Callable[P, T]]: ...
def retry_transient(
    fn: Callable[P, T] | None = None, *, attempts: int = 6, max_wait: float = 5.0
) -> Any:
    """Decorator: retry a whole database call (one statement or one transaction) on
    transient errors, with jittered exponential backoff; other errors raise at once.
    Use bare (``@retry_transient``) or configured (``@retry_transient(attempts=3)``).

    The wrapped call must open its own connection or transaction each time, so a retry
    starts clean.
    """
    policy = retry(
        retry=retry_if_exception(is_transient),
        stop=stop_after_attempt(attempts),
        wait=wait_random_exponential(multiplier=0.05, max=max_wait),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    )
    return policy if fn is None else policy(fn)
