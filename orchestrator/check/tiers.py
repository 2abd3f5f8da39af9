"""Named campaign presets: ``saga check --tier ci|campaign|soak``.

A tier is a documented set of options, so that "the soak run passed" names
one experiment that anyone can repeat. Options given on the command line next
to ``--tier`` override the tier's value for that option only.

- ``ci`` — what the test suite runs on every push: a few hundred sagas in
  about two minutes on two cores, with every fault mode, kills, a zombie and a
  database crash.
- ``campaign`` — the 1,000-saga run that a change to the engine must pass
  before it lands (about a minute of load).
- ``soak`` — 10,000 sagas, 100 in flight, a quarter of the calls faulted in
  every mode, 4 workers, 20 worker kills, 3 database crashes and 2 workers
  paused past twice their lease (zombies). Tens of minutes.

All three run every built-in definition (``order``, ``order_parallel``,
``order_async``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from types import MappingProxyType
from typing import Any

from orchestrator.check.config import DEFINITIONS, CampaignConfig


@dataclass(frozen=True)
class Tier:
    """One preset: its name, what it is for, and the options it sets."""

    name: str
    purpose: str
    options: Mapping[str, Any]

    def config(self, **overrides: Any) -> CampaignConfig:
        """The campaign this tier runs, with ``overrides`` on top."""
        return replace(CampaignConfig(), **{**self.options, **overrides})


_ALL = tuple(sorted(DEFINITIONS))

TIERS: Mapping[str, Tier] = MappingProxyType(
    {
        "ci": Tier(
            "ci",
            "what the test suite runs on every push (about two minutes on two cores)",
            {
                "sagas": 240,
                "concurrency": 20,
                "fault_rate": 0.2,
                "workers": 2,
                "kills": 3,
                "zombies": 1,
                "db_crashes": 1,
                "seed": 20261124,
                "definitions": _ALL,
                "time_limit_s": 300.0,
            },
        ),
        "campaign": Tier(
            "campaign",
            "the 1,000-saga run a change to the engine passes before it lands",
            {
                "sagas": 1000,
                "concurrency": 50,
                "fault_rate": 0.25,
                "workers": 2,
                "kills": 5,
                "zombies": 1,
                "db_crashes": 1,
                "seed": 1,
                "definitions": _ALL,
                "time_limit_s": 900.0,
            },
        ),
        "soak": Tier(
            "soak",
            "10,000 sagas under every fault, 20 kills, 3 database crashes, 2 zombies",
            {
                "sagas": 10_000,
                "concurrency": 100,
                "fault_rate": 0.25,
                "workers": 4,
                "kills": 20,
                "zombies": 2,
                "db_crashes": 3,
                "seed": 7,
                "definitions": _ALL,
                "time_limit_s": 5400.0,
            },
        ),
    }
)
"""Every tier by name."""


def tier(name: str) -> Tier:
    """The tier called ``name`` (``KeyError`` naming the known ones if there is none)."""
    try:
        return TIERS[name]
    except KeyError:
        raise KeyError(f"unknown tier {name!r} (known: {', '.join(TIERS)})") from None
