"""Settings: the PARTICIPANT_ prefix, URL normalisation, the embedded default."""

from __future__ import annotations

from pathlib import Path

import pytest

from participants.kit import ParticipantSettings
from participants.kit.settings import normalise_database_url, resolve_database_url, sqlite_file


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql://u@h:5432/db", "postgresql+asyncpg://u@h:5432/db"),
        ("postgres://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+psycopg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("postgresql+asyncpg://u@h/db", "postgresql+asyncpg://u@h/db"),
        ("sqlite:///./x.db", "sqlite+aiosqlite:///./x.db"),
        ("sqlite:////abs/x.db", "sqlite+aiosqlite:////abs/x.db"),
        ("sqlite+aiosqlite:///x.db", "sqlite+aiosqlite:///x.db"),
    ],
)
def test_urls_are_normalised_to_the_async_drivers(given: str, expected: str) -> None:
    assert normalise_database_url(given) == expected


def test_other_databases_are_refused() -> None:
    with pytest.raises(ValueError, match="unsupported"):
        normalise_database_url("mysql://u@h/db")


def test_the_default_is_a_sqlite_file_in_dot_saga(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PARTICIPANT_DATABASE_URL", raising=False)

    url = resolve_database_url("payments", ParticipantSettings())

    assert url == "sqlite+aiosqlite:///./.saga/payments.db"
    assert (tmp_path / ".saga").is_dir()
    assert sqlite_file(url) == Path(".saga/payments.db")


def test_settings_come_from_participant_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARTICIPANT_DATABASE_URL", "postgresql://u@h/db")
    monkeypatch.setenv("PARTICIPANT_ENABLE_FAULTS", "true")

    settings = ParticipantSettings()

    assert settings.enable_faults is True
    assert resolve_database_url("orders", settings) == "postgresql+asyncpg://u@h/db"
