from __future__ import annotations

import pytest
from pydantic import ValidationError

from orchestrator.settings import Settings


def test_participants_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(
        "SAGA_PARTICIPANTS", '{"pay": ["http://a:1/", "http://b:2"], "inv": "http://c"}'
    )
    monkeypatch.setenv("SAGA_DATABASE_URL", "postgresql://u@h:5432/db")
    settings = Settings()
    assert settings.participants == {"pay": ["http://a:1", "http://b:2"], "inv": ["http://c"]}
    assert settings.database_url == "postgresql+asyncpg://u@h:5432/db"


def test_participant_urls_must_be_http(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SAGA_PARTICIPANTS", '{"pay": "file:///etc/passwd"}')
    with pytest.raises(ValidationError):
        Settings()
