"""A saga's timeline, drawn on the server as one inline SVG element from its history.

Pure: the history as the store's reader returns it and the definition's steps
in, a string out. The page marks the result safe, so every text taken from the
history (step names, errors, URLs, operators' names) is escaped here, and the
characters XML cannot carry at all are replaced: the drawing must stay
well-formed whatever a participant answered.

What it draws: one row per step in definition order (members of a parallel
group side by side under a "parallel" bracket, the pivot outlined), each row
with an action lane and, when the step was compensated, a compensation lane;
one bar per call attempt from its start to its end coloured by outcome, dashed
lines for the waits between attempts (backoff), hatched bars for the wait of an
accepted call for its callback, and vertical markers for transitions and
operators' actions.
"""

from __future__ import annotations

import html
import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestrator.machine.state import Plan, StepKind

__all__ = ["TimelineStep", "steps_of", "timeline_svg"]

SVG_NS = "http://www.w3.org/2000/svg"

#: Fill of a bar by outcome; classes carry the same names for the stylesheet.
OUTCOME_FILL = {
    "succeeded": "#2e9d4f",
    "rejected": "#d64545",
    "transient": "#f08c00",
    "accepted": "#3b73d9",
}
OTHER_FILL = "#8b8f97"

GUTTER = 190  # left column: bracket, step names, badges
RIGHT_PAD = 24  # room for the last tick label, centred on the plot's edge
MIN_WIDTH = GUTTER + RIGHT_PAD + 160
NAME_X = 18
NAME_CHARS = 19
LANE_H = 12
LANE_GAP = 2
ROW_PAD = 4
GROUP_GAP = 4
LEVEL_H = 12  # one line of marker labels
MAX_LEVELS = 4
AXIS_H = 16
BOTTOM_PAD = 6
MIN_BAR = 2.0
CHAR_W = 6.2  # a rough width of one character of a 10 px label, to keep labels apart
TITLE_CHARS = 160  # an error in a tooltip is cut here: 2,000 long errors would bloat the page
MIN_SPAN_S = 0.001

# XML 1.0 cannot carry these even as character references.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_TOKEN = re.compile(r"[a-z][a-z0-9_-]{0,31}")


@dataclass(frozen=True)
class TimelineStep:
    """One step of the definition, as the timeline draws it."""

    name: str
    #: ``compensatable``, ``pivot`` or ``retriable``.
    kind: str
    #: Index of the step's stage: the members of one parallel group share it.
    stage: int
    #: Completed by a callback after the participant accepted the call.
    callback: bool = False


def steps_of(plan: Plan) -> list[TimelineStep]:
    """The plan's steps in definition order, each with its stage."""
    stage_of = {index: stage for stage, members in enumerate(plan.stages) for index in members}
    return [
        TimelineStep(step.name, step.kind.value, stage_of[index], step.callback)
        for index, step in enumerate(plan.steps)
    ]


# --- the history, read -------------------------------------------------------------------


@dataclass(frozen=True)
class _Call:
    step: str
    phase: str
    attempt: int | None
    outcome: str
    start: float
    end: float
    duration_ms: float
    status: int | None
    error: str | None
    fault: str | None


@dataclass(frozen=True)
class _Marker:
    at: float
    css: str
    label: str
    title: str


@dataclass(frozen=True)
class _Callback:
    step: str
    attempt: int | None
    at: float
    outcome: str


@dataclass
class _History:
    calls: list[_Call] = field(default_factory=list)
    markers: list[_Marker] = field(default_factory=list)
    callbacks: list[_Callback] = field(default_factory=list)
    first: float = math.inf
    last: float = -math.inf

    def see(self, at: float) -> None:
        self.first = min(self.first, at)
        self.last = max(self.last, at)


def _instant(value: object) -> float | None:
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def _detail(event: Mapping[str, Any]) -> Mapping[str, Any]:
    detail = event.get("detail")
    return detail if isinstance(detail, Mapping) else {}


