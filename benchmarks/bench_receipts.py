"""Durable receipts per second: Enact's ReceiptStore versus one naive fsync'd file per receipt.

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
from enact_proxy.receipts import ReceiptKey, ReceiptStore, canonical_bytes
from enact_proxy.receipts.verify import verify_directory

KEY = ReceiptKey(b"benchmark-receipt-key-" + b"0" * 42)


def draft() -> dict[str, Any]:
    """A receipt body the size of a real get_contact/create_contact one (9 policy results)."""
    return {
        "receipt_version": 1, "run_id": str(uuid.uuid4()),
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


def drive(writers: int, seconds: float, write_one: Callable[[], None]) -> int:
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


def enact_store(folder: Path, writers: int, seconds: float) -> tuple[float, bool]:
    store = ReceiptStore(folder, KEY).start()
    began = time.monotonic()
    written = drive(writers, seconds, lambda: store.write(draft()).result())
    elapsed = time.monotonic() - began
    store.close()
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
    # The sidecar runs its receipt threads with this GIL switch interval (enact_proxy/sidecar.py); the
    # default 5 ms would measure GIL hand-offs between the writer threads rather than the store.
    sys.setswitchinterval(0.0001)
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--writers", type=int, nargs="+", default=[1, 16])
    parser.add_argument("--dir", default=None, help="folder on the disk to measure (default: a temp folder)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="enact-bench-receipts-", dir=args.dir))
    results = []
    for writers in args.writers:
        naive, enact, ratios, verified = [], [], [], True
        for round_no in range(args.rounds):
            base, _ = naive_files(root / f"naive-{writers}-{round_no}", writers, args.seconds)
            rate, ok = enact_store(root / f"enact-{writers}-{round_no}", writers, args.seconds)
            verified &= ok
            naive.append(base)
            enact.append(rate)
            ratios.append(rate / base)
            print(f"  writers={writers} round {round_no + 1}: naive {base:8.0f}/s  enact {rate:8.0f}/s  "
                  f"verified={ok}", flush=True)
        results.append({"writers": writers, "naive_per_s": spread(naive), "enact_per_s": spread(enact),
                        "ratio": spread(ratios), "verified": verified})
    print("| writers | naive fsync'd file per receipt /s | Enact ReceiptStore /s | ratio | verify_directory |")
    print("|---|---|---|---|---|")
    for r in results:
        print(f"| {r['writers']} | {fmt(r['naive_per_s'], 0)} | {fmt(r['enact_per_s'], 0)} | "
              f"**{fmt(r['ratio'], 2)}×** | {'all OK' if r['verified'] else 'FAILED'} |")
    path = save("receipts", {"args": vars(args), "results": results, "folder": str(root)})
    print(f"results: {path}")


if __name__ == "__main__":
    main()
