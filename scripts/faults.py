"""The full fault-injection run: kill -9 during 10,000-event ingests, a chain outage, a restart.

Each ingest (one per database by default: SQLite, then PostgreSQL) sends 10,000 pre-signed
events in bulk while a seeded chaos thread kill -9s the API, the worker or both at random
moments, at least ``--min-kills`` (20) times per ingest. CI runs a reduced count of the same
harness (tests/faults/). This prints every figure and, with ``--write-docs``, puts them in
docs/reliability.md between its figure markers.

    .venv/bin/python scripts/faults.py --write-docs
    .venv/bin/python scripts/faults.py --rounds 1 --events 2000 --chain-outage 10
"""

from __future__ import annotations

import argparse
import contextlib
import json
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.conftest import PG_URL, pg_schema  # noqa: E402
from tests.faults.harness import System, chain_outage_round, kill9_round  # noqa: E402
from tests.faults.pgserver import PrivatePostgres, free_port  # noqa: E402

from parcelproof.chain.devnet import Anvil  # noqa: E402
from parcelproof.chain.localnet import LocalDevnet  # noqa: E402

DOC = ROOT / "docs" / "reliability.md"
START, END = "<!-- figures:start -->", "<!-- figures:end -->"


def kill9_rounds(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    with contextlib.ExitStack() as schemas, Anvil() as anvil:
        for n in range(args.rounds):
            seed = args.seed + n
            backend = ("sqlite", "postgresql")[n % 2] if args.db == "both" else args.db
            workdir = work / f"round-{n}"

            def factory(workdir: Path = workdir, backend: str = backend) -> System:
                url = (
                    schemas.enter_context(pg_schema(PG_URL, "pp_faults"))
                    if backend == "postgresql"
                    else f"sqlite:///{workdir / 'parcelproof.sqlite'}"
                )
                return System(workdir, anvil.url, url)

            started = time.monotonic()
            outcome, stats, kills = kill9_round(
                factory,
                seed,
                events=args.events,
                shipments=args.shipments,
                batch=args.batch,
                every=(args.kill_min, args.kill_max),
                pace=args.pace,
                verify_every=args.verify_every,
            )
            cut = stats.unavailable["RemoteProtocolError"] + stats.unavailable["ReadError"]
            if sum(kills.values()) < args.min_kills:
                raise SystemExit(
                    f"round {n} saw only {sum(kills.values())} kills (< {args.min_kills}): "
                    "raise --pace or lower --kill-max"
                )
            row = {
                "round": n,
                "seed": seed,
                "database": backend,
                "events_sent": outcome.sent,
                "acknowledged": outcome.acknowledged,
                "stored": outcome.stored,
                "stored_unacknowledged": outcome.stored_unacknowledged,
                "lost": outcome.lost,
                "duplicates": outcome.duplicates,
                "kills": dict(kills),
                "kills_total": sum(kills.values()),
                "requests_cut_mid_flight": cut,
                "batches_resent": stats.retries,
                "replayed_events": stats.replays,
                "checkpoints_on_chain": outcome.checkpoints_on_chain,
                "parcels_verified": outcome.parcels_verified,
                "events_verified": outcome.verified_events,
                "seconds": round(time.monotonic() - started, 1),
                "phases": {k: round(v, 1) for k, v in stats.seconds.items()},
            }
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


def outage_round(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    net = LocalDevnet(work / "devnet", port=free_port())
    net.up()
    try:
        figures = chain_outage_round(
            net,
            work / "outage-node",
            f"sqlite:///{work / 'outage.sqlite'}",
            outage=args.chain_outage,
        )
    finally:
        net.down()
    print(json.dumps({"chain_outage": figures}), flush=True)
    return figures


def pg_restart_round(work: Path) -> dict[str, Any]:
    """The CI test's scenario, timed: how fast requests fail and how soon they succeed."""
    import httpx
    from tests.faults.harness import (
        BulkClient,
        check_no_loss,
        interleave,
        make_parcels,
        wait_until_anchored,
    )

    server = PrivatePostgres()
    server.start()
    try:
        with Anvil() as anvil:
            system = System(work / "pg-node", anvil.url, server.url)
            system.start()
            try:
                rng = random.Random(11)  # noqa: S311 - a reproducible workload, not a secret
                with httpx.Client(base_url=system.api.url, timeout=30.0) as client:
                    parcels = make_parcels(system, client, rng, 20, 2000)
                bulk = BulkClient(system, batch=10, pace=0.01)
                join = bulk.run_in_thread(interleave(parcels, rng), time.monotonic() + 900)
                bulk.wait_for(300)
                server.stop("fast")
                down = time.monotonic()
                time.sleep(5)
                up = time.monotonic()
                server.start()
                join()
                wait_until_anchored(system, timeout=120)
                outcome = check_no_loss(system, parcels, bulk.stats, verify_every=4)
                during = [a for a in bulk.answers if down <= a[0] and a[0] + a[3] < up]
                after = [a for a in bulk.answers if a[0] >= up and a[1] == 200]
                figures = {
                    "database_down_s": round(up - down, 1),
                    "requests_while_down": len(during),
                    "statuses_while_down": dict(Counter(a[1] for a in during)),
                    "slowest_failure_ms": round(max((a[3] for a in during), default=0) * 1000),
                    "first_success_after_restart_s": round(after[0][0] - up, 2) if after else None,
                    "process_restarts": system.api.starts + system.worker.starts - 2,
                    "events": outcome.stored,
                    "lost": outcome.lost,
                }
            finally:
                system.stop()
    finally:
        server.close()
    print(json.dumps({"postgres_restart": figures}), flush=True)
    return figures


def markdown(
    args: argparse.Namespace,
    rows: list[dict[str, Any]],
    outage: dict[str, Any] | None,
    pg: dict[str, Any] | None,
) -> str:
    lines = [
        f"Measured by `scripts/faults.py` on {time.strftime('%Y-%m-%d')}: "
        f"{args.rounds} ingests of {args.events:,} events over {args.shipments:,} parcels, "
        f"bulk batches of {args.batch} every {args.pace} s, a seeded kill -9 every "
        f"{args.kill_min}-{args.kill_max} s after the previous restart.",
        "",
        "| ingest | database | sent | acknowledged | stored | stored, not acknowledged | lost "
        "| duplicates | kill -9 (api/worker/both) | requests cut mid-flight | checkpoints "
        "| parcels verified | seconds |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        k = r["kills"]
        lines.append(
            f"| {r['round']} (seed {r['seed']}) | {r['database']} | {r['events_sent']:,} "
            f"| {r['acknowledged']:,} | {r['stored']:,} | {r['stored_unacknowledged']} "
            f"| {r['lost']} | {r['duplicates']} "
            f"| {k.get('api', 0)}/{k.get('worker', 0)}/{k.get('both', 0)} "
            f"| {r['requests_cut_mid_flight']} | {r['checkpoints_on_chain']} "
            f"| {r['parcels_verified']} | {r['seconds']} |"
        )
    if rows:
        lines += [
            "",
            f"**Total: {len(rows)} ingests, {sum(r['events_sent'] for r in rows):,} events sent, "
            f"{sum(r['acknowledged'] for r in rows):,} acknowledged, "
            f"lost = {sum(r['lost'] for r in rows)}, "
            f"duplicates = {sum(r['duplicates'] for r in rows)}, "
            f"{sum(r['kills_total'] for r in rows)} kill -9, "
            f"{sum(r['requests_cut_mid_flight'] for r in rows)} requests cut mid-flight.**",
        ]
    if outage:
        lines += [
            "",
            f"Chain outage: anvil stopped for {outage['outage_s']:.0f} s during a steady ingest; "
            f"{outage['acknowledged_during_outage']} events acknowledged while it was down; "
            f"anchoring caught up {outage['catch_up_s']:.1f} s after the restart; "
            f"{outage['checkpoints']} checkpoints on chain, none skipped or doubled; "
            f"{outage['events']} events, lost = 0.",
        ]
    if pg:
        lines += [
            "",
            f"PostgreSQL restart: the server was down {pg['database_down_s']} s; "
            f"{pg['requests_while_down']} requests meanwhile, answered "
            f"{pg['statuses_while_down']} (problem+json), the slowest in "
            f"{pg['slowest_failure_ms']} ms; the first success came "
            f"{pg['first_success_after_restart_s']} s after the restart began; "
            f"{pg['process_restarts']} process restarts; {pg['events']} events, "
            f"lost = {pg['lost']}.",
        ]
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=2, help="ingests (databases alternate)")
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--shipments", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--pace", type=float, default=0.6, help="seconds between batches")
    parser.add_argument("--kill-min", type=float, default=1.0)
    parser.add_argument("--kill-max", type=float, default=5.0)
    parser.add_argument("--min-kills", type=int, default=20, help="per ingest, or it fails")
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--db", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--verify-every", type=int, default=10, help="verify every n-th parcel")
    parser.add_argument("--chain-outage", type=float, default=60.0, help="0: skip")
    parser.add_argument("--no-pg-restart", action="store_true")
    parser.add_argument("--json", type=Path)
    parser.add_argument("--write-docs", action="store_true", help=f"update {DOC.name}")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="parcelproof-faults-") as tmp:
        work = Path(tmp)
        rows = kill9_rounds(args, work) if args.rounds else []
        outage = outage_round(args, work) if args.chain_outage else None
        pg = None if args.no_pg_restart else pg_restart_round(work)
    text_md = markdown(args, rows, outage, pg)
    print()
    print(text_md)
    if args.json:
        args.json.write_text(json.dumps({"rounds": rows, "outage": outage, "pg": pg}, indent=2))
    if args.write_docs:
        doc = DOC.read_text()
        head, _, rest = doc.partition(START)
        _, _, tail = rest.partition(END)
        DOC.write_text(f"{head}{START}\n{text_md}\n{END}{tail}")
    return 0 if all(r["lost"] == 0 and r["duplicates"] == 0 for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
