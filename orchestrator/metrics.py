"""Prometheus metrics of one orchestrator process, in its own registry.

A registry per process (not the global one) keeps several apps in one process
(``saga up``, tests) from colliding. Labels are bounded: never a saga id.

Counters and histograms count what *this process* did: scrape every replica
and ``sum`` them. The gauges read from the database at scrape time
(``saga_sagas``, ``saga_oldest_due_seconds``) describe the whole system, the
same from every replica: take their ``max``. ``saga_database_up`` says whether
that read succeeded, so it is per process: a replica cut off from the database
shows 0 while the others show 1.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

_SECONDS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


class Metrics:
    """Every metric the orchestrator exports (see README, "Observe")."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sagas_started = Counter("saga_started", "Sagas started", ["definition"], registry=r)
        self.sagas_finished = Counter(
            "saga_finished",
            "Sagas that reached completed, compensated or failed (parked)",
            ["definition", "status"],
            registry=r,
        )
        self.saga_seconds = Histogram(
            "saga_duration_seconds",
            "From start to completed, compensated or failed",
            ["definition", "status"],
            registry=r,
            buckets=_SECONDS,
        )
        self.step_calls = Counter(
            "saga_step_calls",
            "Participant calls by outcome (succeeded, rejected, transient, accepted)",
            ["definition", "participant", "step", "phase", "outcome"],
            registry=r,
        )
        self.step_call_seconds = Histogram(
            "saga_step_call_duration_seconds",
            "Duration of one participant call",
            ["definition", "step", "phase"],
            registry=r,
            buckets=(0.002, *_SECONDS),
        )
        self.step_retries = Counter(
            "saga_step_retries",
            "Calls that were a retry (attempt > 1)",
            ["definition", "step", "phase"],
            registry=r,
        )
        self.compensations = Counter(
            "saga_compensations",
            "Steps compensated successfully",
            ["definition", "step"],
            registry=r,
        )
        self.version_conflicts = Counter(
            "saga_version_conflicts", "Writes that lost an optimistic version race", registry=r
        )
        self.lost_leases = Counter(
            "saga_leases_lost", "Sagas dropped because another worker took them over", registry=r
        )
        self.takeovers = Counter(
            "saga_lease_takeovers",
            "Sagas claimed after another worker's lease ran out (that worker died or stalled)",
            registry=r,
        )
        self.calls_withheld = Counter(
            "saga_calls_withheld",
            "Participant calls not made: this worker's lease had run out by its own clock",
            registry=r,
        )
        self.zombie_calls = Counter(
            "saga_zombie_calls",
            "Participant calls made after this worker's lease had run out by its own clock "
            "(should stay 0: such calls are withheld)",
            registry=r,
        )
        self.broker_published = Counter(
            "saga_broker_published",
            "Commands published to a broker participant's queue (attempts sent)",
            ["participant"],
            registry=r,
        )
        self.broker_confirmed = Counter(
            "saga_broker_confirmed",
            "Commands the broker confirmed (publisher confirms)",
            ["participant"],
            registry=r,
        )
        self.broker_replies = Counter(
            "saga_broker_replies",
            "Replies from broker participants: matched (answered a waiting attempt), "
            "late (after its attempt timed out), duplicate, unknown",
            ["participant", "kind"],
            registry=r,
        )
        self.claimed = Counter("saga_claimed", "Sagas claimed by this worker", registry=r)
        self.claim_batch = Histogram(
            "saga_claim_batch_size",
            "Sagas per claim query",
            registry=r,
            buckets=(0, 1, 2, 5, 10, 20, 50, 100, 200),
        )
        self.claim_seconds = Histogram(
            "saga_claim_duration_seconds",
            "Latency of one claim query",
            registry=r,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
        )
        self.faults_fired = Counter(
            "saga_faults_fired", "Transport faults injected", ["mode"], registry=r
        )
        self.database_commits = Counter(
            "saga_database_commits", "Write transactions committed by this process", registry=r
        )
        self.database_errors = Counter(
            "saga_database_errors", "Database operations that raised", ["operation"], registry=r
        )
        self.pool_in_use = Gauge(
            "saga_database_pool_in_use", "Database connections checked out now", registry=r
        )
        self.sagas = Gauge(
            "saga_sagas",
            "Sagas by status now, read from the database (the same on every replica)",
            ["status"],
            registry=r,
        )
        self.oldest_due = Gauge(
            "saga_oldest_due_seconds",
            "How long the most overdue saga has been waiting for a worker (backlog)",
            registry=r,
        )
        self.database_up = Gauge(
            "saga_database_up",
            "1 when this process read the database at its last scrape, 0 when it could not",
            registry=r,
        )
        self.held = Gauge("saga_worker_held", "Sagas this worker is driving now", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
