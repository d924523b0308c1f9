"""Check every signature, the hash chain and HEAD of a receipts directory (SPEC §6)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from enact_proxy.receipts.signing import ReceiptKey, receipt_hash
from enact_proxy.receipts.store import HEAD


@dataclass(frozen=True)
class Problem:
    where: str  # a run_id, or a file path when the file has none
    what: str


@dataclass
class VerifyReport:
    checked: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def add(self, where: str, what: str) -> None:
        self.problems.append(Problem(where, what))


def load_receipts(directory: Path) -> list[tuple[Path, Any]]:
    found: list[tuple[Path, Any]] = []
    for path in sorted(directory.rglob("*.json")):
        try:
            found.append((path, json.loads(path.read_bytes())))
        except (OSError, ValueError):
            found.append((path, None))
    return found


def verify_directory(directory: Path | str, key: ReceiptKey) -> VerifyReport:
    directory = Path(directory)
    report = VerifyReport()
    records: dict[str, dict[str, Any]] = {}  # hash -> receipt
    for path, record in load_receipts(directory):
        report.checked += 1
        where = _where(path, record)
        if not isinstance(record, dict) or "run_id" not in record:
            report.add(where, "not a receipt (unreadable JSON or no run_id)")
            continue
        if path.stem != record["run_id"]:
            report.add(where, f"file name {path.name} does not carry its run_id (moved or swapped)")
        signature = record.get("signature")
        if isinstance(signature, dict) and signature.get("key_id") != key.key_id:
            report.add(where, f"signed with another key (key_id {signature.get('key_id')})")
        elif not key.verify(record):
            report.add(where, "signature does not verify (edited or forged)")
        records[receipt_hash(record)] = record
    _check_chain(records, report)
    _check_head(directory, key, records, report)
    return report


def _check_chain(records: dict[str, dict[str, Any]], report: VerifyReport) -> None:
    successors: dict[str | None, list[dict[str, Any]]] = {}
    for record in records.values():
        successors.setdefault(record.get("prev_hash"), []).append(record)
    for prev, followers in successors.items():
        if len(followers) > 1:
            names = ", ".join(sorted(r["run_id"] for r in followers))
            what = "several chains start here" if prev is None else f"chain forks after {prev[:12]}"
            for r in followers:
                report.add(r["run_id"], f"{what} ({names}): reordered or forged")
        if prev is not None and prev not in records:
            for r in followers:
                report.add(r["run_id"], "the receipt before it is missing or was edited (prev_hash not found)")
    # Timestamps are decision times and a pass joins the chain when its outcome is known, so they
    # need not rise along the chain; order is what the signed prev_hash links say.


def _check_head(directory: Path, key: ReceiptKey, records: dict[str, dict[str, Any]],
                report: VerifyReport) -> None:
    path = directory / HEAD
    if not path.exists():
        if records:
            report.add("HEAD", "HEAD is missing")
        return
    try:
        head = json.loads(path.read_bytes())
    except (OSError, ValueError):
        report.add("HEAD", "HEAD is unreadable")
        return
    if not isinstance(head, dict) or not key.verify(head):
        report.add("HEAD", "HEAD signature does not verify (edited or forged)")
        return
    if head.get("hash") not in records:
        report.add(str(head.get("run_id")), "the newest receipt named by HEAD is missing or was edited")
    elif any(r.get("prev_hash") == head["hash"] for r in records.values()):
        report.add("HEAD", "receipts follow the one HEAD names as newest")
    if head.get("count") != len(records):
        report.add("HEAD", f"HEAD counts {head.get('count')} receipts, the directory holds {len(records)}")


def _where(path: Path, record: Any) -> str:
    if isinstance(record, dict) and isinstance(record.get("run_id"), str):
        return record["run_id"]
    return str(path)
