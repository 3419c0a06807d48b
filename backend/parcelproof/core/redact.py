"""Derive a smaller bundle offline: withhold more fields; every commitment still verifies."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import replace

from parcelproof.core.bundle import Bundle, BundleEvent, BundleLog
from parcelproof.core.errors import FormatError

# Who sees what (names of fields revealed). A redaction can only ever withhold more.
CUSTOMER = frozenset(
    {
        "status", "time", "place", "corrects", "corrected_status",
        "pod_photo_sha256", "pod_signature_sha256",
        "handoff_id", "handoff_time", "handoff_to", "handoff_from", "handoff_of",
        "counterparty_shipment", "counterparty_agent", "counterparty_signature",
    }
)  # fmt: skip

Keep = Callable[[BundleLog, BundleEvent, str], bool]


def redact(bundle: Bundle, keep: Keep) -> Bundle:
    """Withhold every revealed field for which ``keep(log, event, name)`` is false.

    Only revealed openings move to the withheld digests: a redacted bundle verifies exactly
    like the original (commitments, chain, signatures and proofs are untouched).
    """
    logs = []
    for lg in bundle.logs:
        events = []
        for ev in lg.events:
            d = ev.disclosure
            shown = tuple(f for f in d.revealed if keep(lg, ev, f.name))
            hidden = [f.digest() for f in d.revealed if not keep(lg, ev, f.name)]
            withheld = tuple(sorted((*d.withheld, *hidden)))
            events.append(replace(ev, disclosure=replace(d, revealed=shown, withheld=withheld)))
        logs.append(replace(lg, events=tuple(events)))
    return replace(bundle, logs=tuple(logs))


def keep_fields(names: Collection[str], only_status: Collection[str] = ()) -> Keep:
    """Keep ``names`` revealed; with ``only_status``, only on events whose revealed status is
    one of them (all other events keep nothing revealed)."""
    wanted = frozenset(n.strip() for n in names if n.strip())
    if not wanted:
        raise FormatError("name at least one field to keep revealed")
    statuses = frozenset(only_status)

    def keep(lg: BundleLog, ev: BundleEvent, name: str) -> bool:
        if name not in wanted:
            return False
        if not statuses:
            return True
        status = next((f.value for f in ev.disclosure.revealed if f.name == "status"), None)
        return status in statuses

    return keep
