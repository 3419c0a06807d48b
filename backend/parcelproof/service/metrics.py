"""Prometheus gauges read from the node's database at scrape time: log and audit anchoring."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client.metrics_core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from parcelproof import __version__
from parcelproof.core.errors import Error
from parcelproof.service.audit import AuditLog

if TYPE_CHECKING:
    from parcelproof.api.deps import NodeServices

log = logging.getLogger("parcelproof.metrics")

#: Every metric name this collector exports (the docs' test checks alert rules against them).
NAMES = (
    "parcelproof_build_info",
    "parcelproof_database_up",
    "parcelproof_log_leaves",
    "parcelproof_log_anchored_leaves",
    "parcelproof_log_unanchored_leaves",
    "parcelproof_audit_entries",
    "parcelproof_audit_anchored_entries",
    "parcelproof_audit_unanchored_entries",
)


class NodeCollector(Collector):
    """Gauges of one courier node, read on each scrape (a few indexed one-row queries), so
    every API process reports the same values whichever one Prometheus reaches. When the
    database does not answer, ``parcelproof_database_up`` is 0 and the log gauges are left
    out rather than reported stale."""

    def __init__(self, services: NodeServices) -> None:
        self._services = services

    def describe(self) -> Iterable[Metric]:
        return ()  # registering must not query the database

    def collect(self) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "parcelproof_build_info", "the running parcelproof release", labels=["version"]
        )
        info.add_metric([__version__], 1.0)
        yield info
        up = GaugeMetricFamily(
            "parcelproof_database_up", "1 when this scrape could read the node's database"
        )
        try:
            values = self._read()
        except Error as e:
            log.warning("metrics: cannot read the database (%s)", type(e).__name__)
            up.add_metric([], 0.0)
            yield up
            return
        up.add_metric([], 1.0)
        yield up
        help_texts = {
            "parcelproof_log_leaves": "events (leaves) in this courier's log",
            "parcelproof_log_anchored_leaves": "size of the latest checkpoint anchored on the "
            "ledger (anchored or confirmed)",
            "parcelproof_log_unanchored_leaves": "events accepted but not yet covered by an "
            "anchored checkpoint",
            "parcelproof_audit_entries": "entries in the node's audit log",
            "parcelproof_audit_anchored_entries": "size of the latest audit head anchored on "
            "the ledger",
            "parcelproof_audit_unanchored_entries": "audit entries protected by the hash chain "
            "only, not yet by an anchored head",
        }
        for name, value in values.items():
            gauge = GaugeMetricFamily(name, help_texts[name])
            gauge.add_metric([], float(value))
            yield gauge

    def _read(self) -> dict[str, int]:
        store = self._services.node.store
        leaves = store.log_size()
        checkpoint = store.latest_checkpoint()
        anchored = checkpoint.size if checkpoint is not None else 0
        values = {
            "parcelproof_log_leaves": leaves,
            "parcelproof_log_anchored_leaves": anchored,
            "parcelproof_log_unanchored_leaves": max(leaves - anchored, 0),
        }
        audit = self._services.audit
        if isinstance(audit, AuditLog):
            entries, _head = audit.head()
            latest = audit.store.latest_anchor()
            audit_anchored = latest.size if latest is not None else 0
            values["parcelproof_audit_entries"] = entries
            values["parcelproof_audit_anchored_entries"] = audit_anchored
            values["parcelproof_audit_unanchored_entries"] = max(entries - audit_anchored, 0)
        return values
