"""The campaign's fault rules in the running system: install, count, remove.

Transport rules go to the orchestrator (``POST /v1/faults``: stored in its
database, so every worker applies them and their ``fired`` counts survive
kills); in-service rules go to each service's own board (``POST /_faults``).
Only the rules the campaign installed are counted and removed, so a campaign
against a shared database leaves other people's rules alone.

A removed rule takes its ``fired`` count with it, so :meth:`CampaignFaults.clear`
reads the counts first and keeps them as the campaign's final figures.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from orchestrator.check import figures
from orchestrator.check.load import ApiClient
from orchestrator.check.schedule import FaultRule

Boards = dict[str, list[dict[str, Any]]]


@dataclass
class FiredCounts:
    """Every rule as last read, with its ``fired`` count."""

    transport: list[dict[str, Any]] = field(default_factory=list)
    """``GET /v1/faults`` items (the campaign's rules and any others)."""
    service: Boards = field(default_factory=dict)
    """Service name -> its ``GET /_faults``."""


class CampaignFaults:
    """The schedule's rules, installed in the orchestrator and in the services."""

    def __init__(
        self, api: ApiClient, participants: Mapping[str, str], rules: Sequence[FaultRule]
    ) -> None:
        self.api = api
        self.participants = participants
        self.rules = rules
        self.transport_ids: list[int] = []
        self.final = FiredCounts()
        #: Boards of service incarnations that were killed: their counts died with them.
        self.buried: Boards = {}
        self._last: Boards = {}

    async def install(self) -> None:
        """Post every rule where it belongs."""
        async with httpx.AsyncClient() as http:
            for rule in self.rules:
                if rule.layer == "transport":
                    created = await self.api.request(
                        "POST", "/v1/faults", ok=(201,), json=rule.body()
                    )
                    self.transport_ids.append(int(created.json()["id"]))
                else:
                    await self._post(http, rule)

    async def _post(self, http: httpx.AsyncClient, rule: FaultRule) -> None:
        url = self.participants[str(rule.participant)]
        (await http.post(f"{url}/_faults", json=rule.body())).raise_for_status()

    async def bury(self, service: str) -> None:
        """Keep ``service``'s counts before it is killed (its board dies with it)."""
        url = self.participants[service]
        async with httpx.AsyncClient() as http:
            board = (await http.get(f"{url}/_faults", timeout=10)).json()
        self.buried.setdefault(service, []).extend(board)
        self._last.pop(service, None)

    async def reinstall(self, service: str) -> None:
        """Post ``service``'s rules again to its new incarnation."""
        async with httpx.AsyncClient() as http:
            for rule in self.rules:
                if rule.layer == "service" and rule.participant == service:
                    await self._post(http, rule)

    async def read(self) -> FiredCounts:
        """The rules as they are now, with their counts."""
        transport = (await self.api.request("GET", "/v1/faults")).json()["items"]
        boards: Boards = {}
        async with httpx.AsyncClient() as http:
            for name, url in self.participants.items():
                # One being restarted cannot answer: its last board stands for it meanwhile.
                with contextlib.suppress(httpx.HTTPError):
                    self._last[name] = (await http.get(f"{url}/_faults", timeout=10)).json()
                boards[name] = [*self.buried.get(name, []), *self._last.get(name, [])]
        return FiredCounts(transport, boards)

    def fired_by_mode(self, counts: FiredCounts) -> dict[str, dict[str, int]]:
        """Firings of the campaign's rules, per layer and mode."""
        return {
            "transport": figures.transport_fired(counts.transport, self.transport_ids),
            "service": figures.service_fired(counts.service),
        }

    async def count(self) -> int:
        """How often the campaign's rules have fired so far, all layers together."""
        fired = self.fired_by_mode(await self.read())
        return sum(fired["transport"].values()) + sum(fired["service"].values())

    async def clear(self) -> None:
        """Keep the final counts, then remove the campaign's rules everywhere."""
        self.final = await self.read()
        for rule_id in self.transport_ids:
            await self.api.request("DELETE", f"/v1/faults/{rule_id}", ok=(200, 404))
        async with httpx.AsyncClient() as http:
            for url in self.participants.values():
                (await http.delete(f"{url}/_faults", timeout=10)).raise_for_status()
