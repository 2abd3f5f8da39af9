"""The participant protocol over HTTP, orchestrator side: the one place that spells it.

Every call is a ``POST`` of a JSON body to the participant's endpoint with:

- ``Idempotency-Key: <saga>:<step>:<action|compensation>``, identical on every
  attempt, after every crash and takeover: what lets a participant apply the
  effect exactly once;
- ``X-Saga-Id``, ``X-Saga-Step`` and ``X-Saga-Attempt`` (for the participant's logs);
- ``traceparent`` when the saga is traced;
- for a callback step's action, ``X-Saga-Callback-Url`` (where to complete it,
  the API's :data:`CALLBACK_PATH`) and ``X-Saga-Callback-Token`` (what proves
  the completion is the participant's).

The worker, the API's callback route and CORS read the names from here; the
participant kit spells the same names on its side (a test holds them equal).
"""

from __future__ import annotations

from orchestrator.transport.call import CallbackTokens, CallIdentity, CallRequest

IDEMPOTENCY_KEY = "Idempotency-Key"
SAGA_ID = "X-Saga-Id"
SAGA_STEP = "X-Saga-Step"
SAGA_ATTEMPT = "X-Saga-Attempt"
CALLBACK_URL = "X-Saga-Callback-Url"
CALLBACK_TOKEN = "X-Saga-Callback-Token"
TRACEPARENT = "traceparent"
CONTENT_TYPE = "Content-Type"
JSON = "application/json"

#: Where a participant completes a callback step (the API declares its route with it).
CALLBACK_PATH = "/v1/sagas/{id}/steps/{step}/complete"


def idempotency_key(call: CallIdentity) -> str:
    """``<saga>:<step>:<phase>``: the same for every attempt of one half of one step."""
    return f"{call.saga_id}:{call.step}:{call.phase}"


def callback_url(public_url: str, call: CallIdentity) -> str:
    """The absolute URL that completes the call's step, under the API's ``public_url``."""
    return public_url + CALLBACK_PATH.format(id=call.saga_id, step=call.step)


def callback_for(
    request: CallRequest, callbacks: CallbackTokens | None, public_url: str
) -> tuple[str, str] | None:
    """``(url, token)`` completing the request's step, if it completes by callback."""
    if not request.awaits_callback:
        return None
    if callbacks is None:
        raise RuntimeError("a callback step was called by a client without callback tokens")
    return callback_url(public_url, request.identity), callbacks.token(request.identity)


def headers(request: CallRequest, callback: tuple[str, str] | None = None) -> dict[str, str]:
    """The headers of one attempt; ``callback`` is ``(url, token)`` for a callback step."""
    i = request.identity
    sent = {
        IDEMPOTENCY_KEY: idempotency_key(i),
        SAGA_ID: i.saga_id,
        SAGA_STEP: i.step,
        SAGA_ATTEMPT: str(i.attempt),
        CONTENT_TYPE: JSON,
    }
    if request.traceparent is not None:
        sent[TRACEPARENT] = request.traceparent
    if callback is not None:
        sent[CALLBACK_URL], sent[CALLBACK_TOKEN] = callback
    return sent
