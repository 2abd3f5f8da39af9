"""The errors the store raises for its callers.

Callers outside ``orchestrator.store`` catch :class:`StoreUnavailable` and
never name SQLAlchemy's or the driver's exceptions: which errors mean "the
database is down, try again" is the store's knowledge, decided in one place
(:mod:`orchestrator.store.engine`).
"""

from __future__ import annotations


class StoreUnavailable(Exception):
    """The database did not answer (down, restarting, or the pool is exhausted).

    The operation may or may not have happened: a write whose commit raised
    this must be checked by reading again, never assumed lost.
    """


class NotNewest(Exception):
    """A saga was to start on its definition's newest version, and a newer one exists."""
