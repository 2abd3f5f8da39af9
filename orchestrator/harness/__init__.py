"""The tooling's harness: child processes and throwaway PostgreSQL, for tools and tests alike.

- :mod:`~orchestrator.harness.processes`: free ports, polling, a restartable
  child process with its own log (start, wait ready, SIGKILL, SIGSTOP/SIGCONT,
  stop), the ``saga`` command line, Prometheus text parsing;
- :mod:`~orchestrator.harness.postgres`: throwaway databases on a server
  (CREATE/DROP DATABASE) and private clusters (initdb, pg_ctl) that may be
  stopped or crashed at will;
- :mod:`~orchestrator.harness.proxy`: a loopback TCP proxy that can cut the
  link it carries (both ways or one way) so that packets vanish, and heal it;
- :mod:`~orchestrator.harness.tables`: plain-text tables for reports.

The campaign (``saga check``), the benchmark (``saga bench``) and the test
suite all start their processes and databases through this package. It may
import the product; no product module imports it.
"""
