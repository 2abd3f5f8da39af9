"""`docs/architecture.md` tells the truth about the import contracts; they cover every room."""

from __future__ import annotations

import configparser
import pkgutil

import orchestrator
from tests.support import architecture

#: Rooms that are tooling, or (the CLI) may import it.
PRODUCT_FREE = {"cli", "check", "bench", "harness"}


def _rooms() -> set[str]:
    return {module.name for module in pkgutil.iter_modules(orchestrator.__path__)}


def _contract(key: str) -> configparser.SectionProxy:
    parser = configparser.ConfigParser()
    parser.read(architecture.CONTRACTS)
    return parser[f"importlinter:contract:{key}"]


def _names(value: str) -> set[str]:
    return {
        line.strip().removeprefix("orchestrator.") for line in value.splitlines() if line.strip()
    }


def test_the_drawing_in_the_page_is_the_one_the_contracts_give() -> None:
    assert architecture.page_block() == architecture.render(), (
        "docs/architecture.md is out of date: python -m tests.support.architecture --write"
    )


def test_every_room_has_a_place_in_the_layers() -> None:
    layers, _, _ = architecture.read_contracts()
    placed = {room for layer in layers for room in layer}
    assert placed == _rooms()


def test_the_machine_is_forbidden_every_other_room() -> None:
    assert _names(_contract("machine")["forbidden_modules"]) == _rooms() - {"machine"}


def test_every_product_room_is_forbidden_the_tooling() -> None:
    tooling = _contract("tooling")
    assert _names(tooling["source_modules"]) == _rooms() - PRODUCT_FREE
    assert _names(tooling["forbidden_modules"]) == {"check", "bench", "harness"}
