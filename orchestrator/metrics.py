"""Prometheus metrics of one orchestrator process, in its own registry.

A registry per process (not the global one) keeps several apps in one process
(``saga up``, tests) from colliding. Labels are bounded: never a saga id.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sagas_started = Counter("saga_started", "Sagas started", ["definition"], registry=r)
        self.sagas_finished = Counter(
            "saga_finished",
            "Sagas that reached a final or parked status",
            ["definition", "status"],
            registry=r,
        )
        self.step_calls = Counter(
            "saga_step_calls",
            "Participant calls by outcome",
            ["definition", "step", "phase", "outcome"],
            registry=r,
        )
        self.step_call_seconds = Histogram(
            "saga_step_call_duration_seconds",
            "Duration of one participant call",
            ["definition", "step", "phase"],
            registry=r,
            buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.version_conflicts = Counter(
            "saga_version_conflicts", "Writes that lost an optimistic version race", registry=r
        )
        self.lost_leases = Counter(
            "saga_leases_lost", "Sagas dropped because another worker took them over", registry=r
        )
        self.claimed = Counter("saga_claimed", "Sagas claimed by this worker", registry=r)
        self.faults_fired = Counter(
            "saga_faults_fired", "Transport faults injected", ["mode"], registry=r
        )
        self.database_commits = Counter(
            "saga_database_commits", "Write transactions committed by this process", registry=r
        )
        self.database_errors = Counter(
            "saga_database_errors", "Database operations that raised", ["operation"], registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
