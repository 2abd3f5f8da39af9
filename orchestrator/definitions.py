"""Saga definitions: the typed model, its validation, and the plan the machine follows.

The same models serve the REST API (JSON in) and Python users::

    order = SagaDefinition(
        name="order",
        steps=[
            Step(name="reserve", participant="inventory",
                 action=Call(path="/reservations", body={"sku": "$.input.sku"}),
                 compensation=Call(path="/reservations/cancel")),
            Step(name="charge", participant="payments", kind="pivot",
                 action=Call(path="/charges")),
        ],
    )
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from functools import cached_property
from typing import Annotated, Any, Literal
from urllib.parse import unquote

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, field_validator

from orchestrator import templates
from orchestrator.errors import InvalidRequest
from orchestrator.machine import Plan, RetryPlan, StepKind, StepPlan

NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_.-]{0,63}$"
MAX_STEPS = 100
#: Versions are 32-bit in the database; a larger number names no version.
MAX_VERSION = 2**31 - 1
_PATH = re.compile(r"^/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*$")
# What must not appear once percent-decoded: backslashes (some servers read
# them as '/'), control characters, and '?'/'#' that would change the URL's shape.
_UNSAFE_DECODED = re.compile(r"[\\\x00-\x1f\x7f?#]")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Retry(_Model):
    """Retry policy of one call: attempts and exponential backoff with jitter."""

    max_attempts: int = Field(default=5, ge=1, le=1000)
    initial_backoff_ms: int = Field(default=100, ge=0, le=3_600_000)
    max_backoff_ms: int = Field(default=10_000, ge=0, le=3_600_000)
    multiplier: float = Field(default=2.0, ge=1.0, le=10.0)
    jitter: float = Field(default=0.2, ge=0.0, le=1.0)


class Call(_Model):
    """A participant endpoint: a path relative to the participant's base URL, and a body."""

    path: str = Field(max_length=512, json_schema_extra={"pattern": _PATH.pattern})
    #: JSON with templates (``$.input.x``, ``$.results.step.x``); absent: the default body.
    body: Any = None

    @field_validator("path")
    @classmethod
    def _relative_path(cls, value: str) -> str:
        # A definition may name a path, never a host: participants' URLs come
        # only from configuration, so a definition cannot aim calls elsewhere.
        # Checked as sent and percent-decoded, since the participant decodes it.
        decoded = unquote(value)
        if (
            not _PATH.match(value)
            or any(p.startswith("//") or ".." in p.split("/") for p in (value, decoded))
            or _UNSAFE_DECODED.search(decoded)
        ):
            raise ValueError("must be a path starting with '/', without scheme, host or '..'")
        return value


class Step(_Model):
    """One step: an action at a participant and, unless it is a pivot or retriable, its undo."""

    name: str = Field(pattern=NAME_PATTERN)
    participant: str = Field(pattern=NAME_PATTERN)
    kind: StepKind = StepKind.COMPENSATABLE
    action: Call
    compensation: Call | None = None
    retry: Retry = Field(default_factory=Retry)
    timeout_ms: int = Field(default=5000, ge=1, le=3_600_000)
    completion: Literal["response", "callback"] = "response"


class ParallelGroup(_Model):
    """Steps that run concurrently; the saga goes on when all of them succeeded."""

    parallel: list[Step] = Field(min_length=2, max_length=20)


def _element_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "parallel" if "parallel" in value else "step"
    return "parallel" if isinstance(value, ParallelGroup) else "step"


StepOrGroup = Annotated[
    Annotated[Step, Tag("step")] | Annotated[ParallelGroup, Tag("parallel")],
    Discriminator(_element_kind),
]


