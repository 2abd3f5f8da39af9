"""Every PromQL expression of the shipped dashboard names metrics and labels the code exports."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from prometheus_client import CollectorRegistry

from orchestrator.metrics import Metrics
from participants.kit.metrics import KitMetrics

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = json.loads((ROOT / "deploy/grafana/dashboards/saga-orchestrator.json").read_text())

PROMQL_WORDS = {
    "sum",
    "max",
    "min",
    "avg",
    "count",
    "rate",
    "irate",
    "increase",
    "histogram_quantile",
    "by",
    "without",
    "on",
    "ignoring",
    "and",
    "or",
    "unless",
    "le",
}
#: Labels Prometheus itself adds to every scraped series.
TARGET_LABELS = {"job", "instance"}


_SUFFIXES = {"counter": ["_total"], "histogram": ["_bucket", "_sum", "_count"]}


def exported(registry: CollectorRegistry) -> dict[str, set[str]]:
    """Sample name -> label names, as the code exports them (counters as ``_total`` ...).

    Read from the collectors, not from ``collect()``: a labelled metric shows its
    label names only once a child exists.
    """
    names: dict[str, set[str]] = {}
    for collector in set(registry._names_to_collectors.values()):
        labels = set(getattr(collector, "_labelnames", ()))
        base, kind = collector._name, collector._type  # type: ignore[attr-defined]
        for suffix in _SUFFIXES.get(kind, [""]):
            names[base + suffix] = labels | ({"le"} if suffix == "_bucket" else set())
    return names


def all_exported() -> dict[str, set[str]]:
    return {**exported(Metrics().registry), **exported(KitMetrics().registry)}


def expressions() -> list[str]:
    return [t["expr"] for p in DASHBOARD["panels"] for t in p["targets"]]


def test_every_expression_uses_exported_metrics_and_labels() -> None:
    known = all_exported()
    assert expressions()
    for expr in expressions():
        without_strings = re.sub(r'"[^"]*"', '""', expr)
        without_ranges = re.sub(r"\[[0-9]+[smhd]\]", "", without_strings)
        grouped = {
            label.strip()
            for group in re.findall(r"\b(?:by|without)\s*\(([^)]*)\)", without_ranges)
            for label in group.split(",")
        }
        matchers = set(re.findall(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(?:=~|!~|!=|=)", without_ranges))
        identifiers = set(re.findall(r"[a-zA-Z_][a-zA-Z0-9_:]*", without_ranges))
        metrics = {i for i in identifiers if i in known or i.startswith(("saga_", "participant_"))}
        assert metrics, expr
        for metric in metrics:
            assert metric in known, f"{expr}: {metric} is not exported"
        available = set().union(*(known[m] for m in metrics)) | TARGET_LABELS
        for label in grouped | matchers:
            assert label in available, f"{expr}: label {label!r} is not on {sorted(metrics)}"
        leftovers = identifiers - metrics - grouped - matchers - PROMQL_WORDS
        assert not leftovers, f"{expr}: unknown words {leftovers}"


def test_the_dashboard_is_provisioned() -> None:
    provider = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/dashboards/dashboards.yml").read_text()
    )
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    path = provider["providers"][0]["options"]["path"]
    assert f"./deploy/grafana/dashboards:{path}:ro" in mounts
    source = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    uid = source["datasources"][0]["uid"]
    for panel in DASHBOARD["panels"]:
        assert panel["datasource"]["uid"] == uid
