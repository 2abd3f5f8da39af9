"""The saga timeline drawn as SVG from a history (orchestrator.api.ui.timeline)."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.api.ui.timeline import TimelineStep, steps_of, timeline_svg
from orchestrator.machine.state import Plan, StepKind, StepPlan

NS = "{http://www.w3.org/2000/svg}"
T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

STEPS = [
    TimelineStep("reserve", "compensatable", 0, False),
    TimelineStep("ship_a", "compensatable", 1, False),
    TimelineStep("ship_b", "compensatable", 1, False),
    TimelineStep("charge", "pivot", 2, False),
    TimelineStep("notify", "retriable", 3, True),
]


class History:
    """A saga's history in the reader's shape, built event by event."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []

    def add(self, kind: str, seconds: float, **fields: Any) -> None:
        event: dict[str, Any] = {
            "id": len(self.events) + 1,
            "at": (T0 + timedelta(seconds=seconds)).isoformat(),
            "kind": kind,
            "step": None,
            "phase": None,
            "attempt": None,
            "outcome": None,
            "detail": None,
        }
        event.update(fields)
        self.events.append(event)

    def call(
        self,
        step: str,
        ended: float,
        duration_ms: float,
        outcome: str = "succeeded",
        *,
        phase: str = "action",
        attempt: int = 1,
        **detail: Any,
    ) -> None:
        self.add(
            "call",
            ended,
            step=step,
            phase=phase,
            attempt=attempt,
            outcome=outcome,
            detail={"duration_ms": duration_ms, **detail},
        )


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)
    assert root.tag == f"{NS}svg"
    return root


def classes(element: ET.Element) -> set[str]:
    return set((element.get("class") or "").split())


def having(root: ET.Element, css: str, tag: str | None = None) -> list[ET.Element]:
    return [e for e in root.iter() if css in classes(e) and (tag is None or e.tag == f"{NS}{tag}")]


def row(root: ET.Element, name: str) -> ET.Element:
    (found,) = [g for g in having(root, "step", "g") if g.get("data-step") == name]
    return found


def title(element: ET.Element) -> str:
    found = element.find(f"{NS}title")
    assert found is not None
    return found.text or ""


def a_saga() -> History:
    """Reserve, ship in parallel (b retried), the pivot rejected, then compensation."""
    h = History()
    h.add("started", 0.0, detail={"status": "running"})
    h.call("reserve", 0.2, 150.0, status=200)
    h.call("ship_a", 0.5, 250.0, status=200)
    h.call("ship_b", 0.4, 100.0, "transient", status=503, error="unavailable")
    h.call("ship_b", 0.9, 100.0, attempt=2, status=200)
    h.call("charge", 1.3, 300.0, "rejected", status=422, error="card declined")
    h.add("transition", 1.3, detail={"from": "running", "to": "compensating"})
    h.call("ship_b", 1.5, 100.0, phase="compensation", status=200)
    h.call("ship_a", 1.5, 120.0, phase="compensation", status=200)
    h.call("reserve", 1.8, 100.0, phase="compensation", status=200)
    h.add("transition", 1.8, detail={"from": "compensating", "to": "compensated"})
    return h


def test_one_bar_per_call_attempt_coloured_by_outcome_with_a_tooltip() -> None:
    h = a_saga()
    root = parse(timeline_svg(h.events, STEPS))
    bars = having(root, "bar", "rect")
    assert len(bars) == sum(1 for e in h.events if e["kind"] == "call") == 8
    fills = {next(iter(classes(b) - {"bar"})): b.get("fill") for b in bars}
    assert fills == {"succeeded": "#2e9d4f", "transient": "#f08c00", "rejected": "#d64545"}
    assert all(float(b.get("width", "0")) >= 2 for b in bars)
    (charge,) = having(row(root, "charge"), "bar")
    tip = title(charge)
    for part in ("charge", "action", "attempt 1", "rejected", "HTTP 422", "300.0 ms", "declined"):
        assert part in tip
    assert root.get("role") == "img"
    assert root.get("aria-label") == "timeline of 8 calls over 1.80 s"


def test_bars_span_their_attempt_from_start_to_end() -> None:
    h = History()
    h.call("reserve", 1.0, 500.0)
    h.call("charge", 2.0, 1000.0)
    root = parse(timeline_svg(h.events, STEPS, width=1000))
    (first,) = having(row(root, "reserve"), "bar")
    (second,) = having(row(root, "charge"), "bar")
    # The axis runs from the first start (0.5 s) to the last end (2.0 s).
    x0, w0 = float(first.get("x", "")), float(first.get("width", ""))
    x1, w1 = float(second.get("x", "")), float(second.get("width", ""))
    assert abs(w1 - 2 * w0) < 0.2
    assert abs((x1 + w1) - (x0 + 3 * w0)) < 0.3  # 2.0 s is three bar-widths past 0.5 s
    ticks = [t.text for t in having(root, "tick", "text")]
    assert ticks[0] == "0.0 s"
    assert "1.0 s" in ticks


