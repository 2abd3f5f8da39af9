"""Callback tokens: who may complete a callback step.

A token is ``HMAC(secret, "<saga>:<step>:<attempt>")``: it can be checked by any
API replica at any time, even when the completion arrives before the worker
recorded the participant's 202, and it names the one attempt it completes.
"""

from __future__ import annotations

import hashlib
import hmac
import uuid


def callback_token(secret: str, saga_id: uuid.UUID | str, step: str, attempt: int) -> str:
    message = f"{saga_id}:{step}:{attempt}".encode()
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def attempt_of(
    secret: str, token: str, saga_id: uuid.UUID | str, step: str, attempts: int
) -> int | None:
    """The attempt ``token`` was issued for (newest first), or None if it is no token of ours."""
    for attempt in range(attempts, 0, -1):
        expected = callback_token(secret, saga_id, step, attempt)
        if hmac.compare_digest(token.encode(), expected.encode()):  # bytes: any token is safe
            return attempt
    return None
