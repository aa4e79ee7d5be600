"""What is worth another attempt (seed pitfall 9: an outage must not lose the import) and
what is an answer: the state machine's deliberate refusals (SQLSTATE 55000) and limits are
never retried as if the database were down (review of issue 10: `retry` of a superseded
import printed five "Retrying" warnings before its sentence)."""

from __future__ import annotations

import httpx
import psycopg
import pytest
from psycopg import errors

from pipeline.db import is_transient, retry_transient
from pipeline.errors import TransientError
from pipeline.stages.context import worth_retrying


@pytest.mark.parametrize(
    "exc",
    [
        psycopg.OperationalError("connection refused"),  # raised by the client: no SQLSTATE
        errors.SerializationFailure(),
        errors.DeadlockDetected(),
        errors.LockNotAvailable(),
        errors.AdminShutdown(),
        errors.CannotConnectNow(),
        errors.TooManyConnections(),
        errors.ConnectionFailure(),
    ],
)
def test_outages_and_conflicts_are_transient(exc: BaseException) -> None:
    assert is_transient(exc) and worth_retrying(exc)


@pytest.mark.parametrize(
    "exc",
    [
        errors.ObjectNotInPrerequisiteState(),  # the state machine's refusal
        errors.ProgramLimitExceeded(),
        errors.InsufficientPrivilege(),
        errors.UniqueViolation(),
        ValueError("a bug"),
    ],
)
def test_refusals_limits_and_bugs_are_not(exc: BaseException) -> None:
    assert not is_transient(exc) and not worth_retrying(exc)


def test_stage_level_transients_include_the_network_and_dependencies() -> None:
    assert worth_retrying(httpx.ConnectError("down"))
    assert worth_retrying(TransientError("Storage answered 503"))
    assert not is_transient(TransientError("Storage answered 503"))  # not a database error


def test_a_refusal_is_raised_at_once_not_retried() -> None:
    calls = 0

    @retry_transient(max_wait=0.01)
    def refuse() -> None:
        nonlocal calls
        calls += 1
        raise errors.ObjectNotInPrerequisiteState()

    with pytest.raises(errors.ObjectNotInPrerequisiteState):
        refuse()
    assert calls == 1