def _duration_ms(detail: Mapping[str, Any]) -> float:
    value = detail.get("duration_ms")
    if isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        return max(float(value), 0.0)
    return 0.0


def _step_name(event: Mapping[str, Any]) -> str:
    step = event.get("step")
    return "(saga)" if step is None else str(step)


def _call(event: Mapping[str, Any], at: float) -> _Call:
    detail = _detail(event)
    duration = _duration_ms(detail)
    return _Call(
        step=_step_name(event),
        phase="compensation" if event.get("phase") == "compensation" else "action",
        attempt=_int(event.get("attempt")),
        outcome=str(event.get("outcome") or "unknown"),
        start=at - duration / 1000,
        end=at,
        duration_ms=duration,
        status=_int(detail.get("status")),
        error=_text(detail.get("error")),
        fault=_text(detail.get("fault")),
    )


def _transition(detail: Mapping[str, Any], at: float) -> _Marker:
    to = str(detail.get("to", "?"))
    title = f"{detail.get('from', '?')} → {to}"
    error = detail.get("error")
    if isinstance(error, Mapping):
        title += f" · {error.get('step')} ({error.get('phase')}): {error.get('message')}"
    return _Marker(at, f"transition {_token(to)}", f"→ {to}", title)


def _operator(detail: Mapping[str, Any], at: float) -> _Marker:
    action = str(detail.get("action") or "operator")
    title = f"operator · {action}"
    if detail.get("by"):
        title += f" · by {detail['by']}"
    return _Marker(at, f"operator {_token(action)}", action, title)


def _read(events: Iterable[Mapping[str, Any]]) -> _History:
    history = _History()
    for event in events:
        at = _instant(event.get("at"))
        if at is None:
            continue
        history.see(at)
        kind = event.get("kind")
        if kind == "call":
            call = _call(event, at)
            history.calls.append(call)
            history.see(call.start)
        elif kind == "transition":
            history.markers.append(_transition(_detail(event), at))
        elif kind == "operator":
            history.markers.append(_operator(_detail(event), at))
        elif kind == "callback":
            outcome = str(event.get("outcome") or "unknown")
            history.callbacks.append(
                _Callback(_step_name(event), _int(event.get("attempt")), at, outcome)
            )
    return history


# --- text ----------------------------------------------------------------------------------


def _esc(value: object) -> str:
    """Text or attribute value, escaped for the page and for XML."""
    return html.escape(_NOT_XML.sub("\ufffd", str(value)), quote=True)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _token(value: str) -> str:
    """``value`` as a CSS class when it is a plain word, else ``other``."""
    return value if _TOKEN.fullmatch(value) else "other"


def _num(value: float) -> str:
    text = f"{value:.1f}"
    text = text.removesuffix(".0")
    return "0" if text == "-0" else text


def _ms(duration_ms: float) -> str:
    return f"{duration_ms:.1f} ms" if duration_ms < 1000 else f"{duration_ms / 1000:.2f} s"


def _seconds(span: float) -> str:
    if span >= 100:
        return f"{span:.0f}"
    return f"{span:.1f}" if span >= 10 else f"{span:.2f}"


def _fill(outcome: str) -> str:
    return OUTCOME_FILL.get(outcome, OTHER_FILL)


def _outcome_class(outcome: str) -> str:
    return outcome if outcome in OUTCOME_FILL else "other"


# --- geometry ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Scale:
    t0: float
    span: float
    x0: float
    plot_w: float

    def x(self, at: float) -> float:
        return self.x0 + (at - self.t0) / self.span * self.plot_w


@dataclass(frozen=True)
class _Row:
    step: TimelineStep
    known: bool
    actions: list[_Call]
    compensations: list[_Call]


@dataclass(frozen=True)
class _Box:
    row: _Row
    top: int
    action_y: int
    comp_y: int | None
    bottom: int


