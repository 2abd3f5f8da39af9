"""A throwaway PostgreSQL cluster a test can stop and start at will.

The shared test server cannot be stopped under other tests' feet, so outage
tests run their own: the harness's private cluster
(:class:`~orchestrator.harness.postgres.PgCluster`) with no durability work,
since its data is thrown away.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from orchestrator.harness.postgres import (
    NOT_DURABLE,
    ClusterError,
    PgCluster,
    find_binary,
    private_cluster,
)

Cluster = PgCluster


def postgres_bin() -> Path | None:
    """The directory of the PostgreSQL server binaries (``initdb``), if installed."""
    try:
        return Path(find_binary("initdb")).parent
    except ClusterError:
        return None


@contextmanager
def throwaway_cluster() -> Iterator[PgCluster]:
    """A started cluster with database ``postgres``; stopped and deleted on exit."""
    with private_cluster(max_connections=200, settings=NOT_DURABLE) as cluster:
        yield cluster
