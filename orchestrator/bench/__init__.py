"""``saga bench``: the orchestrator against the plain chain of calls and DBOS Transact.

The same three-step saga over one benchmark participant, run as the plain
chain of calls, through ``saga serve`` (calling it over HTTP, and over
RabbitMQ) and (optionally) as a DBOS workflow, at several in-flight counts;
plus worker scaling and memory over a long run.
See ``benchmarks/README.md`` for the method and every figure.
"""

from orchestrator.bench.runner import BenchConfig, run_bench

__all__ = ["BenchConfig", "run_bench"]