def _rows(steps: Sequence[TimelineStep], calls: Sequence[_Call]) -> list[_Row]:
    """One row per step in definition order, then any step the history names but the
    definition does not (a saga of an older version): its calls are still drawn."""
    by_step: dict[str, list[_Call]] = {}
    for call in calls:
        by_step.setdefault(call.step, []).append(call)
    rows: list[_Row] = []
    seen: set[str] = set()
    known = [(step, True) for step in steps]
    # A negative stage of its own never groups with anything.
    extra = [(TimelineStep(name, "unknown", -1 - i), False) for i, name in enumerate(by_step)]
    for step, is_known in itertools.chain(known, extra):
        if step.name in seen:
            continue
        seen.add(step.name)
        mine = by_step.get(step.name, [])
        rows.append(
            _Row(
                step,
                is_known,
                [c for c in mine if c.phase == "action"],
                [c for c in mine if c.phase == "compensation"],
            )
        )
    return rows


def _groups(rows: list[_Row]) -> list[list[_Row]]:
    return [list(members) for _, members in itertools.groupby(rows, key=lambda r: r.step.stage)]


def _boxes(groups: list[list[_Row]], top: int) -> tuple[list[list[_Box]], int]:
    y = top
    placed: list[list[_Box]] = []
    for group in groups:
        boxes: list[_Box] = []
        for row in group:
            row_top = y
            action_y = y + ROW_PAD
            y = action_y + LANE_H
            comp_y = None
            if row.compensations:
                comp_y = y + LANE_GAP
                y = comp_y + LANE_H
            y += ROW_PAD
            boxes.append(_Box(row, row_top, action_y, comp_y, y))
        placed.append(boxes)
        y += GROUP_GAP
    return placed, y


def _tick_step(span: float, ticks: float) -> tuple[float, int]:
    """A step of 1, 2 or 5 times a power of ten giving about ``ticks`` ticks, and the
    decimals its labels need."""
    raw = span / max(ticks, 1.0)
    exponent = math.floor(math.log10(raw))
    for mantissa in (1, 2, 5):
        if mantissa * 10.0**exponent >= raw * (1 - 1e-9):
            return mantissa * 10.0**exponent, max(0, -exponent)
    return 10.0 ** (exponent + 1), max(0, -(exponent + 1))


@dataclass(frozen=True)
class _PlacedMarker:
    marker: _Marker
    x: float
    #: Line of the label; ``None`` when every line was taken there (the tooltip remains).
    level: int | None
    anchor: str
    text_x: float


def _place_markers(markers: list[_Marker], scale: _Scale, width: int) -> list[_PlacedMarker]:
    """Markers in time order, each label on the first line where it overlaps no other."""
    ends: list[float] = []
    placed: list[_PlacedMarker] = []
    for marker in sorted(markers, key=lambda m: m.at):
        x = scale.x(marker.at)
        label_w = len(marker.label) * CHAR_W
        if x + 2 + label_w > width - 2:
            anchor, text_x, left, right = "end", x - 2, x - 2 - label_w, x - 2
        else:
            anchor, text_x, left, right = "start", x + 2, x + 2, x + 2 + label_w
        level = next((i for i, end in enumerate(ends) if left >= end + 4), None)
        if level is None and len(ends) < MAX_LEVELS:
            ends.append(right)
            level = len(ends) - 1
        elif level is not None:
            ends[level] = right
        placed.append(_PlacedMarker(marker, x, level, anchor, text_x))
    return placed


# --- drawing -------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Page:
    scale: _Scale
    width: int
    end: float
    callbacks: Mapping[tuple[str, int | None], list[_Callback]]


def _bar_title(call: _Call) -> str:
    parts = [call.step, call.phase]
    if call.attempt is not None:
        parts.append(f"attempt {call.attempt}")
    parts.append(call.outcome)
    if call.status is not None:
        parts.append(f"HTTP {call.status}")
    parts.append(_ms(call.duration_ms))
    if call.error:
        parts.append(_clip(call.error, TITLE_CHARS))
    if call.fault:
        parts.append(f"fault {_clip(call.fault, TITLE_CHARS)}")
    return " · ".join(parts)


