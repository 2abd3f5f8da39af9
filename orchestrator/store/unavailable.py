"""Which database errors mean "unavailable, try again", decided once for every engine.

Unavailable: any connection, I/O or timeout failure (``OSError``), an
exhausted pool, an ``OperationalError`` (the DBAPI's class for "the database
cannot do this now", SQLite's "database is locked" among them; SQLite files
some bugs there too, e.g. "no such column", and they stay 503s), a dropped
connection, a statement unanswered within the command timeout (its
connection is then discarded: the answer may still be on its way), and a
PostgreSQL SQLSTATE of class 08 (connection exception), 40
(transaction rollback: a serialization failure or a deadlock, which the same
work retried resolves), 53 (insufficient resources), 57014 (a statement
cancelled by ``statement_timeout``: a database too slow to answer counts as one
not answering) or 57P (operator intervention, e.g. 57P03 "the database system
is starting up" during crash recovery). Anything else is a
bug or a constraint and goes on as SQLAlchemy raised it: the store's own
``except IntegrityError`` around idempotent inserts keeps working.

Two hooks apply the decision: ``handle_error`` sees every error raised while a
connection is opened or used, and :class:`UnavailableOnConnect` the two that
SQLAlchemy raises before a DBAPI connection exists (the driver's ``OSError``
and the pool timeout).
"""

from __future__ import annotations

import logging

from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.pool import AsyncAdaptedQueuePool, PoolProxiedConnection

from orchestrator.store.errors import StoreUnavailable

_UNAVAILABLE_SQLSTATES = ("08", "40", "53", "57014", "57P")


def _unavailable_sqlstate(exc: DBAPIError) -> bool:
    for error in (exc.orig, getattr(exc.orig, "__cause__", None)):
        state = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if isinstance(state, str) and state.startswith(_UNAVAILABLE_SQLSTATES):
            return True
    return False


def is_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` means the database cannot serve now, rather than a bug."""
    if isinstance(exc, OSError | PoolTimeout | OperationalError):
        return True
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or _unavailable_sqlstate(exc)
    return False


def raise_unavailable(context: ExceptionContext) -> StoreUnavailable | None:
    """``handle_error`` listener: the :class:`StoreUnavailable` to raise instead, if any."""
    original = context.original_exception
    # A cancelled task (a request deadline, a shutdown) is not an outage:
    # SQLAlchemy counts it as a disconnect, but it must go on as a cancellation.
    if not isinstance(original, Exception):
        return None
    if isinstance(original, TimeoutError):
        # A statement unanswered within the command timeout: the session is in
        # an unknown state (the answer may still come), so it is never reused.
        context.is_disconnect = True
        return StoreUnavailable("the database did not answer within the command timeout")
    error = context.sqlalchemy_exception or original
    return StoreUnavailable(str(error)) if is_unavailable(error) else None


class UnavailableOnConnect(AsyncAdaptedQueuePool):
    """The async queue pool, raising :class:`StoreUnavailable` when no connection can be had."""

    def connect(self) -> PoolProxiedConnection:
        """A pooled connection; :class:`StoreUnavailable` if the database cannot be reached."""
        try:
            return super().connect()
        except Exception as exc:
            # A DBAPI error passes unchanged: the engine wraps it and
            # ``handle_error`` decides on it with the statement's errors.
            if isinstance(exc, TimeoutError):
                message = "the database did not answer within the connect timeout"
                raise StoreUnavailable(message) from exc
            if is_unavailable(exc):
                raise StoreUnavailable(str(exc)) from exc
            raise


# SQLAlchemy names a pool's logger after its class, which puts this one under the
# "orchestrator" logger: keep the pool's routine INFO lines (disposed, recreating) out.
logging.getLogger(f"{__name__}.{UnavailableOnConnect.__name__}").setLevel(logging.WARNING)
