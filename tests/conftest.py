"""Session-wide test set-up: the local PostgreSQL must answer (started if it is down)."""

from __future__ import annotations

from tests.support.databases import ensure_postgres_running

ensure_postgres_running()