def _bar(call: _Call, y: int, page: _Page) -> str:
    x1, x2 = page.scale.x(call.start), page.scale.x(call.end)
    attempt = "" if call.attempt is None else f' data-attempt="{call.attempt}"'
    return (
        f'<rect class="bar {_outcome_class(call.outcome)}" data-phase="{call.phase}"{attempt}'
        f' x="{_num(x1)}" y="{y}" width="{_num(max(x2 - x1, MIN_BAR))}" height="{LANE_H}"'
        f' fill="{_fill(call.outcome)}"><title>{_esc(_bar_title(call))}</title></rect>'
    )


def _backoff(before: _Call, after: _Call, y: int, page: _Page) -> str:
    mid = y + LANE_H // 2
    waited = _ms((after.start - before.end) * 1000)
    return (
        f'<line class="backoff" x1="{_num(page.scale.x(before.end))}" y1="{mid}"'
        f' x2="{_num(page.scale.x(after.start))}" y2="{mid}" stroke="#6b7280"'
        f' stroke-width="1" stroke-dasharray="3 2"><title>{_esc(f"waited {waited}")}</title></line>'
    )


def _callback_wait(call: _Call, after: _Call | None, y: int, page: _Page) -> list[str]:
    """The wait of an accepted call for its callback, and the callback's diamond."""
    answers = [c for c in page.callbacks.get((call.step, call.attempt), []) if c.at >= call.end]
    answer = answers[0] if answers else None
    if answer is not None:
        until, css = answer.at, "callback-wait"
        title = f"{call.step} · waited {_ms((answer.at - call.end) * 1000)} for the callback"
    else:
        # No completion recorded: the wait lasted at least until the next attempt
        # or, when there is none, until the last thing the history knows.
        until, css = (after.start if after is not None else page.end), "callback-wait open"
        title = f"{call.step} · no callback recorded"
    x1, x2 = page.scale.x(call.end), page.scale.x(max(until, call.end))
    out = [
        f'<rect class="{css}" x="{_num(x1)}" y="{y + 2}" width="{_num(max(x2 - x1, MIN_BAR))}"'
        f' height="{LANE_H - 4}" fill="url(#tl-hatch)" stroke="{OUTCOME_FILL["accepted"]}"'
        f' stroke-width="0.5"><title>{_esc(title)}</title></rect>'
    ]
    if answer is not None:
        mid = y + LANE_H // 2
        attempt = "" if answer.attempt is None else f" · attempt {answer.attempt}"
        tip = f"{answer.step} · callback{attempt} · {answer.outcome}"
        out.append(
            f'<path class="callback {_token(answer.outcome)}" d="M{_num(x2)},{mid - 6}'
            f' l5,6 l-5,6 l-5,-6 z" fill="{_fill(answer.outcome)}" stroke="#ffffff"'
            f' stroke-width="0.5"><title>{_esc(tip)}</title></path>'
        )
    return out


def _lane(calls: list[_Call], phase: str, y: int, page: _Page) -> list[str]:
    fill = "#f3f4f6" if phase == "action" else "#fbefef"
    out = [
        f'<rect class="lane {phase}" x="{page.scale.x0}" y="{y}" width="{_num(page.scale.plot_w)}"'
        f' height="{LANE_H}" fill="{fill}"/>'
    ]
    for index, call in enumerate(calls):
        after = calls[index + 1] if index + 1 < len(calls) else None
        if call.outcome == "accepted":
            out.extend(_callback_wait(call, after, y, page))
        elif after is not None and after.start > call.end:
            out.append(_backoff(call, after, y, page))
    out.extend(_bar(call, y, page) for call in calls)
    return out


