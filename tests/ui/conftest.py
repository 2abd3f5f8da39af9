from __future__ import annotations

from tests.integration.conftest import api, database_url
from tests.support.fixtures import participant, participant_url, template_db

__all__ = ["api", "database_url", "participant", "participant_url", "template_db"]
