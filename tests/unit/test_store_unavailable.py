"""What the store calls "unavailable": the database cannot do it now, the same work later may."""

from __future__ import annotations

import pytest
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError, ProgrammingError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from orchestrator.store.unavailable import is_unavailable


class _DriverError(Exception):
    def __init__(self, sqlstate: str | None) -> None:
        super().__init__(f"sqlstate {sqlstate}")
        self.sqlstate = sqlstate


def _dbapi(sqlstate: str | None, *, invalidated: bool = False) -> DBAPIError:
    return DBAPIError("SELECT 1", None, _DriverError(sqlstate), connection_invalidated=invalidated)


@pytest.mark.parametrize(
    "sqlstate", ["08006", "08001", "40001", "40P01", "53300", "57014", "57P01", "57P03"]
)
def test_sqlstates_that_a_retry_can_outlast_are_unavailable(
    sqlstate: str,
) -> None:
    assert is_unavailable(_dbapi(sqlstate))


@pytest.mark.parametrize("sqlstate", ["22012", "42P01", "23505", "3D000", "28P01", None])
def test_other_sqlstates_are_not(sqlstate: str | None) -> None:
    assert not is_unavailable(_dbapi(sqlstate))


def test_the_sqlstate_may_sit_on_the_driver_errors_cause() -> None:
    adapted = Exception("adapted")
    adapted.__cause__ = _DriverError("57P03")
    assert is_unavailable(DBAPIError("SELECT 1", None, adapted))


def test_a_dropped_connection_is_unavailable() -> None:
    assert is_unavailable(_dbapi("22012", invalidated=True))


@pytest.mark.parametrize(
    "error",
    [
        OSError("refused"),
        ConnectionRefusedError(),
        TimeoutError(),
        PoolTimeout("pool exhausted"),
        OperationalError("SELECT 1", None, _DriverError(None)),
    ],
)
def test_io_timeouts_and_operational_errors_are_unavailable(error: Exception) -> None:
    assert is_unavailable(error)


@pytest.mark.parametrize(
    "error",
    [
        IntegrityError("INSERT", None, _DriverError("23505")),
        ProgrammingError("SELECT", None, _DriverError("42601")),
        ValueError("a bug"),
    ],
)
def test_constraints_and_bugs_are_not(error: Exception) -> None:
    assert not is_unavailable(error)