def test_compensation_bars_are_in_their_own_lane() -> None:
    root = parse(timeline_svg(a_saga().events, STEPS))
    for name in ("reserve", "ship_a", "ship_b"):
        bars = having(row(root, name), "bar")
        action = {b.get("y") for b in bars if b.get("data-phase") == "action"}
        compensation = {b.get("y") for b in bars if b.get("data-phase") == "compensation"}
        assert len(action) == len(compensation) == 1
        assert action != compensation
        lanes = {lane.get("y") for lane in having(row(root, name), "compensation", "rect")}
        assert lanes == compensation
    # A step never compensated gets no compensation lane.
    assert not having(row(root, "charge"), "compensation")


def test_a_retry_shows_its_backoff_as_a_dashed_line() -> None:
    root = parse(timeline_svg(a_saga().events, STEPS))
    ship_b = row(root, "ship_b")
    first, second = [b for b in having(ship_b, "bar") if b.get("data-phase") == "action"]
    (line,) = having(ship_b, "backoff", "line")
    assert line.get("stroke-dasharray")
    end_of_first = float(first.get("x", "")) + float(first.get("width", ""))
    assert abs(float(line.get("x1", "")) - end_of_first) < 0.2
    assert abs(float(line.get("x2", "")) - float(second.get("x", ""))) < 0.2
    assert line.get("y1") == line.get("y2")
    assert "waited 400.0 ms" in title(line)
    # A step called once has nothing to wait for.
    assert not having(row(root, "charge"), "backoff")


def test_the_pivot_is_marked() -> None:
    root = parse(timeline_svg(a_saga().events, STEPS))
    pivots = having(root, "pivot", "g")
    assert [g.get("data-step") for g in pivots] == ["charge"]
    assert having(pivots[0], "row-outline", "rect")
    assert [t.text for t in having(pivots[0], "badge", "text")] == ["pivot"]


def test_parallel_members_are_grouped() -> None:
    root = parse(timeline_svg(a_saga().events, STEPS))
    (group,) = having(root, "parallel-group", "g")
    members = [g.get("data-step") for g in group if "step" in classes(g)]
    assert members == ["ship_a", "ship_b"]
    assert [t.text for t in having(group, "parallel-label", "text")] == ["parallel"]
    order = [g.get("data-step") for g in having(root, "step", "g")]
    assert order == ["reserve", "ship_a", "ship_b", "charge", "notify"]


def test_transitions_and_operator_actions_are_markers() -> None:
    h = a_saga()
    h.add("operator", 2.0, detail={"action": "retry", "by": "ops"})
    root = parse(timeline_svg(h.events, STEPS))
    labels = [
        (sorted(classes(g) - {"marker"}), g.find(f"{NS}text").text)  # type: ignore[union-attr]
        for g in having(root, "marker", "g")
    ]
    assert labels == [
        (["compensating", "transition"], "→ compensating"),
        (["compensated", "transition"], "→ compensated"),
        (["operator", "retry"], "retry"),
    ]
    for marker in having(root, "marker", "g"):
        assert marker.find(f"{NS}line") is not None


def test_a_callback_step_shows_its_wait_for_the_completion() -> None:
    h = History()
    h.call("notify", 1.0, 50.0, "accepted", status=202)
    h.add("callback", 3.0, step="notify", phase="action", attempt=1, outcome="succeeded")
    root = parse(timeline_svg(h.events, STEPS))
    notify = row(root, "notify")
    (bar,) = having(notify, "bar")
    assert "accepted" in classes(bar)
    (wait,) = having(notify, "callback-wait", "rect")
    assert "open" not in classes(wait)
    end_of_bar = float(bar.get("x", "")) + float(bar.get("width", ""))
    assert abs(float(wait.get("x", "")) - end_of_bar) < 0.2
    plot_end = 960 - 24  # the callback is the last event: the wait reaches the axis' end
    assert abs(float(wait.get("x", "")) + float(wait.get("width", "")) - plot_end) < 0.2
    assert having(notify, "callback", "path")
    assert "waited 2.00 s" in title(wait)


