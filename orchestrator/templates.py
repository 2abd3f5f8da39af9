"""Body templates: a string ``$.input.a.b`` or ``$.results.step.x`` is replaced by that value.

Templates only copy values by path; nothing is ever evaluated. Every other value
is literal.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

MAX_DEPTH = 10
_PREFIXES = ("$.input.", "$.results.")


@dataclass(frozen=True)
class Reference:
    text: str
    source: str  # "input" or "results"
    path: tuple[str, ...]

    @property
    def step(self) -> str:
        return self.path[0] if self.source == "results" else ""


class MissingValue(LookupError):
    """A template names a value the saga does not have."""

    def __init__(self, reference: str) -> None:
        super().__init__(f"{reference} has no value")
        self.reference = reference


def parse(value: Any) -> Reference | None:
    if not isinstance(value, str) or not value.startswith(_PREFIXES):
        return None
    source, _, rest = value[2:].partition(".")
    path = tuple(rest.split("."))
    if not all(path) or (source == "results" and len(path) < 1):
        return None
    return Reference(value, source, path)


def references(body: Any) -> Iterator[Reference]:
    """Every template reference inside ``body``."""
    if isinstance(body, dict):
        for item in body.values():
            yield from references(item)
    elif isinstance(body, list):
        for item in body:
            yield from references(item)
    elif (ref := parse(body)) is not None:
        yield ref


def depth(body: Any) -> int:
    if isinstance(body, dict):
        return 1 + max((depth(v) for v in body.values()), default=0)
    if isinstance(body, list):
        return 1 + max((depth(v) for v in body), default=0)
    return 0


def _lookup(root: Any, ref: Reference) -> Any:
    value = root
    for part in ref.path:
        if isinstance(value, dict) and part in value:
            value = value[part]
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            raise MissingValue(ref.text)
    return value


def render(body: Any, saga_input: Any, results: dict[str, Any]) -> Any:
    """``body`` with every reference replaced; raises :class:`MissingValue`."""
    if isinstance(body, dict):
        return {k: render(v, saga_input, results) for k, v in body.items()}
    if isinstance(body, list):
        return [render(v, saga_input, results) for v in body]
    ref = parse(body)
    if ref is None:
        return body
    return _lookup(saga_input if ref.source == "input" else results, ref)
