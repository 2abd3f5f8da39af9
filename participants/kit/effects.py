"""Declaring idempotent endpoints: :class:`EffectRouter` and what handlers receive.

A service declares its saga-facing endpoints on an :class:`EffectRouter`::

    effects = EffectRouter()

    @effects.action("/charges")
    async def charge(effect: Effect, body: ChargeRequest) -> dict[str, Any]:
        ...  # change business rows through effect.conn; raise Rejected(...) to refuse

    @effects.compensation("/charges/refund", undoes="/charges")
    async def refund(effect: Effect, action: ActionRecord) -> dict[str, Any]:
        ...  # undo what action.request / action.response describe

Handlers run inside the transaction that also records the idempotency key and
the answer, so the business change and the key commit together or not at all.
A compensation handler is only called when its action was applied; the kit
answers the other cases itself (see :mod:`participants.kit.idempotency`).
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncConnection

from participants.kit.keys import IdempotencyKey
from participants.kit.optimistic import Change, update_versioned

Result = Mapping[str, Any] | BaseModel
ModelT = TypeVar("ModelT", bound=BaseModel)
ActionHandler = Callable[["Effect", ModelT], Awaitable[Result]]
CompensationHandler = Callable[["Effect", "ActionRecord"], Awaitable[Result]]


@dataclass(frozen=True)
class Effect:
    """The context of one idempotent call, valid while its handler runs."""

    conn: AsyncConnection
    """The connection whose transaction records the key: make every change through it."""
    key: IdempotencyKey
    endpoint: str
    body: Any
    """The request body as received (JSON)."""
    attempt: int | None
    """``X-Saga-Attempt``, for logs; never needed for correctness."""
    optimistic_attempts: int
    conflict_hook: Callable[[str], Callable[[], None]]

    @property
    def saga_id(self) -> str:
        """The saga this call belongs to (from the idempotency key)."""
        return self.key.saga_id

    async def update_versioned(
        self, table: sa.Table, row_id: object, change: Change
    ) -> dict[str, Any]:
        """:func:`~participants.kit.optimistic.update_versioned` within this call,
        with conflicts counted in the service's metrics."""
        return await update_versioned(
            self.conn,
            table,
            row_id,
            change,
            max_attempts=self.optimistic_attempts,
            on_conflict=self.conflict_hook(table.name),
        )


@dataclass(frozen=True)
class ActionRecord:
    """What the kit stored for the action a compensation undoes."""

    key: str
    endpoint: str
    request: Any
    status_code: int
    response: Any
    """The action's result: its answer's body or, for an action answered ``202``, the
    result its completion reported."""
    applied_at: datetime


@dataclass(frozen=True)
class ActionSpec:
    """A registered action endpoint."""

    path: str
    handler: ActionHandler[Any]
    model: type[BaseModel]
    status_code: int
    summary: str | None
    callback: bool = False
    """May answer ``202`` and complete later (see :mod:`participants.kit.callbacks`)."""


@dataclass(frozen=True)
class CompensationSpec:
    """A registered compensation endpoint and the action endpoint it undoes."""

    path: str
    handler: CompensationHandler
    undoes: str
    summary: str | None


class EffectRouter:
    """Collects a service's idempotent endpoints; mounted by ``create_participant_app``."""

    def __init__(self) -> None:
        self.actions: list[ActionSpec] = []
        self.compensations: list[CompensationSpec] = []

    def action(
        self,
        path: str,
        *,
        status_code: int = 201,
        summary: str | None = None,
        callback: bool = False,
    ) -> Callable[[ActionHandler[ModelT]], ActionHandler[ModelT]]:
        """Register ``POST path`` as an action; the handler's second parameter's
        annotation (a pydantic model) validates the body.

        With ``callback=True``, a call carrying the orchestrator's callback
        headers is answered ``202`` and its result sent later as the step's
        completion (see :mod:`participants.kit.callbacks`); other calls are
        answered as usual.
        """
        if not 200 <= status_code < 300:
            raise ValueError("an action answers with a 2xx status")

        def register(handler: ActionHandler[ModelT]) -> ActionHandler[ModelT]:
            model = _body_model(handler)
            self.actions.append(ActionSpec(path, handler, model, status_code, summary, callback))
            return handler

        return register

    def compensation(
        self, path: str, *, undoes: str, summary: str | None = None
    ) -> Callable[[CompensationHandler], CompensationHandler]:
        """Register ``POST path`` as the compensation of the action at ``undoes``."""

        def register(handler: CompensationHandler) -> CompensationHandler:
            self.compensations.append(CompensationSpec(path, handler, undoes, summary))
            return handler

        return register

    @property
    def completes_by_callback(self) -> bool:
        """Whether any action may answer ``202`` and owe a completion."""
        return any(spec.callback for spec in self.actions)

    def paths(self) -> set[str]:
        """Every path registered here."""
        return {spec.path for spec in self.actions} | {spec.path for spec in self.compensations}


def _body_model(handler: Callable[..., Any]) -> type[BaseModel]:
    parameters = list(inspect.signature(handler, eval_str=True).parameters.values())
    annotation = parameters[1].annotation if len(parameters) == 2 else None
    if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
        raise TypeError(
            f"{handler.__qualname__} must take (effect: Effect, body: <pydantic model>)"
        )
    return annotation