class SagaDefinition(_Model):
    """A named, versioned saga: its steps in order and what to do when one fails for good."""

    name: str = Field(pattern=NAME_PATTERN)
    deadline_s: float | None = Field(default=None, gt=0, le=31_536_000)
    on_failure: Literal["compensate", "park"] = "compensate"
    steps: list[StepOrGroup] = Field(min_length=1, max_length=MAX_STEPS)

    def stages(self) -> list[list[Step]]:
        return [e.parallel if isinstance(e, ParallelGroup) else [e] for e in self.steps]

    def flat_steps(self) -> list[Step]:
        """Every step in plan order (the index a step has in the machine's state)."""
        return list(self._flat_steps)

    @cached_property
    def _flat_steps(self) -> tuple[Step, ...]:
        # A definition is frozen, and these are asked for on every call.
        return tuple(s for stage in self.stages() for s in stage)

    def plan(self) -> Plan:
        """What the state machine needs of this definition."""
        return self._plan

    @cached_property
    def _plan(self) -> Plan:
        steps: list[StepPlan] = []
        stages: list[tuple[int, ...]] = []
        for stage in self.stages():
            first = len(steps)
            steps.extend(_step_plan(s) for s in stage)
            stages.append(tuple(range(first, len(steps))))
        return Plan(
            steps=tuple(steps),
            stages=tuple(stages),
            park_on_failure=self.on_failure == "park",
            deadline_s=self.deadline_s,
        )

    def canonical_json(self) -> str:
        """The definition with defaults filled in, as stable JSON (for identity checks)."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))

    def fingerprint(self) -> str:
        return hashlib.sha256(self.canonical_json().encode()).hexdigest()


def _step_plan(step: Step) -> StepPlan:
    r = step.retry
    return StepPlan(
        name=step.name,
        kind=step.kind,
        has_compensation=step.compensation is not None,
        callback=step.completion == "callback",
        callback_timeout_s=step.timeout_ms / 1000,
        retry=RetryPlan(
            r.max_attempts, r.initial_backoff_ms, r.max_backoff_ms, r.multiplier, r.jitter
        ),
    )


def parse_definition(data: Any, known_participants: set[str] | None = None) -> SagaDefinition:
    """Validate a definition from JSON; raise :class:`InvalidRequest` naming each bad field."""
    from pydantic import ValidationError

    try:
        definition = SagaDefinition.model_validate(data)
    except ValidationError as exc:
        fields = [
            {"field": _field_path(err["loc"]), "message": err["msg"]}
            for err in exc.errors(include_url=False)
        ]
        raise InvalidRequest("the definition is invalid", fields=fields) from None
    problems = list(semantic_problems(definition, known_participants))
    if problems:
        fields = [{"field": f, "message": m} for f, m in problems]
        raise InvalidRequest("the definition is invalid", fields=fields)
    return definition


def _field_path(loc: tuple[int | str, ...]) -> str:
    parts = list(loc)
    # Drop the union tag pydantic inserts after a step's index ("steps.0.step.path").
    if len(parts) > 2 and parts[0] == "steps" and parts[2] in ("step", "parallel"):
        del parts[2]
    return ".".join(str(p) for p in parts)


def _located(definition: SagaDefinition) -> Iterator[tuple[str, int, Step]]:
    """Each step with its field path and its stage index."""
    for i, element in enumerate(definition.steps):
        if isinstance(element, ParallelGroup):
            for j, step in enumerate(element.parallel):
                yield f"steps.{i}.parallel.{j}", i, step
        else:
            yield f"steps.{i}", i, element


def semantic_problems(
    definition: SagaDefinition, known_participants: set[str] | None = None
) -> Iterator[tuple[str, str]]:
    """Rules across fields: kinds and their order, names, templates, participants."""
    seen: dict[str, int] = {}
    pivot_stage: int | None = None
    for where, stage, step in _located(definition):
        if step.name in seen:
            yield f"{where}.name", f"duplicate step name {step.name!r}"
        seen.setdefault(step.name, stage)
        if known_participants is not None and step.participant not in known_participants:
            yield f"{where}.participant", f"unknown participant {step.participant!r}"
        if step.completion == "callback" and step.kind is not StepKind.COMPENSATABLE:
            # After the pivot a step must end by itself; a callback that never
            # comes would leave the saga unable to go either way.
            yield f"{where}.completion", "only compensatable steps can complete by callback"
        yield from _kind_problems(definition, where, stage, step, pivot_stage)
        if step.kind is StepKind.PIVOT:
            pivot_stage = stage if pivot_stage is None else pivot_stage
        yield from _template_problems(where, stage, step, seen)


def _kind_problems(
    definition: SagaDefinition, where: str, stage: int, step: Step, pivot_stage: int | None
) -> Iterator[tuple[str, str]]:
    in_group = isinstance(definition.steps[stage], ParallelGroup)
    if step.kind is StepKind.COMPENSATABLE:
        if step.compensation is None:
            yield f"{where}.compensation", "a compensatable step needs a compensation"
        if pivot_stage is not None:
            yield f"{where}.kind", "steps after the pivot must be retriable"
    elif step.kind is StepKind.PIVOT:
        if pivot_stage is not None:
            yield f"{where}.kind", "a saga has at most one pivot"
        if in_group:
            yield f"{where}.kind", "a pivot cannot be part of a parallel group"
        if step.compensation is not None:
            yield (
                f"{where}.compensation",
                "a pivot has no compensation: it is the point of no return",
            )
    else:
        if pivot_stage is None:
            yield f"{where}.kind", "retriable steps come after a pivot"
        if step.compensation is not None:
            yield f"{where}.compensation", "a retriable step is never compensated"


def _template_problems(
    where: str, stage: int, step: Step, seen: dict[str, int]
) -> Iterator[tuple[str, str]]:
    for field, call in (("action", step.action), ("compensation", step.compensation)):
        if call is None:
            continue
        if templates.depth(call.body) > templates.MAX_DEPTH:
            yield f"{where}.{field}.body", f"nested deeper than {templates.MAX_DEPTH} levels"
        for ref in templates.references(call.body):
            if ref.source != "results":
                continue
            target = seen.get(ref.step)
            own = field == "compensation" and ref.step == step.name
            if target is None or (target >= stage and not own):
                yield (
                    f"{where}.{field}.body",
                    f"{ref.text!r} refers to step {ref.step!r}, which does not run before this one",
                )
