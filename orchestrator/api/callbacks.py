"""Completion of callback steps: authenticated by the step's token, not by an API key."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header
from pydantic import BaseModel, Field

from orchestrator.api.deps import Ops, Rt, saga_id
from orchestrator.api.limits import GuardedRoute, check_input_size
from orchestrator.api.views import saga_view
from orchestrator.errors import Forbidden
from orchestrator.transport import protocol

router = APIRouter(tags=["callbacks"], route_class=GuardedRoute)


class Completion(BaseModel):
    """Body of a completion: the step's outcome and, when it succeeded, its result."""

    outcome: Literal["succeeded", "rejected"]
    result: Any = None
    error: str | None = Field(default=None, max_length=2000)


@router.post(protocol.CALLBACK_PATH)
async def complete(
    ops: Ops,
    rt: Rt,
    id: str,
    step: str,
    body: Completion,
    # Aliased in lower case: the name the schema has always shown for this header.
    x_saga_callback_token: Annotated[
        str | None, Header(alias=protocol.CALLBACK_TOKEN.lower(), max_length=128)
    ] = None,
) -> dict[str, Any]:
    """Complete a callback step with the token sent in ``X-Saga-Callback-Token``.

    A repeated completion with the same token answers 200 and changes nothing; a
    wrong token answers 403; a completion after the step's timeout answers 409.
    """
    if not x_saga_callback_token:
        raise Forbidden(f"the {protocol.CALLBACK_TOKEN} header is required")
    if not x_saga_callback_token.isascii():
        # Tokens are hex; anything else is no token of ours (and cannot be compared
        # in constant time as text).
        raise Forbidden("the callback token is not valid for this step")
    check_input_size(body.result, "result", rt.settings.max_input_bytes)
    saga, definition = await ops.complete_callback(
        saga_id(id), step, x_saga_callback_token, body.outcome, body.result, body.error
    )
    return saga_view(saga, definition)
