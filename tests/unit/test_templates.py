from __future__ import annotations

import pytest

from orchestrator import templates


def test_render_copies_values_by_path() -> None:
    body = {
        "sku": "$.input.sku",
        "ids": ["$.results.a.id", "literal"],
        "n": 3,
        "first": "$.input.items.0.name",
        "nested": {"r": "$.results.a.deep.x"},
    }
    out = templates.render(
        body, {"sku": "A1", "items": [{"name": "pen"}]}, {"a": {"id": 7, "deep": {"x": [1, 2]}}}
    )
    assert out == {
        "sku": "A1",
        "ids": [7, "literal"],
        "n": 3,
        "first": "pen",
        "nested": {"r": [1, 2]},
    }


def test_missing_value_names_the_reference() -> None:
    with pytest.raises(templates.MissingValue, match=r"\$\.input\.sku"):
        templates.render({"x": "$.input.sku"}, {}, {})


def test_nothing_is_evaluated() -> None:
    literal = ["${{7*7}}", "$(rm -rf /)", "{{ config }}", "$.other.x"]
    assert templates.render(literal, {"a": 1}, {}) == literal
    # A reference is only ever a path lookup: these name keys that do not exist.
    for reference in ("$.input.__class__", "$.input.a;import os", "$.input.a.__dict__"):
        with pytest.raises(templates.MissingValue):
            templates.render(reference, {"a": 1}, {})


def test_references_and_depth() -> None:
    body = {"a": ["$.results.s1.x", {"b": "$.input.y"}]}
    assert [(r.source, r.path) for r in templates.references(body)] == [
        ("results", ("s1", "x")),
        ("input", ("y",)),
    ]
    assert templates.depth(body) == 3
    assert templates.parse("$.input.") is None
