"""Durable receipts per second: Enact's receipt stores versus one naive fsync'd file per receipt.

Two Enact stores, same code underneath: ``process`` (ProcessReceiptStore, what ``enact-proxy run``
uses: the store runs in a writer process fed over a pipe) and ``threads`` (ReceiptStore in-process,
what ``EnactClient`` uses in library mode).

Each writer thread writes a receipt and waits until it is durable (``store.write(r).result()``), as
a request waits before it is forwarded, for ``--seconds``; 1 and 16 writers. Afterwards the store
is closed and the directory must pass ``verify_directory`` (signatures, chain, HEAD) with exactly
the number of receipts written. Baseline, same disk, same receipt bytes: temp file, write, fsync,
rename, fsync of the folder, per receipt (chained and signed too, under a lock).

    python -m benchmarks.bench_receipts [--rounds 3] [--seconds 5] [--writers 1 16]
"""

from __future__ import annotations

import argparse
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
from enact_proxy.receipts import ReceiptKey, ReceiptStore, StoreFront, canonical_bytes
from enact_proxy.receipts.process import ProcessReceiptStore
from enact_proxy.receipts.verify import verify_directory

KEY = ReceiptKey(b"benchmark-receipt-key-" + b"0" * 42)


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
STORES: dict[str, Callable[[Path], StoreFront]] = {
    # what enact-proxy run uses; each writer waits until its receipt file exists
    "process": lambda folder: ProcessReceiptStore(folder, KEY),
    # the same store used as the sidecar uses it: wait until the intent is durable (the moment a pass
    # may be forwarded), then close it with the outcome without waiting; the clock stops only once
    # every receipt file is written and synced (store.close())
    "process-intents": lambda folder: ProcessReceiptStore(folder, KEY),
    # in-process threads: EnactClient (library mode); each writer waits until its receipt file exists
    "threads": lambda folder: ReceiptStore(folder, KEY),
}


def enact_store(kind: str, folder: Path, writers: int, seconds: float) -> tuple[float, bool]:
    store = STORES[kind](folder).start()

    def one_intent() -> None:
        store.open_intent(draft()).result().close(TAKEN)

    began = time.monotonic()
    written = drive(writers, seconds,
                    one_intent if kind == "process-intents" else lambda: store.write(draft()).result())
    store.close()
    elapsed = time.monotonic() - began
    report = verify_directory(folder, KEY)
    ok = report.ok and report.checked == written
    if not ok:
        print(f"  verify FAILED: checked {report.checked} of {written}: {report.problems[:3]}")
    return written / elapsed, ok


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


def main() -> None:
    # In-process, 16 waiting writer threads and the store's two threads share one GIL; at the default
    # 5 ms switch interval this would measure GIL hand-offs rather than the store.
    sys.setswitchinterval(0.0001)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--stores", nargs="+", default=list(STORES), choices=list(STORES))
    parser.add_argument("--dir", default=None, help="folder on the disk to measure (default: a temp folder)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="enact-bench-receipts-", dir=args.dir))
    results = []
    for writers in args.writers:
        naive: list[float] = []
        rates: dict[str, list[float]] = {kind: [] for kind in args.stores}
        verified = True
        for round_no in range(args.rounds):
            base, _ = naive_files(root / f"naive-{writers}-{round_no}", writers, args.seconds)
            naive.append(base)
            line = f"  writers={writers} round {round_no + 1}: naive {base:8.0f}/s"
            for kind in args.stores:
                rate, ok = enact_store(kind, root / f"{kind}-{writers}-{round_no}", writers, args.seconds)
                verified &= ok
                rates[kind].append(rate)
                line += f"  {kind} {rate:8.0f}/s"
            print(f"{line}  verified={verified}", flush=True)
        results.append({"writers": writers, "naive_per_s": spread(naive), "verified": verified,
                        **{f"{kind}_per_s": spread(r) for kind, r in rates.items()},
                        **{f"{kind}_ratio": spread([e / b for e, b in zip(r, naive, strict=True)])
                           for kind, r in rates.items()}})
    print("| writers | naive fsync'd file per receipt /s | "
          + " | ".join(f"Enact {kind} /s | ratio" for kind in args.stores) + " | verify_directory |")
    print("|---|---|" + "---|---|" * len(args.stores) + "---|")
    for r in results:
        cells = " | ".join(f"{fmt(r[f'{kind}_per_s'], 0)} | **{fmt(r[f'{kind}_ratio'], 2)}×**" for kind in args.stores)
        print(f"| {r['writers']} | {fmt(r['naive_per_s'], 0)} | {cells} | {'all OK' if r['verified'] else 'FAILED'} |")
    path = save("receipts", {"args": vars(args), "results": results, "folder": str(root)})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