def _row_label(box: _Box) -> list[str]:
    step = box.row.step
    name_y = box.action_y + LANE_H - 2
    out = [
        f'<text class="step-name" x="{NAME_X}" y="{name_y}" fill="#111827">'
        f"{_esc(_clip(step.name, NAME_CHARS))}<title>{_esc(step.name)}</title></text>"
    ]
    badge = "pivot" if step.kind == StepKind.PIVOT.value else None
    badge = badge or ("callback" if step.callback else None)
    badge = badge or (None if box.row.known else "unknown")
    if badge is not None:
        colour = "#7c3aed" if badge == "pivot" else "#6b7280"
        out.append(
            f'<text class="badge {_token(badge)}" x="{GUTTER - 8}" y="{name_y}"'
            f' text-anchor="end" font-size="9" fill="{colour}">{badge}</text>'
        )
    if box.comp_y is not None:
        out.append(
            f'<text class="lane-label" x="{NAME_X}" y="{box.comp_y + LANE_H - 3}"'
            f' font-size="9" fill="#6b7280">compensation</text>'
        )
    return out


def _row(box: _Box, page: _Page) -> list[str]:
    step, row = box.row.step, box.row
    pivot = step.kind == StepKind.PIVOT.value
    classes = "step" + (" pivot" if pivot else "") + ("" if row.known else " unknown")
    out = [
        f'<g class="{classes}" data-step="{_esc(step.name)}" data-kind="{_token(step.kind)}"'
        f' data-stage="{step.stage}">'
    ]
    if pivot:
        out.append(
            f'<rect class="row-outline pivot" x="{NAME_X - 4}" y="{box.top + 1}"'
            f' width="{_num(page.width - NAME_X + 2)}" height="{box.bottom - box.top - 2}"'
            f' rx="3" fill="none" stroke="#7c3aed" stroke-width="1.5"/>'
        )
    out.extend(_row_label(box))
    out.extend(_lane(row.actions, "action", box.action_y, page))
    if box.comp_y is not None:
        out.extend(_lane(row.compensations, "compensation", box.comp_y, page))
    out.append("</g>")
    return out


def _parallel(boxes: list[_Box], page: _Page) -> list[str]:
    top, bottom = boxes[0].top, boxes[-1].bottom
    mid = (top + bottom) / 2
    return [
        f'<g class="parallel-group" data-stage="{boxes[0].row.step.stage}">',
        f'<rect class="parallel-bg" x="0" y="{top}" width="{page.width}"'
        f' height="{bottom - top}" fill="#eef3fb"/>',
        f'<path class="parallel-bracket" d="M15,{top + 3} H11 V{bottom - 3} H15" fill="none"'
        f' stroke="#3b73d9" stroke-width="1.5"/>',
        f'<text class="parallel-label" x="9" y="{_num(mid)}" text-anchor="middle"'
        f' font-size="9" fill="#3b73d9" transform="rotate(-90 9 {_num(mid)})">parallel</text>',
        *itertools.chain.from_iterable(_row(box, page) for box in boxes),
        "</g>",
    ]


def _axis(page: _Page, label_y: int, top: int, bottom: int) -> list[str]:
    span = page.scale.span
    step, decimals = _tick_step(span, page.scale.plot_w / 90)
    out = [
        f'<line class="axis" x1="{page.scale.x0}" y1="{top}"'
        f' x2="{_num(page.scale.x0 + page.scale.plot_w)}" y2="{top}" stroke="#9ca3af"/>'
    ]
    for i in range(int(span / step * (1 + 1e-9)) + 1):
        x = _num(page.scale.x(page.scale.t0 + i * step))
        out.append(
            f'<line class="grid" x1="{x}" y1="{top}" x2="{x}" y2="{bottom}" stroke="#e5e7eb"/>'
        )
        out.append(
            f'<text class="tick" x="{x}" y="{label_y}" text-anchor="middle" font-size="10"'
            f' fill="#4b5563">{i * step:.{decimals}f} s</text>'
        )
    return out


