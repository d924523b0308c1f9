"""Durable decisions per second on the receipt log, versus one naive fsync'd file per receipt.

Two Enact stores, same log writer underneath: ``process`` (ProcessReceiptStore, what ``enact-proxy run``
uses: the writer runs in a child process fed over a pipe) and ``threads`` (ReceiptStore in-process,
what ``EnactClient`` uses in library mode).

A *decision* is what a PASS costs in the sidecar: an intent that must be durable before the action is
forwarded (the writer thread waits for it: ``open_intent(r).result()``; that wait is the "decision to
forwardable" latency, recorded per decision), then its receipt, closed without waiting (the sidecar
answers the agent meanwhile). For ``--seconds``; 1 and 16 writers. Afterwards the store is closed and
the log must pass ``verify_log`` (HMAC, chain, Merkle tree, signed checkpoints) with exactly the number
of receipts written. Baseline, same disk, same receipt bytes: temp file, write, fsync, rename, fsync of
the folder, per receipt (chained and signed too, under a lock).

``--million N`` builds a log of N records with the writer (large rounds) and times ``receipts verify``
and ``receipts prove`` (the first prove builds the index, later ones use it) on it.

    python -m benchmarks.bench_receipts [--rounds 3] [--seconds 5] [--writers 1 16] [--million 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import os
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks._common import fmt, save, spread
from enact_proxy.models import Receipt
from enact_proxy.receipts import ReceiptKey, ReceiptStore, canonical_bytes
from enact_proxy.receipts.checkpoint import origin_for
from enact_proxy.receipts.note import Signer
from enact_proxy.receipts.process import ProcessReceiptStore
from enact_proxy.receipts.prove import prove
from enact_proxy.receipts.store import LogWriter, Op
from enact_proxy.receipts.verify import verify_log
from enact_proxy.receipts.waiting import durable

KEY = ReceiptKey(b"benchmark-receipt-key-" + b"0" * 42)
SIGNER = Signer.generate(origin_for)


def draft() -> dict[str, Any]:
    """A receipt body the size of a real get_contact/create_contact one (9 policy results)."""
    return {
        "receipt_version": 2, "run_id": str(uuid.uuid4()),
        "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "actor_email": "agent@company.com", "workflow": "new_lead_workflow", "system": "hubspot",
        "action": "hubspot.create_contact",
        "payload": {"email": "jane@acme.com", "properties": {"email": "jane@acme.com", "firstname": "Jane"}},
        "request": {"method": "POST", "host": "api.hubapi.com", "path": "/crm/v3/objects/contacts"},
        "policy_results": [{"policy": f"policy_{i}", "passed": True, "reason": "not a contact creation"}
                           for i in range(9)],
        "decision": "PASS", "reason": "allowed by workflow new_lead_workflow; 9 policies passed", "mode": "enforce",
        "actions_taken": [{"action": "hubspot.create_contact", "system": "hubspot", "success": True,
                           "output": {"status": 201, "id": "101"}}],
        "redacted": [], "config_sha256": "0" * 64,
    }


TEMPLATE = Receipt.model_validate(draft())


def typed_draft() -> Receipt:
    """What ``Engine.draft`` hands the store: a constructed (not re-validated) typed receipt."""
    return TEMPLATE.model_copy(update={"run_id": str(uuid.uuid4()),
                                       "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z")})


def drive(writers: int, seconds: float, write_one: Callable[[], object]) -> int:
    counts = [0] * writers
    deadline = time.monotonic() + seconds
    start = threading.Barrier(writers)

    def writer(slot: int) -> None:
        start.wait()
        n = 0
        while time.monotonic() < deadline:
            write_one()
            n += 1
        counts[slot] = n

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(counts)


TAKEN = [{"action": "hubspot.create_contact", "system": "hubspot", "success": True,
          "output": {"status": 201, "id": "101"}}]
STORES = {
    "process": "the writer process, driven by concurrent requests on one event loop (enact-proxy run)",
    "threads": "the in-process writer thread, driven by threads (EnactClient, library mode)",
}


def enact_store(kind: str, folder: Path, writers: int, seconds: float) -> tuple[float, list[float], bool]:
    if kind == "process":
        written, elapsed, waits = asyncio.run(_as_the_sidecar(folder, writers, seconds))
    else:
        written, elapsed, waits = _library_threads(folder, writers, seconds)
    report = verify_log(folder, KEY, SIGNER.verifier, live=False)
    ok = report.ok and report.receipts == written and report.intents == written
    if not ok:
        print(f"  verify FAILED: {report.receipts} receipts of {written}: {report.problems[:3]}")
    return written / elapsed, waits, ok


async def _as_the_sidecar(folder: Path, writers: int, seconds: float) -> tuple[int, float, list[float]]:
    """``writers`` concurrent requests on one event loop, as the sidecar serves them: each waits for its
    intent (``durable``, as addons/decide.py does), then closes it without waiting."""
    store = ProcessReceiptStore(folder, KEY, signer=SIGNER).start()  # answers read by this loop
    waits: list[float] = []
    deadline = time.monotonic() + seconds
    counts = [0] * writers

    async def one(slot: int) -> None:
        while time.monotonic() < deadline:
            began = time.perf_counter()
            ticket = await durable(store.open_intent(typed_draft()))
            waits.append(time.perf_counter() - began)
            ticket.close(TAKEN)
            counts[slot] += 1

    began = time.monotonic()
    await asyncio.gather(*(one(i) for i in range(writers)))
    store.close()  # the clock stops once every receipt is durable too
    return sum(counts), time.monotonic() - began, waits


def _library_threads(folder: Path, writers: int, seconds: float) -> tuple[int, float, list[float]]:
    """``writers`` threads sharing one EnactClient-style in-process store."""
    store = ReceiptStore(folder, KEY, signer=SIGNER).start()
    waits: list[list[float]] = [[] for _ in range(writers)]
    slots = threading.local()
    counter = iter(range(writers))
    lock = threading.Lock()

    def one_decision() -> None:
        if not hasattr(slots, "mine"):
            with lock:
                slots.mine = waits[next(counter)]
        began = time.perf_counter()
        ticket = store.open_intent(typed_draft()).result()  # forwardable from here
        slots.mine.append(time.perf_counter() - began)
        ticket.close(TAKEN)

    began = time.monotonic()
    written = drive(writers, seconds, one_decision)
    store.close()
    return written, time.monotonic() - began, [w for slot in waits for w in slot]


def naive_files(folder: Path, writers: int, seconds: float) -> tuple[float, bool]:
    folder.mkdir(parents=True, exist_ok=True)
    lock = threading.Lock()
    tip: dict[str, str | None] = {"hash": None}

    def write_one() -> None:
        record = draft()
        with lock:  # the chain needs an order
            record["prev_hash"] = tip["hash"]
            body = canonical_bytes(KEY.signed(record))
            tip["hash"] = hashlib.sha256(body).hexdigest()
        path = folder / f"{record['run_id']}.json"
        tmp = folder / f".{record['run_id']}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.write(fd, body + b"\n")
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    began = time.monotonic()
    written = drive(writers, seconds, write_one)
    return written / (time.monotonic() - began), True


def million(folder: Path, records: int) -> dict[str, Any]:
    """Build a log of ``records`` records (half intents, half receipts), then time verify and prove."""
    writer = LogWriter(folder, KEY, SIGNER)
    writer.open()
    began = time.monotonic()
    run_ids = []
    for _ in range(records // 4096):
        ops = []
        for _ in range(2048):
            body = draft()
            run_ids.append(body["run_id"])
            intent = {k: v for k, v in body.items() if k != "actions_taken"}
            ops += [Op("intent", intent), Op("receipt", body)]
        writer.commit(ops)
    writer.close()
    built = time.monotonic() - began
    size = writer.seq
    began = time.monotonic()
    report = verify_log(folder, KEY, SIGNER.verifier, live=False)
    verify_s = time.monotonic() - began
    began = time.monotonic()
    report_keyless = verify_log(folder, None, SIGNER.verifier, live=False)
    verify_keyless_s = time.monotonic() - began
    began = time.monotonic()
    prove(folder, run_ids[0], SIGNER.verifier)
    first_prove_s = time.monotonic() - began
    timings = []
    for run_id in run_ids[:: max(1, len(run_ids) // 50)]:
        t = time.perf_counter()
        prove(folder, run_id, SIGNER.verifier)
        timings.append(time.perf_counter() - t)
    timings.sort()
    return {"records": size, "build_s": built, "verify_s": verify_s, "verify_ok": report.ok,
            "verify_without_hmac_key_s": verify_keyless_s, "verify_without_key_ok": report_keyless.ok,
            "first_prove_s (builds the index)": first_prove_s, "prove_p50_ms": timings[len(timings) // 2] * 1000,
            "prove_max_ms": timings[-1] * 1000}


def main() -> None:
    # In-process, 16 waiting writer threads and the store's thread share one GIL; at the default
    # 5 ms switch interval this would measure GIL hand-offs rather than the store.
    sys.setswitchinterval(0.0001)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--writers", type=int, nargs="*", default=[1, 16])
    parser.add_argument("--stores", nargs="+", default=list(STORES), choices=list(STORES))
    parser.add_argument("--million", type=int, default=0, help="records for the verify/prove run (0: skip)")
    parser.add_argument("--dir", default=None, help="folder on the disk to measure (default: a temp folder)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="enact-bench-receipts-", dir=args.dir))
    results: list[dict[str, Any]] = []
    for writers in args.writers:
        naive: list[float] = []
        rates: dict[str, list[float]] = {kind: [] for kind in args.stores}
        p50s: dict[str, list[float]] = {kind: [] for kind in args.stores}
        verified = True
        for round_no in range(args.rounds):
            base, _ = naive_files(root / f"naive-{writers}-{round_no}", writers, args.seconds)
            naive.append(base)
            line = f"  writers={writers} round {round_no + 1}: naive {base:8.0f} receipts/s"
            for kind in args.stores:
                rate, waits, ok = enact_store(kind, root / f"{kind}-{writers}-{round_no}", writers, args.seconds)
                verified &= ok
                rates[kind].append(rate)
                waits.sort()
                p50 = waits[len(waits) // 2] * 1000 if waits else float("nan")
                p50s[kind].append(p50)
                line += f"  {kind} {rate:8.0f} decisions/s (intent p50 {p50:.3f} ms)"
            print(f"{line}  verified={verified}", flush=True)
        results.append({"writers": writers, "naive_receipts_per_s": spread(naive), "verified": verified,
                        **{f"{kind}_decisions_per_s": spread(r) for kind, r in rates.items()},
                        **{f"{kind}_intent_p50_ms": spread(p) for kind, p in p50s.items()}})
    if results:
        print("| writers | naive fsync'd file per receipt /s | "
              + " | ".join(f"Enact {kind} decisions/s | intent durable p50 ms" for kind in args.stores)
              + " | verify_log |")
        print("|---|---|" + "---|---|" * len(args.stores) + "---|")
        for r in results:
            cells = " | ".join(f"{fmt(r[f'{kind}_decisions_per_s'], 0)} | {fmt(r[f'{kind}_intent_p50_ms'], 3)}"
                               for kind in args.stores)
            print(f"| {r['writers']} | {fmt(r['naive_receipts_per_s'], 0)} | {cells} | "
                  f"{'all OK' if r['verified'] else 'FAILED'} |")
    big = million(root / "million", args.million) if args.million else None
    if big:
        print(big)
    path = save("receipts", {"args": vars(args), "results": results, "million": big, "folder": str(root)})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
