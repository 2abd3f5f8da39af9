"""The drawing of the rooms in ``docs/architecture.md``, generated from ``.importlinter``.

The import contracts are the truth about which room may import which; the
page shows them. :func:`render` draws the layers contract (top to bottom,
each room importing only rooms below it) and lists every contract with its
ignored imports; ``tests/unit/test_architecture.py`` fails when the page's
block differs from it. After changing the contracts, rewrite the block:

    python -m tests.support.architecture --write
"""

from __future__ import annotations

import configparser
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONTRACTS = ROOT / ".importlinter"
PAGE = ROOT / "docs" / "architecture.md"
BEGIN = (
    "<!-- rooms: generated from .importlinter by `python -m tests.support.architecture --write` -->"
)
END = "<!-- rooms: end -->"


@dataclass(frozen=True)
class Contract:
    """One contract of ``.importlinter``: its name, its kind, the imports it lets pass."""

    name: str
    kind: str
    ignored: tuple[str, ...]


def _lines(value: str) -> list[str]:
    return [line.strip() for line in value.splitlines() if line.strip()]


def read_contracts(path: Path = CONTRACTS) -> tuple[list[list[str]], list[bool], list[Contract]]:
    """The layers (rooms per layer, top first), whether each layer's rooms are independent,
    and every contract."""
    parser = configparser.ConfigParser()
    parser.read(path)
    layers: list[list[str]] = []
    independent: list[bool] = []
    contracts: list[Contract] = []
    for section in parser.sections():
        if not section.startswith("importlinter:contract:"):
            continue
        body = parser[section]
        contracts.append(
            Contract(body["name"], body["type"], tuple(_lines(body.get("ignore_imports", ""))))
        )
        if body["type"] == "layers" and not layers:
            for layer in _lines(body["layers"]):
                apart = ":" not in layer
                separator = "|" if apart else ":"
                layers.append([room.strip() for room in layer.split(separator)])
                independent.append(apart)
    return layers, independent, contracts


def render(path: Path = CONTRACTS) -> str:
    """The generated block: the drawing of the layers, then the contracts."""
    layers, independent, contracts = read_contracts(path)
    rows = [
        ("   " if apart else " ~ ").join(rooms)
        for rooms, apart in zip(layers, independent, strict=True)
    ]
    width = max(len(row) for row in rows) + 4
    drawing = ["```text", "┌" + "─" * width + "┐"]
    for index, row in enumerate(rows):
        drawing.append("│  " + row.ljust(width - 2) + "│")
        if index < len(rows) - 1:
            drawing.append("├" + "─" * (width // 2 - 1) + "▼" + "─" * (width - width // 2) + "┤")
    drawing.append("└" + "─" * width + "┘")
    drawing.append("```")
    listed = ["", "The contracts (`lint-imports` runs them all):", ""]
    for contract in contracts:
        listed.append(f"- {contract.name} (*{contract.kind}*)")
        listed.extend(f"  - ignored for now: `{edge}`" for edge in contract.ignored)
    return "\n".join([BEGIN, *drawing, *listed, END])


def page_block(page: Path = PAGE) -> str:
    """The block as it stands in the page."""
    text = page.read_text()
    start = text.index(BEGIN)
    return text[start : text.index(END, start) + len(END)]


def write(page: Path = PAGE) -> None:
    """Replace the page's block with a freshly rendered one."""
    text = page.read_text()
    page.write_text(text.replace(page_block(page), render()))


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        write()
    else:
        print(render())