def _markers(placed: list[_PlacedMarker], top: int, bottom: int) -> list[str]:
    out: list[str] = []
    for p in placed:
        operator = p.marker.css.startswith("operator")
        colour = "#b45309" if operator else "#4b5563"
        x = _num(p.x)
        text, y1, css = "", top, ""
        if p.level is not None:
            text_y = p.level * LEVEL_H + LEVEL_H - 2
            y1 = text_y + 2
            text = (
                f'<text x="{_num(p.text_x)}" y="{text_y}" text-anchor="{p.anchor}"'
                f' font-size="10" fill="{colour}">{_esc(p.marker.label)}</text>'
            )
        else:
            css = " unlabelled"
        out.append(
            f'<g class="marker {p.marker.css}{css}"><title>{_esc(p.marker.title)}</title>'
            f'<line x1="{x}" y1="{y1}" x2="{x}" y2="{bottom}" stroke="{colour}"'
            f' stroke-width="1" stroke-opacity="0.8"/>{text}</g>'
        )
    return out


_DEFS = (
    '<defs><pattern id="tl-hatch" width="6" height="6" patternUnits="userSpaceOnUse"'
    ' patternTransform="rotate(45)"><rect width="6" height="6" fill="#dbe6fb"/>'
    '<line x1="0" y1="0" x2="0" y2="6" stroke="#3b73d9" stroke-width="2"/></pattern></defs>'
)


def _open(width: int, height: int, css: str, label: str) -> str:
    return (
        f'<svg xmlns="{SVG_NS}" class="{css}" role="img" aria-label="{_esc(label)}"'
        f' width="{width}" height="{height}" viewBox="0 0 {width} {height}"'
        ' font-family="system-ui, sans-serif" font-size="11">'
    )


def _empty(width: int) -> str:
    return (
        _open(width, 32, "timeline empty", "timeline: no calls yet")
        + '<text x="8" y="20" fill="#6b7280">no calls yet</text></svg>'
    )


def timeline_svg(
    events: Iterable[Mapping[str, Any]], steps: Sequence[TimelineStep], *, width: int = 960
) -> str:
    """The saga's timeline as one ``<svg>`` element, every text in it escaped.

    ``events`` is the saga's history in recording order (``SagaReader.history``),
    ``steps`` the definition's steps (``steps_of``). Events of unknown kinds and
    events without a readable time are left out; the same input always gives
    the same string.
    """
    width = max(int(width), MIN_WIDTH)
    history = _read(events)
    if not history.calls:
        return _empty(width)
    span = max(history.last - history.first, MIN_SPAN_S)
    scale = _Scale(history.first, span, float(GUTTER), float(width - GUTTER - RIGHT_PAD))
    callbacks: dict[tuple[str, int | None], list[_Callback]] = {}
    for callback in history.callbacks:
        callbacks.setdefault((callback.step, callback.attempt), []).append(callback)
    page = _Page(scale, width, history.last, callbacks)

    placed = _place_markers(history.markers, scale, width)
    levels = 1 + max((p.level for p in placed if p.level is not None), default=-1)
    axis_top = levels * LEVEL_H + 4
    rows_top = axis_top + AXIS_H
    groups, rows_bottom = _boxes(_groups(_rows(steps, history.calls)), rows_top)
    height = rows_bottom + BOTTOM_PAD

    count = len(history.calls)
    label = f"timeline of {count} call{'' if count == 1 else 's'} over {_seconds(span)} s"
    out = [_open(width, height, "timeline", label), _DEFS]
    out.extend(_axis(page, axis_top + 11, rows_top, rows_bottom))
    for boxes in groups:
        if len(boxes) > 1:
            out.extend(_parallel(boxes, page))
        else:
            out.extend(_row(boxes[0], page))
    out.extend(_markers(placed, axis_top, rows_bottom))
    out.append("</svg>")
    return "\n".join(out)
