"""The definition diagram: one well-formed SVG that shows steps, kinds, undo and order."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import pytest

from orchestrator.api.ui.diagram import definition_svg
from orchestrator.check.config import DEFINITIONS
from orchestrator.definitions import Call, SagaDefinition, Step, parse_definition

NS = "{http://www.w3.org/2000/svg}"


def definition(name: str) -> SagaDefinition:
    return parse_definition(DEFINITIONS[name])


def render(d: SagaDefinition, **kwargs: Any) -> ET.Element:
    return ET.fromstring(definition_svg(d, **kwargs))


def classes(el: ET.Element) -> set[str]:
    return set(el.get("class", "").split())


def with_class(root: ET.Element, tag: str, cls: str) -> list[ET.Element]:
    return [el for el in root.iter(NS + tag) if cls in classes(el)]


def step_groups(root: ET.Element) -> dict[str, ET.Element]:
    return {g.get("data-step", ""): g for g in root.iter(NS + "g") if "data-step" in g.attrib}


def box_of(root: ET.Element, step: str) -> ET.Element:
    (box,) = with_class(step_groups(root)[step], "rect", "box")
    return box


def texts(el: ET.Element) -> list[str]:
    return ["".join(t.itertext()) for t in el.iter(NS + "text")]


def bounds(rect: ET.Element) -> tuple[float, float, float, float]:
    x, y = float(rect.get("x", "")), float(rect.get("y", ""))
    return x, y, x + float(rect.get("width", "")), y + float(rect.get("height", ""))


@pytest.mark.parametrize("name", ["order", "order_parallel", "order_async"])
def test_the_builtin_definitions_render(name: str) -> None:
    d = definition(name)
    root = render(d)
    assert root.tag == NS + "svg"
    assert root.get("role") == "img"
    assert root.get("viewBox") == f"0 0 {root.get('width')} {root.get('height')}"
    assert len(with_class(root, "rect", "box")) == len(d.flat_steps())
    assert len(with_class(root, "g", "arrow")) == len(d.stages()) - 1
    assert set(step_groups(root)) == {s.name for s in d.flat_steps()}
    for step in d.flat_steps():
        shown = texts(step_groups(root)[step.name])
        assert {step.name, step.participant, step.action.path, step.kind.value} <= set(shown)
        assert f"box {step.kind.value}" in box_of(root, step.name).get("class", "")


def test_the_label_names_the_steps_and_the_pivot() -> None:
    assert render(definition("order")).get("aria-label") == "order: 6 steps, pivot charge"
    assert render(definition("order_async")).get("aria-label") == (
        "order_async: 6 steps, 1 parallel group, 1 callback step, pivot charge"
    )


def test_the_pivot_stands_out_and_has_no_undo() -> None:
    root = render(definition("order"))
    pivots = with_class(root, "rect", "pivot")
    assert [r for r in pivots if "box" in classes(r)] == [box_of(root, "charge")]
    widths = {n: float(box_of(root, n).get("stroke-width", "")) for n in step_groups(root)}
    assert widths["charge"] > max(w for n, w in widths.items() if n != "charge")
    assert "no undo: point of no return" in texts(step_groups(root)["charge"])


def test_compensations_are_shown_under_their_steps_and_only_there() -> None:
    d = definition("order_async")
    root = render(d)
    for step in d.flat_steps():
        undo = with_class(step_groups(root)[step.name], "text", "compensation")
        if step.compensation is None:
            assert undo == []
        else:
            (line,) = undo
            assert "".join(line.itertext()) == f"↶ {step.compensation.path}"
            assert float(line.get("y", "")) > bounds(box_of(root, step.name))[3]
    assert "↶ /orders/reject" in texts(root)


def test_parallel_members_share_a_column() -> None:
    root = render(definition("order_parallel"))
    (group,) = with_class(root, "g", "parallel")
    members = [box_of(root, "create_order"), box_of(root, "reserve_stock")]
    assert {box_of(group, n) for n in ("create_order", "reserve_stock")} == set(members)
    assert members[0].get("x") == members[1].get("x")
    top, bottom = bounds(members[0]), bounds(members[1])
    assert top[3] < bottom[1]  # stacked, not overlapping
    assert any(t.startswith("parallel") for t in texts(group))
    # The next stage is to the right of the group, on the arrows' line.
    assert bounds(box_of(root, "charge"))[0] > top[2]


def test_a_callback_step_is_marked() -> None:
    root = render(definition("order_async"))
    marked = {n for n, g in step_groups(root).items() if with_class(g, "g", "callback")}
    assert marked == {"create_shipment"}
    box = box_of(root, "create_shipment")
    assert "callback" in classes(box)
    assert box.get("stroke-dasharray")
    assert "callback" in texts(step_groups(root)["create_shipment"])
    assert box_of(root, "charge").get("stroke-dasharray") is None


def test_the_retriable_tail_is_on_its_own_band() -> None:
    d = definition("order")
    root = render(d)
    (band,) = with_class(root, "rect", "tail-band")
    x0, y0, x1, y1 = bounds(band)

    def inside(name: str) -> bool:
        bx0, by0, bx1, by1 = bounds(box_of(root, name))
        return x0 <= bx0 and bx1 <= x1 and y0 <= by0 and by1 <= y1

    assert [s.name for s in d.flat_steps() if inside(s.name)] == [
        "create_shipment",
        "commit_stock",
        "approve_order",
    ]
    assert "retried until done" in texts(root)


def test_no_pivot_no_tail() -> None:
    d = SagaDefinition(
        name="undoable",
        steps=[
            Step(name="a", participant="p", action=Call(path="/a"), compensation=Call(path="/u")),
        ],
    )
    root = render(d)
    assert root.get("aria-label") == "undoable: 1 step, no pivot"
    assert with_class(root, "rect", "tail-band") == []
    assert with_class(root, "g", "arrow") == []


def test_the_legend_explains_each_kind() -> None:
    root = render(definition("order"))
    (legend,) = with_class(root, "g", "legend")
    for key in ("compensatable", "pivot", "retriable", "callback"):
        (item,) = with_class(legend, "g", key)
        assert any(t.startswith(key) for t in texts(item))
    # Legend samples are not boxes: the count of boxes is the count of steps.
    assert with_class(legend, "rect", "box") == []


def test_text_from_the_definition_is_escaped() -> None:
    evil = '<script>alert(1)</script>" onload="alert(2)'
    # Validation would refuse these names; the drawing must not rely on it.
    step = Step.model_construct(
        name=evil,
        participant="<b>p</b>",
        action=Call.model_construct(path="/a?x=1&y=<i>"),
        compensation=Call.model_construct(path="/undo'&\"<"),
    )
    d = SagaDefinition.model_construct(name=evil, steps=[step])
    svg = definition_svg(d)
    assert "<script" not in svg
    assert "<b>" not in svg
    assert "<i>" not in svg
    root = ET.fromstring(svg)
    assert "onload" not in root.attrib
    assert root.get("aria-label", "").startswith(evil)
    assert set(step_groups(root)) == {evil}
    (title,) = root.iter(NS + "title")
    assert (title.text or "").startswith(evil)  # the box shows it cut to fit
    assert {"<b>p</b>", "/a?x=1&y=<i>", "↶ /undo'&\"<"} <= set(texts(root))
    assert all(el.tag.startswith(NS) for el in root.iter())
    assert {el.tag[len(NS) :] for el in root.iter()} <= {
        "svg",
        "g",
        "rect",
        "text",
        "path",
        "polygon",
        "title",
    }


def twelve_steps() -> SagaDefinition:
    def step(i: int, kind: str) -> dict[str, Any]:
        s: dict[str, Any] = {
            "name": f"step_number_{i:02d}",
            "participant": f"service_{i}",
            "kind": kind,
            "action": {"path": f"/things/{i}/do"},
        }
        if kind == "compensatable":
            s["compensation"] = {"path": f"/things/{i}/undo"}
        return s

    kinds = ["compensatable"] * 5 + ["pivot"] + ["retriable"] * 6
    return parse_definition({"name": "long", "steps": [step(i, k) for i, k in enumerate(kinds)]})


def test_twelve_steps_wrap_and_stay_legible() -> None:
    d = twelve_steps()
    root = render(d)
    assert float(root.get("width", "")) <= 960
    boxes = [box_of(root, s.name) for s in d.flat_steps()]
    assert len(boxes) == 12
    assert all(float(b.get("width", "")) >= 150 for b in boxes)
    assert len({b.get("y") for b in boxes}) > 1  # more than one row
    assert all(int(t.get("font-size", "")) >= 9 for t in root.iter(NS + "text"))
    # Read left to right, row by row: in order, and no two boxes overlap.
    corners = [bounds(b) for b in boxes]
    assert corners == sorted(corners, key=lambda c: (c[1], c[0]))
    for i, a in enumerate(corners):
        for b in corners[i + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]
    # Every step's name is shown whole at this length.
    assert all(s.name in texts(root) for s in d.flat_steps())
    assert len(with_class(root, "g", "arrow")) == 11


def test_a_narrow_width_gives_one_column() -> None:
    root = render(definition("order_async"), width=200)
    assert len({b.get("x") for b in with_class(root, "rect", "box")}) == 1


def test_long_text_is_cut_to_fit_and_kept_whole_in_the_tooltip() -> None:
    path = "/" + "very-long-segment/" * 10
    d = SagaDefinition(
        name="long_path",
        steps=[Step(name="a", participant="p", kind="pivot", action=Call(path=path))],
    )
    root = render(d)
    group = step_groups(root)["a"]
    (cut,) = [t for t in texts(group) if t.startswith("/very")]
    assert cut.endswith("…")
    assert len(cut) < len(path)
    (title,) = group.iter(NS + "title")
    assert path in (title.text or "")


def test_the_output_is_deterministic() -> None:
    assert definition_svg(definition("order_async")) == definition_svg(definition("order_async"))
    assert definition_svg(twelve_steps(), width=700) == definition_svg(twelve_steps(), width=700)
