"""Wake-ups across processes: PostgreSQL ``LISTEN``/``NOTIFY`` on one channel.

This is the listening half; the ``NOTIFY`` is sent by the writes
(:mod:`orchestrator.store.postgres`). The listener holds a plain driver
connection of its own, outside the engine's pool, for as long as it runs.

A saga that becomes due outside a worker's own process (started through an
API-only replica, retried by an operator, completed by a callback) would
otherwise wait for the next claim poll. Whoever makes it due sends ``NOTIFY
saga_due`` after committing; every listening worker claims at once. The poll
stays as the safety net: a notification lost while a listener reconnects
costs at most one poll interval, never a saga.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from orchestrator.store.postgres import DUE_CHANNEL as CHANNEL

# Logged as the worker's: these lines tell how quickly its claims are woken.
log = logging.getLogger("orchestrator.worker")


def listen_dsn(database_url: str) -> str | None:
    """The plain asyncpg DSN for ``database_url``, or None when it is not PostgreSQL."""
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class DueListener:
    """Holds one connection that ``LISTEN``s and calls ``on_due`` for each notification."""

    def __init__(
        self, dsn: str, on_due: Callable[[], None], retry_s: float = 1.0, ping_s: float = 30.0
    ) -> None:
        self.dsn = dsn
        self.on_due = on_due
        self.retry_s = retry_s
        self.ping_s = ping_s
        self.connected = asyncio.Event()

    async def run(self) -> None:
        """Listen until cancelled, reconnecting after any loss of the connection."""
        while True:
            conn: Any = None
            try:
                conn = await asyncpg.connect(self.dsn, timeout=10)
                lost = asyncio.Event()
                conn.add_termination_listener(_setter(lost))
                await conn.add_listener(CHANNEL, self._notified)
                self.connected.set()
                # Whatever became due while nobody listened is found by this claim.
                self.on_due()
                while not lost.is_set():
                    # A connection to a host that vanished can stay silent for
                    # ever; a ping every so often notices it.
                    try:
                        await asyncio.wait_for(lost.wait(), self.ping_s)
                    except TimeoutError:
                        await conn.fetchval("SELECT 1", timeout=10)
                log.warning("the LISTEN connection was lost; reconnecting")
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("listening for due sagas failed (polling meanwhile): %s", exc)
            finally:
                self.connected.clear()
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(self.retry_s)

    def _notified(self, *_args: object) -> None:
        self.on_due()


def _setter(event: asyncio.Event) -> Callable[[object], None]:
    return lambda _conn: event.set()
