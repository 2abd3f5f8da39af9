"""The status diagrams of docs/state-machine.md, rendered from the transition tables.

Run ``python -m orchestrator.machine.diagram`` after changing a table or a label
to rewrite the doc's generated sections; ``--check`` only reports whether they
are stale (a unit test holds the doc equal to ``render_doc``). Rendering is pure;
only ``main`` touches a file.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TypeVar

from orchestrator.machine.state import SagaStatus, StepStatus
from orchestrator.machine.tables import (
    SAGA_INITIAL,
    SAGA_TRANSITIONS,
    STEP_INITIAL,
    STEP_TRANSITIONS,
)

S, T = SagaStatus, StepStatus

DOC = Path(__file__).resolve().parents[2] / "docs" / "state-machine.md"

#: What moves a saga along each edge of ``SAGA_TRANSITIONS``.
SAGA_LABELS: dict[tuple[SagaStatus, SagaStatus], str] = {
    (S.RUNNING, S.COMPENSATING): "step failed for good before the pivot, cancel, deadline",
    (S.RUNNING, S.COMPLETED): "last stage succeeded",
    (S.RUNNING, S.FAILED): "park (after the pivot, pivot outcome unknown, on_failure park)",
    (S.COMPENSATING, S.COMPENSATED): "first stage compensated",
    (S.COMPENSATING, S.FAILED): "compensation rejected or exhausted",
    (S.FAILED, S.RUNNING): "RetryRequested, parked at a forward step",
    (S.FAILED, S.COMPENSATING): "RetryRequested (parked compensation), CompensateRequested",
}

#: What moves a step along each edge of ``STEP_TRANSITIONS``.
STEP_LABELS: dict[tuple[StepStatus, StepStatus], str] = {
    (T.PENDING, T.RUNNING): "its stage begins (attempt 1 due now)",
    (T.RUNNING, T.SUCCEEDED): "success",
    (T.RUNNING, T.REJECTED): "definite no",
    (T.RUNNING, T.FAILED): "retries exhausted, outcome unknown",
    (T.RUNNING, T.COMPENSATING): "in flight when compensation begins",
    (T.SUCCEEDED, T.COMPENSATING): "compensation reaches its stage",
    (T.REJECTED, T.RUNNING): "operator retry",
    (T.REJECTED, T.COMPENSATING): "rejected after an attempt with no definite answer",
    (T.FAILED, T.RUNNING): "operator retry",
    (T.FAILED, T.COMPENSATING): "compensation reaches its stage",
    (T.COMPENSATING, T.COMPENSATED): "compensation succeeded",
    (T.COMPENSATING, T.COMPENSATION_FAILED): "compensation rejected or exhausted",
    (T.COMPENSATION_FAILED, T.COMPENSATING): "operator retry",
}


E = TypeVar("E", SagaStatus, StepStatus)


def render(
    name: str,
    table: Mapping[E, frozenset[E]],
    initial: E,
    labels: Mapping[tuple[E, E], str],
    start_label: str = "",
) -> str:
    """A Mermaid ``stateDiagram-v2`` block drawing every edge of ``table``, labelled.

    Targets are drawn in their enum's order (a frozenset has none), so the text
    is the same on every run. A final status (no exits) gets an edge to the end.
    """
    edges = [(a, b) for a, targets in table.items() for b in type(initial) if b in targets]
    missing = [f"{a} -> {b}" for a, b in edges if (a, b) not in labels]
    unknown = [f"{a} -> {b}" for a, b in labels if (a, b) not in edges]
    if missing or unknown:
        raise ValueError(
            f"{name}: edges without a label {missing}, labels without an edge {unknown}"
        )
    start = f"    [*] --> {initial.value}" + (f" : {start_label}" if start_label else "")
    lines: list[str] = ["```mermaid", "stateDiagram-v2", f"    %% {name}", start]
    lines += [f"    {a.value} --> {b.value} : {labels[a, b]}" for a, b in edges]
    lines += [f"    {a.value} --> [*]" for a, targets in table.items() if not targets]
    return "\n".join([*lines, "```"])


def sections() -> dict[str, str]:
    """The generated sections of the doc, by marker name."""
    return {
        "saga": render(
            "saga: SAGA_TRANSITIONS", SAGA_TRANSITIONS, SAGA_INITIAL, SAGA_LABELS, "start"
        ),
        "step": render("step: STEP_TRANSITIONS", STEP_TRANSITIONS, STEP_INITIAL, STEP_LABELS),
    }


def _marked(name: str) -> re.Pattern[str]:
    return re.compile(
        rf"(<!-- generated: {name} diagram.*?-->\n)(.*?)(\n<!-- end generated: {name} -->)",
        flags=re.DOTALL,
    )


def _replace_section(text: str, name: str, body: str) -> str:
    pattern = _marked(name)
    if pattern.search(text) is None:
        raise ValueError(f"the doc has no generated section {name!r}")
    # A function, not a replacement string: the body must not be read as a template.
    return pattern.sub(lambda m: m[1] + body + m[3], text)


def render_doc(text: str) -> str:
    """``text`` with every generated section replaced by its current rendering."""
    for name, body in sections().items():
        text = _replace_section(text, name, body)
    return text


def main(argv: Sequence[str] | None = None) -> int:
    """Rewrite the doc's diagrams (or, with ``--check``, exit 1 if they are stale)."""
    parser = argparse.ArgumentParser(prog="python -m orchestrator.machine.diagram")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 if stale")
    parser.add_argument("doc", nargs="?", type=Path, default=DOC)
    args = parser.parse_args(argv)
    text = args.doc.read_text()
    fresh = render_doc(text)
    if args.check:
        if fresh != text:
            print(f"{args.doc}: diagrams are stale; run {parser.prog}", file=sys.stderr)
            return 1
    elif fresh != text:
        args.doc.write_text(fresh)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