def test_a_callback_not_yet_arrived_is_an_open_wait() -> None:
    h = History()
    h.call("notify", 1.0, 50.0, "accepted", status=202)
    h.add("transition", 4.0, detail={"from": "running", "to": "failed"})
    root = parse(timeline_svg(h.events, STEPS))
    (wait,) = having(row(root, "notify"), "callback-wait", "rect")
    assert "open" in classes(wait)
    assert float(wait.get("width", "")) > 100


def test_text_from_the_history_is_escaped() -> None:
    evil = "<script>alert(1)</script>"
    h = History()
    h.call(evil, 1.0, 10.0, "rejected", error=f'{evil} & "quotes"\x00\x1b', url=evil)
    h.add("operator", 1.0, detail={"action": evil, "by": evil})
    h.add("transition", 1.0, detail={"from": evil, "to": evil})
    steps = [TimelineStep(evil, "pivot", 0, False)]
    svg = timeline_svg(h.events, steps)
    assert "<script" not in svg
    root = parse(svg)  # well-formed despite the control characters
    assert not [e for e in root.iter() if e.tag.endswith("script")]
    (step,) = having(root, "step", "g")
    assert step.get("data-step") == evil
    (bar,) = having(root, "bar")
    assert evil in title(bar)
    assert '& "quotes"' in title(bar)
    texts = "".join(root.itertext())
    assert evil in texts  # shown as text, never as markup
    for element in root.iter():
        for name in ("class", "data-kind"):
            assert "<" not in (element.get(name) or "")


def test_an_empty_history_says_so() -> None:
    for events in ([], [{"id": 1, "at": T0.isoformat(), "kind": "started", "detail": {}}]):
        root = parse(timeline_svg(events, STEPS))
        assert "no calls yet" in "".join(root.itertext())
        assert root.get("role") == "img"
        assert not having(root, "bar")


def test_unknown_kinds_are_ignored_and_unknown_steps_still_drawn() -> None:
    h = History()
    h.add("something-new", 0.0, detail={"x": 1})
    h.add("call", 0.5, step="reserve", detail={"duration_ms": "not a number"})
    h.call("removed_step", 1.0, 100.0)
    h.events.append({"id": 99, "at": "not a time", "kind": "call", "step": "reserve"})
    root = parse(timeline_svg(h.events, STEPS))
    assert len(having(root, "bar")) == 2
    assert "other" in classes(having(row(root, "reserve"), "bar")[0])
    assert "unknown" in classes(row(root, "removed_step"))


def test_two_thousand_events_render_fast_and_small() -> None:
    h = History()
    names = [s.name for s in STEPS]
    for i in range(2_000):
        outcome = ("succeeded", "transient", "rejected", "accepted")[i % 4]
        h.call(names[i % 5], i * 0.05, 20.0 + i % 7, outcome, attempt=i // 5 + 1, error="x" * 500)
    started = time.perf_counter()
    svg = timeline_svg(h.events, STEPS)
    elapsed = time.perf_counter() - started
    assert elapsed < 1.0, elapsed
    assert len(svg) < 2_000_000
    root = parse(svg)
    assert len(having(root, "bar", "rect")) == 2_000
    assert timeline_svg(h.events, STEPS) == svg  # deterministic


def test_steps_of_a_plan_keeps_order_stages_and_kinds() -> None:
    plan = Plan(
        steps=(
            StepPlan("a"),
            StepPlan("b", kind=StepKind.RETRIABLE, callback=True),
            StepPlan("c"),
            StepPlan("d", kind=StepKind.PIVOT),
        ),
        stages=((0,), (1, 2), (3,)),
    )
    assert steps_of(plan) == [
        TimelineStep("a", "compensatable", 0, False),
        TimelineStep("b", "retriable", 1, True),
        TimelineStep("c", "compensatable", 1, False),
        TimelineStep("d", "pivot", 2, False),
    ]


def test_crowded_markers_keep_their_lines_and_tooltips_without_overlapping_labels() -> None:
    h = a_saga()
    for i in range(12):
        h.add("operator", 1.0 + i * 0.001, detail={"action": "retry", "by": f"op{i}"})
    root = parse(timeline_svg(h.events, STEPS))
    operators = [g for g in having(root, "marker", "g") if "operator" in classes(g)]
    assert len(operators) == 12
    assert all(g.find(f"{NS}line") is not None and title(g) for g in operators)
    labelled = [g for g in operators if g.find(f"{NS}text") is not None]
    assert 1 <= len(labelled) <= 4
    assert {t.get("y") for g in labelled for t in g.iter(f"{NS}text")} == {
        str(12 * i + 10) for i in range(len(labelled))
    }
    assert all("unlabelled" in classes(g) for g in operators if g not in labelled)
