"""docs/ops/prometheus.yml and alerts.yml use only metrics and labels a running node exports,
and every metric a node exports is explained in docs/operator-guide.md."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from parcelproof.api.app import create_app
from parcelproof.core.errors import DatabaseUnavailableError
from parcelproof.service import metrics
from parcelproof.service.wiring import NodeRuntime
from tests.ops.nodes import make_courier

ROOT = Path(__file__).resolve().parents[2]
OPS = ROOT / "docs" / "ops"
GUIDE = ROOT / "docs" / "operator-guide.md"

#: Series Prometheus makes itself (`up`) or the blackbox exporter exports (`probe_success`).
SYNTHETIC = {"up", "probe_success"}
#: Labels Prometheus attaches to every scraped series (the courier label: prometheus.yml).
TARGET_LABELS = {"instance", "job", "courier", "__name__"}
PROMQL_WORDS = {
    "sum", "min", "max", "avg", "count", "rate", "irate", "increase", "delta", "changes",
    "histogram_quantile", "and", "or", "unless", "bool", "offset", "time", "abs", "absent",
    "max_over_time", "min_over_time", "avg_over_time", "count_over_time", "topk", "bottomk",
}  # fmt: skip
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression reads (functions, keywords, label names, strings,
    ranges and numbers removed)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    e = re.sub(r"\{[^}]*\}", "", e)
    e = re.sub(r"\[[^\]]*\]", "", e)
    e = _GROUPING.sub("", e)
    return {t for t in re.findall(r"[A-Za-z_:][A-Za-z0-9_:]*", e) if t not in PROMQL_WORDS}


def label_names(expr: str) -> set[str]:
    """The label names a PromQL expression matches on or groups by."""
    names: set[str] = set()
    for matchers in re.findall(r"\{([^}]*)\}", expr):
        names |= set(re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matchers))
    for grouping in _GROUPING.findall(expr):
        names |= {n.strip() for n in grouping.split(",") if n.strip()}
    return names


def _rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((OPS / "alerts.yml").read_text())
    rules = [rule for group in document["groups"] for rule in group["rules"]]
    assert rules
    return rules


@pytest.fixture(scope="module")
def node(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[NodeRuntime, Any]]:
    c = make_courier()
    url = f"sqlite:///{tmp_path_factory.mktemp('metrics') / 'parcelproof.sqlite'}"
    rt = c.node(url)
    try:
        yield rt, c
    finally:
        rt.close()


def _scrape(client: TestClient) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """Every sample of /metrics: name → labels → value."""
    answer = client.get("/metrics")
    assert answer.status_code == 200
    samples: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            samples.setdefault(sample.name, {})[tuple(sorted(sample.labels.items()))] = sample.value
    return samples


def _value(samples: dict[str, dict[tuple[tuple[str, str], ...], float]], name: str) -> float:
    (value,) = samples[name].values()
    return value


def test_node_gauges_follow_the_log_and_audit_anchoring(node: tuple[NodeRuntime, Any]) -> None:
    rt, c = node
    client = TestClient(create_app(rt.services, ready=rt.ready))
    rt.node.create_shipment("PPMETRICS1DE", {"recipient": "Someone"}, "10115")
    c.driver.record(rt.node, "PPMETRICS1DE", {"status": "picked_up"}, c.now - 60)
    rt.audit.record("cli:test", "personal-data.read", "shipment-x")
    before = _scrape(client)
    assert _value(before, "parcelproof_database_up") == 1
    assert _value(before, "parcelproof_log_leaves") == 1
    assert _value(before, "parcelproof_log_unanchored_leaves") == 1
    assert _value(before, "parcelproof_log_anchored_leaves") == 0
    assert _value(before, "parcelproof_audit_unanchored_entries") == 1

    assert rt.node.anchor() is not None
    assert rt.audit.anchor(rt.ledger, sender=rt.chain.account) is not None
    after = _scrape(client)
    assert _value(after, "parcelproof_log_anchored_leaves") == 1
    assert _value(after, "parcelproof_log_unanchored_leaves") == 0
    assert _value(after, "parcelproof_audit_anchored_entries") == 1
    assert _value(after, "parcelproof_audit_unanchored_entries") == 0
    assert after["parcelproof_build_info"]


def test_database_down_is_a_gauge_not_a_failed_scrape(
    node: tuple[NodeRuntime, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    rt, _ = node
    client = TestClient(create_app(rt.services, ready=rt.ready))

    def down() -> int:
        raise DatabaseUnavailableError("the database is unavailable")

    monkeypatch.setattr(rt.store, "log_size", down)
    samples = _scrape(client)
    assert _value(samples, "parcelproof_database_up") == 0
    assert "parcelproof_log_leaves" not in samples  # absent, never stale


def test_alert_rules_use_only_exported_metrics_and_labels(node: tuple[NodeRuntime, Any]) -> None:
    rt, _ = node
    client = TestClient(create_app(rt.services, ready=rt.ready))
    client.get("/healthz")  # the HTTP metrics have series once a request was served
    samples = _scrape(client)
    exported = set(samples)
    assert set(metrics.NAMES) <= exported
    labels = {name for series in samples.values() for key in series for name, _ in key}
    labels |= TARGET_LABELS

    for rule in _rules():
        assert {"alert", "expr", "for", "labels", "annotations"} <= set(rule), rule
        assert rule["labels"]["severity"] in {"page", "warn", "info"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]
        used = metric_names(rule["expr"])
        assert used, rule["alert"]
        unknown = used - exported - SYNTHETIC
        assert not unknown, f"{rule['alert']} uses metrics no node exports: {sorted(unknown)}"
        stray = label_names(rule["expr"]) - labels
        assert not stray, f"{rule['alert']} uses labels no node exports: {sorted(stray)}"
        for label in re.findall(r"\$labels\.([A-Za-z_]+)", str(rule["annotations"])):
            assert label in labels, f"{rule['alert']} annotates with unknown label {label}"


def test_the_extractor_catches_a_misspelt_metric() -> None:
    expr = 'sum by (instance) (rate(parcelprof_http_requests_total{status=~"5.."}[5m])) > 0'
    assert metric_names(expr) == {"parcelprof_http_requests_total"}
    assert label_names(expr) == {"instance", "status"}


def test_scrape_config_loads_the_rules_and_scrapes_metrics() -> None:
    config = yaml.safe_load((OPS / "prometheus.yml").read_text())
    assert "alerts.yml" in config["rule_files"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["parcelproof"]["metrics_path"] == "/metrics"
    readyz = jobs["parcelproof-readyz"]
    assert all(t.endswith("/readyz") for s in readyz["static_configs"] for t in s["targets"])
    job_matchers = {m for rule in _rules() for m in re.findall(r'job="([^"]+)"', rule["expr"])}
    assert job_matchers <= set(jobs)


def test_the_guide_explains_every_exported_metric(node: tuple[NodeRuntime, Any]) -> None:
    rt, _ = node
    client = TestClient(create_app(rt.services, ready=rt.ready))
    client.get("/healthz")
    answer = client.get("/metrics").text
    guide = GUIDE.read_text()
    for family in text_string_to_metric_families(answer):
        if family.name.startswith("parcelproof_") and not family.name.endswith("_created"):
            assert family.name in guide, f"{family.name} is not in docs/operator-guide.md"
