"""Participant name -> base URLs, picked round-robin."""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Mapping, Sequence

from orchestrator.errors import NotFound


class Routing:
    """Each call starts at the next base URL; failover walks the rest in order."""

    def __init__(self, participants: Mapping[str, Sequence[str]]) -> None:
        self.participants = {name: list(urls) for name, urls in participants.items()}
        self._counters = {name: itertools.count() for name in self.participants}

    def names(self) -> set[str]:
        return set(self.participants)

    def candidates(self, participant: str) -> Iterator[str]:
        urls = self.participants.get(participant)
        if not urls:
            raise NotFound(f"unknown participant {participant!r}")
        first = next(self._counters[participant]) % len(urls)
        for offset in range(len(urls)):
            yield urls[(first + offset) % len(urls)]
