"""Definitions: the typed builder, validation rules, the plan."""

from __future__ import annotations

from typing import Any

import pytest

from orchestrator.definitions import Call, Retry, SagaDefinition, Step, parse_definition
from orchestrator.errors import InvalidRequest
from orchestrator.machine import StepKind


def step(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "participant": "p",
        "action": {"path": f"/{name}"},
        "compensation": {"path": f"/{name}/undo"},
        **extra,
    }


def fields_of(data: dict[str, Any], participants: set[str] | None = None) -> list[str]:
    with pytest.raises(InvalidRequest) as caught:
        parse_definition(data, participants)
    return [f["field"] for f in caught.value.details["fields"]]


def test_typed_builder_equals_json() -> None:
    typed = SagaDefinition(
        name="order",
        steps=[
            Step(
                name="reserve",
                participant="inventory",
                action=Call(path="/reservations", body={"sku": "$.input.sku"}),
                compensation=Call(path="/reservations/cancel"),
                retry=Retry(max_attempts=5),
            ),
            Step(
                name="charge",
                participant="payments",
                kind=StepKind.PIVOT,
                action=Call(path="/charges"),
            ),
        ],
    )
    from_json = parse_definition(
        {
            "name": "order",
            "steps": [
                {
                    "name": "reserve",
                    "participant": "inventory",
                    "action": {"path": "/reservations", "body": {"sku": "$.input.sku"}},
                    "compensation": {"path": "/reservations/cancel"},
                    "retry": {"max_attempts": 5},
                },
                {
                    "name": "charge",
                    "participant": "payments",
                    "kind": "pivot",
                    "action": {"path": "/charges"},
                },
            ],
        },
        {"inventory", "payments"},
    )
    assert typed.fingerprint() == from_json.fingerprint()
    plan = typed.plan()
    assert [s.kind for s in plan.steps] == [StepKind.COMPENSATABLE, StepKind.PIVOT]
    assert plan.stages == ((0,), (1,))


def test_parallel_group_becomes_one_stage() -> None:
    d = parse_definition(
        {"name": "p", "steps": [step("a"), {"parallel": [step("b"), step("c")]}, step("d")]}
    )
    assert d.plan().stages == ((0,), (1, 2), (3,))
    assert [s.name for s in d.flat_steps()] == ["a", "b", "c", "d"]


@pytest.mark.parametrize(
    ("steps", "field"),
    [
        ([step("a", kind="pivot", compensation=None), step("b")], "steps.1.kind"),
        (
            [
                step("a", kind="pivot", compensation=None),
                step("b", kind="pivot", compensation=None),
            ],
            "steps.1.kind",
        ),
        ([step("a", kind="pivot")], "steps.0.compensation"),
        ([step("a", kind="retriable", compensation=None)], "steps.0.kind"),
        (
            [{"parallel": [step("a"), step("b", kind="pivot", compensation=None)]}],
            "steps.0.parallel.1.kind",
        ),
        (
            [{"parallel": [step("a"), step("b", action={"path": "/b", "body": "$.results.a.x"})]}],
            "steps.0.parallel.1.action.body",
        ),
        (
            [step("a"), step("b", kind="pivot", compensation=None, completion="callback")],
            "steps.1.completion",
        ),
        ([step("a", action={"path": "//evil.example/x"})], "steps.0.action.path"),
        ([step("a", action={"path": "relative"})], "steps.0.action.path"),
    ],
)
def test_rules_across_fields(steps: list[dict[str, Any]], field: str) -> None:
    assert field in fields_of({"name": "d", "steps": steps})


def test_unknown_participant_named() -> None:
    assert fields_of({"name": "d", "steps": [step("a")]}, {"q"}) == ["steps.0.participant"]


def test_compensation_may_reference_its_own_result() -> None:
    own = step("a", compensation={"path": "/undo", "body": {"id": "$.results.a.id"}})
    parse_definition({"name": "d", "steps": [own]})


def test_nesting_is_bounded() -> None:
    deep: Any = "x"
    for _ in range(12):
        deep = {"k": deep}
    assert "steps.0.action.body" in fields_of(
        {"name": "d", "steps": [step("a", action={"path": "/a", "body": deep})]}
    )


def test_too_many_steps() -> None:
    assert "steps" in fields_of({"name": "d", "steps": [step(f"s{i}") for i in range(101)]})


def test_identical_content_has_identical_fingerprint() -> None:
    a = parse_definition({"name": "d", "steps": [step("a")]})
    b = parse_definition({"steps": [step("a")], "name": "d", "on_failure": "compensate"})
    assert a.fingerprint() == b.fingerprint()
    c = parse_definition({"name": "d", "steps": [step("a", timeout_ms=10)]})
    assert a.fingerprint() != c.fingerprint()
