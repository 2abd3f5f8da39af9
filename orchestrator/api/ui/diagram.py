"""A saga definition's steps drawn as a diagram: one inline ``<svg>``, made on the server.

:func:`definition_svg` lays the stages out left to right (a parallel group's
members stacked in one column), wraps to a new row when the width runs out,
and marks what a reader needs to see what is undone and what is not: each
compensatable step's undo (``↶ /path``) under its box, the pivot's thick
outline, the retriable tail after it on a tinted band ("retried until done"),
and callback steps dashed with a badge. Elements carry CSS classes (``box
compensatable``, ``box pivot``, ``box retriable``, ``callback``, ``arrow``,
``parallel``) for the page's stylesheet, and inline colours so the drawing
stands alone. The output depends only on the definition and the width.

The page marks the result safe, so every text taken from the definition goes
through :func:`html.escape` here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape
from itertools import pairwise

from orchestrator.definitions import SagaDefinition, Step
from orchestrator.machine import StepKind

__all__ = ["definition_svg"]

# Geometry, in SVG user units (pixels at scale 1).
# The connector between rows runs down the left margin, clear of a group's bracket.
_MARGIN = 28
_BOX_W = 154
_BOX_H = 86
_UNDO_H = 18  # the line under a box: its compensation, or that it has none
_GAP = 32  # between columns: room for an arrow
_MEMBER_GAP = 12  # between a parallel group's members
_BRACKET = 8  # how far a group's brackets stand off its boxes
_BAND = 40  # above a row with labels ("retried until done", "parallel")
_NO_BAND = 10
_ROW_GAP = 28
_PAD = 8  # inside a box
_HEAD = 7  # arrowhead length
_TAIL_PAD = 10  # how far the tail's band stands off its stages
_WRAP_X = 7  # where the connector between rows comes down

_SANS = "system-ui, -apple-system, 'Segoe UI', sans-serif"
_MONO = "ui-monospace, SFMono-Regular, Menlo, monospace"
_INK = "#1f2328"
_MUTED = "#57606a"
_ARROW = "#6e7781"


@dataclass(frozen=True)
class _Look:
    fill: str
    stroke: str
    stroke_width: str


_LOOKS = {
    StepKind.COMPENSATABLE: _Look("#eef3fc", "#3567c4", "1.5"),
    StepKind.PIVOT: _Look("#fff3df", "#b86e00", "3.5"),
    StepKind.RETRIABLE: _Look("#e9f6ed", "#2e8049", "1.5"),
}
_CALLBACK_DASH = "6 4"
_CALLBACK_FILL = "#efe7fb"
_CALLBACK_INK = "#5b35a0"
_TAIL_FILL = "#f3faf5"
_TAIL_STROKE = "#9fd3ae"
_TAIL_INK = "#2e8049"


def definition_svg(definition: SagaDefinition, *, width: int = 960) -> str:
    """The definition's steps as one ``<svg>`` element, at most ``width`` wide.

    As many stages as fit go on a row (at least one, so a very small width
    gives a wider drawing), and rows are balanced (six stages in two rows of
    three, not five and one). The element's ``width``/``height`` are what the
    drawing needs, with a matching ``viewBox`` so a stylesheet may scale it.
    """
    stages = definition.stages()
    pivot = _pivot_stage(stages)
    rows = _rows(len(stages), _columns_that_fit(width))
    placed: list[_Placed] = []
    top = _MARGIN
    for row in rows:
        labelled = any(len(stages[i]) > 1 or (pivot is not None and i > pivot) for i in row)
        placed.extend(_place_row(stages, row, top, _BAND if labelled else _NO_BAND))
        top = max(p.bottom for p in placed) + _ROW_GAP
    content_w = 2 * _MARGIN + len(rows[0]) * _BOX_W + (len(rows[0]) - 1) * _GAP
    legend, legend_w, legend_h = _legend(top, content_w)
    svg_w = max(content_w, legend_w)
    svg_h = top + legend_h + _MARGIN
    body = [
        *_tail_bands(placed, pivot),
        *_arrows(placed),
        *(_stage(p) for p in placed),
        legend,
    ]
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="saga-diagram" role="img"'
        f' aria-label="{escape(_summary(definition, stages, pivot))}"'
        f' width="{svg_w}" height="{svg_h}" viewBox="0 0 {svg_w} {svg_h}"'
        f' font-family="{_SANS}" fill="{_INK}">' + "".join(body) + "</svg>"
    )


@dataclass(frozen=True)
class _Placed:
    """A stage where it is drawn: its column's left edge, its top, its arrows' height."""

    index: int
    steps: list[Step]
    x: int
    top: int
    anchor: int  # the y where arrows come in and go out
    row_top: int

    @property
    def grouped(self) -> bool:
        return len(self.steps) > 1

    @property
    def bottom(self) -> int:
        return self.top + _stage_height(self.steps)

    @property
    def left(self) -> int:
        return self.x - _BRACKET if self.grouped else self.x

    @property
    def right(self) -> int:
        return self.x + _BOX_W + (_BRACKET if self.grouped else 0)


def _columns_that_fit(width: int) -> int:
    return max(1, (width - 2 * _MARGIN + _GAP) // (_BOX_W + _GAP))


def _rows(count: int, columns: int) -> list[list[int]]:
    per_row = math.ceil(count / math.ceil(count / columns))
    return [list(range(i, min(i + per_row, count))) for i in range(0, count, per_row)]


def _pivot_stage(stages: Sequence[Sequence[Step]]) -> int | None:
    for i, stage in enumerate(stages):
        if any(s.kind is StepKind.PIVOT for s in stage):
            return i
    return None


def _stage_height(steps: Sequence[Step]) -> int:
    return len(steps) * (_BOX_H + _UNDO_H) + (len(steps) - 1) * _MEMBER_GAP


def _anchor_offset(steps: Sequence[Step]) -> int:
    # A single box is met at its middle; a group at its brackets' middle.
    return (_stage_height(steps) - _UNDO_H) // 2


def _place_row(
    stages: Sequence[list[Step]], row: list[int], row_top: int, band: int
) -> list[_Placed]:
    # Stages of a row share one anchor height, so arrows between them are straight.
    anchor = row_top + band + max(_anchor_offset(stages[i]) for i in row)
    return [
        _Placed(
            index=i,
            steps=stages[i],
            x=_MARGIN + column * (_BOX_W + _GAP),
            top=anchor - _anchor_offset(stages[i]),
            anchor=anchor,
            row_top=row_top,
        )
        for column, i in enumerate(row)
    ]


def _summary(
    definition: SagaDefinition, stages: Sequence[Sequence[Step]], pivot: int | None
) -> str:
    steps = definition.flat_steps()
    parts = [f"{definition.name}: {_count(len(steps), 'step')}"]
    groups = sum(1 for stage in stages if len(stage) > 1)
    if groups:
        parts.append(_count(groups, "parallel group"))
    callbacks = sum(1 for s in steps if s.completion == "callback")
    if callbacks:
        parts.append(_count(callbacks, "callback step"))
    if pivot is None:
        parts.append("no pivot")
    else:
        name = next(s.name for s in stages[pivot] if s.kind is StepKind.PIVOT)
        parts.append(f"pivot {name}")
    return ", ".join(parts)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _tail_bands(placed: Sequence[_Placed], pivot: int | None) -> list[str]:
    """The tinted band behind the stages after the pivot, one per row they are on."""
    if pivot is None:
        return []
    by_row: dict[int, list[_Placed]] = {}
    for p in placed:
        if p.index > pivot:
            by_row.setdefault(p.row_top, []).append(p)
    out = []
    for row_top, members in by_row.items():
        x = members[0].left - _TAIL_PAD
        w = members[-1].right + _TAIL_PAD - x
        h = max(m.bottom for m in members) + 4 - row_top
        out.append(
            f'<g class="tail"><rect class="tail-band" x="{x}" y="{row_top}" width="{w}"'
            f' height="{h}" rx="10" fill="{_TAIL_FILL}" stroke="{_TAIL_STROKE}"'
            f' stroke-dasharray="4 3"/>'
            + _text(x + 10, row_top + 14, "retried until done", size=11, fill=_TAIL_INK, bold=True)
            + "</g>"
        )
    return out


def _arrows(placed: Sequence[_Placed]) -> list[str]:
    out = []
    for a, b in pairwise(placed):
        if a.row_top == b.row_top:
            out.append(_arrow(f"M{a.right} {a.anchor} H{b.left - _HEAD}", b.left, b.anchor))
        else:
            # To the next row: out to the right, down under this row, back to the
            # left margin, down to the next row's anchor, into its first stage.
            turn = max(p.bottom for p in placed if p.row_top == a.row_top) + _ROW_GAP // 2
            path = (
                f"M{a.right} {a.anchor} H{a.right + _GAP // 2} V{turn}"
                f" H{_WRAP_X} V{b.anchor} H{b.left - _HEAD}"
            )
            out.append(_arrow(path, b.left, b.anchor))
    return out


def _arrow(path: str, tip_x: int, tip_y: int) -> str:
    head = f"{tip_x},{tip_y} {tip_x - _HEAD},{tip_y - 4} {tip_x - _HEAD},{tip_y + 4}"
    return (
        f'<g class="arrow"><path d="{path}" fill="none" stroke="{_ARROW}" stroke-width="1.5"/>'
        f'<polygon points="{head}" fill="{_ARROW}"/></g>'
    )


def _stage(p: _Placed) -> str:
    boxes = "".join(
        _box(step, p.x, p.top + i * (_BOX_H + _UNDO_H + _MEMBER_GAP))
        for i, step in enumerate(p.steps)
    )
    if not p.grouped:
        return boxes
    top, bottom = p.top, p.bottom - _UNDO_H
    lx, rx = p.x - _BRACKET, p.x + _BOX_W + _BRACKET
    brackets = (
        f'<path class="bracket" d="M{lx + 5} {top} H{lx} V{bottom} H{lx + 5}'
        f' M{rx - 5} {top} H{rx} V{bottom} H{rx - 5}" fill="none" stroke="{_MUTED}"'
        f' stroke-width="1.5"/>'
    )
    label = _text(
        p.x + _BOX_W // 2,
        top - 12,
        f"parallel · {len(p.steps)} at once",
        size=11,
        fill=_MUTED,
        bold=True,
        cls="parallel-label",
        middle=True,
    )
    return f'<g class="parallel">{label}{brackets}{boxes}</g>'


def _box(step: Step, x: int, y: int) -> str:
    kind = StepKind(step.kind)
    look = _LOOKS[kind]
    callback = step.completion == "callback"
    classes = f"box {kind.value}" + (" callback" if callback else "")
    dash = f' stroke-dasharray="{_CALLBACK_DASH}"' if callback else ""
    inner = _BOX_W - 2 * _PAD
    parts = [
        f"<title>{escape(_tooltip(step))}</title>",
        f'<rect class="{classes}" x="{x}" y="{y}" width="{_BOX_W}" height="{_BOX_H}" rx="6"'
        f' fill="{look.fill}" stroke="{look.stroke}" stroke-width="{look.stroke_width}"{dash}/>',
        _text(x + _PAD, y + 15, kind.value, size=10, fill=look.stroke, bold=True, cls="kind"),
        _text(x + _PAD, y + 33, _fit(step.name, inner, 13 * 0.62), size=13, bold=True, cls="name"),
        _text(x + _PAD, y + 49, _fit(step.participant, inner, 11 * 0.56), size=11, fill=_MUTED),
        _text(x + _PAD, y + 65, _fit(step.action.path, inner, 11 * 0.6), size=11, mono=True),
        _text(x + _PAD, y + 79, _fit(_limits(step), inner, 10 * 0.56), size=10, fill=_MUTED),
    ]
    if callback:
        parts.append(_badge(x + _BOX_W - 10, y - 7))
    parts.append(_undo_line(step, kind, x, y + _BOX_H + 13))
    return f'<g class="step {kind.value}" data-step="{escape(step.name)}">{"".join(parts)}</g>'


def _undo_line(step: Step, kind: StepKind, x: int, baseline: int) -> str:
    inner = _BOX_W - 2 * _PAD
    if step.compensation is not None:
        text = _fit(f"↶ {step.compensation.path}", inner, 10 * 0.6)
        return _text(x + _PAD, baseline, text, size=10, mono=True, cls="compensation")
    if kind is StepKind.PIVOT:
        return _text(x + _PAD, baseline, "no undo: point of no return", size=10, cls="no-undo")
    if kind is StepKind.COMPENSATABLE:
        # Only an unvalidated definition gets here; say so rather than draw nothing.
        return _text(x + _PAD, baseline, "no compensation", size=10, cls="no-undo")
    return ""


def _badge(right: int, top: int) -> str:
    w, h = 52, 14
    return (
        f'<g class="badge callback"><rect x="{right - w}" y="{top}" width="{w}" height="{h}"'
        f' rx="7" fill="{_CALLBACK_FILL}" stroke="{_CALLBACK_INK}" stroke-width="1"/>'
        + _text(right - w // 2, top + 10, "callback", size=9, fill=_CALLBACK_INK, middle=True)
        + "</g>"
    )


def _limits(step: Step) -> str:
    tries = step.retry.max_attempts
    noun = "try" if tries == 1 else "tries"
    return f"{tries} {noun} · {_duration(step.timeout_ms)} timeout"


def _duration(ms: int) -> str:
    if ms < 1000:
        return f"{ms} ms"
    if ms % 60_000 == 0:
        return f"{ms // 60_000} min"
    seconds = ms / 1000
    return f"{seconds:g} s"


def _tooltip(step: Step) -> str:
    lines = [
        f"{step.name} ({step.kind.value}) at {step.participant}",
        f"action: {step.action.path}",
        f"compensation: {step.compensation.path if step.compensation else 'none'}",
        f"completion: {step.completion}",
        f"retry: up to {step.retry.max_attempts} attempts; timeout {_duration(step.timeout_ms)}",
    ]
    return "\n".join(lines)


def _fit(text: str, room: int, char_width: float) -> str:
    """``text`` cut to what fits in ``room`` units (an estimate: no font metrics here)."""
    chars = int(room / char_width)
    return text if len(text) <= chars else text[: chars - 1] + "…"


def _text(
    x: int,
    y: int,
    content: str,
    *,
    size: int,
    fill: str = _INK,
    bold: bool = False,
    mono: bool = False,
    cls: str = "",
    middle: bool = False,
) -> str:
    attrs = f'x="{x}" y="{y}" font-size="{size}" fill="{fill}"'
    if cls:
        attrs += f' class="{cls}"'
    if bold:
        attrs += ' font-weight="600"'
    if mono:
        attrs += f' font-family="{_MONO}"'
    if middle:
        attrs += ' text-anchor="middle"'
    return f"<text {attrs}>{escape(content)}</text>"


_LEGEND = (
    ("compensatable", "compensatable: undone if the saga fails"),
    ("pivot", "pivot: the point of no return"),
    ("retriable", "retriable: retried until done"),
    ("callback", "callback: completes later"),
    ("compensation", "↶ the call that undoes it"),
)


def _legend(top: int, width: int) -> tuple[str, int, int]:
    """The legend's rows of samples from ``top``: its markup, width and height."""
    x, y, widest = _MARGIN, top, 0
    items = []
    for key, label in _LEGEND:
        sample = 0 if key == "compensation" else 32
        item_w = sample + math.ceil(len(label) * 11 * 0.52) + 20
        if x > _MARGIN and x + item_w > width - _MARGIN:
            x, y = _MARGIN, y + 22
        items.append(
            f'<g class="legend-item {key}">{_swatch(key, x, y)}'
            + _text(x + sample, y + 12, label, size=11, fill=_MUTED)
            + "</g>"
        )
        x += item_w
        widest = max(widest, x - 20 + _MARGIN)
    return '<g class="legend">' + "".join(items) + "</g>", widest, y + 16 - top


def _swatch(key: str, x: int, y: int) -> str:
    if key == "compensation":
        return ""
    if key == "callback":
        look = _Look("#ffffff", _CALLBACK_INK, "1.5")
        dash = f' stroke-dasharray="{_CALLBACK_DASH}"'
    else:
        look = _LOOKS[StepKind(key)]
        dash = ""
    return (
        f'<rect class="swatch {key}" x="{x}" y="{y + 1}" width="26" height="14" rx="3"'
        f' fill="{look.fill}" stroke="{look.stroke}" stroke-width="{look.stroke_width}"{dash}/>'
    )
