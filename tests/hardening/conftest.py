"""Fixtures of the hardening tests: a cloned PostgreSQL database and a scripted participant.

Every test here runs the real service over HTTP on loopback; those that need
the server's slow-client protection serve it the way ``saga serve`` does
(:func:`tests.hardening.helpers.serve_like_production`).
"""

from __future__ import annotations

from tests.support.fixtures import database_url, participant, participant_url, template_db

__all__ = ["database_url", "participant", "participant_url", "template_db"]
