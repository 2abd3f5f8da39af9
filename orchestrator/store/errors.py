"""The one error the store raises when the database cannot be reached.

Callers outside ``orchestrator.store`` catch :class:`StoreUnavailable` and
never name SQLAlchemy's or the driver's exceptions: which errors mean "the
database is down, try again" is the store's knowledge, decided in one place.
"""

from __future__ import annotations


class StoreUnavailable(Exception):
    """The database did not answer (down, restarting, or the pool is exhausted).

    The operation may or may not have happened: a write whose commit raised
    this must be checked by reading again, never assumed lost.
    """
