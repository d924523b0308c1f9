"""Reading the receipt log for the admin API (enact_proxy/admin/receipts.py): backwards from the newest,
only as far as a query needs, with the same answers a full read would give."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from enact_proxy.admin import receipts

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def canonical(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def receipt(seq: int, minutes: float, decision: str = "PASS", action: str = "github.read",
            actor: str = "agent@company.com", kind: str = "receipt") -> dict[str, Any]:
    return {"kind": kind, "seq": seq, "run_id": f"00000000-0000-0000-0000-{seq:012d}", "decision": decision,
            "action": action, "actor_email": actor, "payload": {"note": "</script> \u00e9"},
            "timestamp": (T0 + timedelta(minutes=minutes)).isoformat().replace("+00:00", "Z")}


def write_log(directory: Path, records: list[dict[str, Any]], per_segment: int = 4, torn: bytes = b"") -> None:
    """Segments of ``per_segment`` records under day folders, as the writer lays them out."""
    for start in range(0, len(records), per_segment):
        day = directory / ("2026-11-30" if start == 0 else "2026-12-01")
        day.mkdir(parents=True, exist_ok=True)
        chunk = records[start:start + per_segment]
        (day / f"{chunk[0]['seq']:012d}.jsonl").write_bytes(b"".join(canonical(r) + b"\n" for r in chunk))
    if torn:
        last = max(directory.glob("*/*.jsonl"), key=lambda p: int(p.stem))
        last.write_bytes(last.read_bytes() + torn)


@pytest.fixture
def log(tmp_path: Path) -> Path:
    records = []
    for i in range(20):
        records.append({**receipt(2 * i, i, kind="intent"), "run_id": f"00000000-0000-0000-0000-{2 * i + 1:012d}"})
        records.append(receipt(2 * i + 1, i, decision="BLOCK" if i % 3 == 0 else "PASS",
                               action="github.merge_pr" if i % 2 else "hubspot.create_contact",
                               actor="alice@x.com" if i == 7 else "agent@company.com"))
    write_log(tmp_path, records, torn=b'{"kind":"receipt","seq":40,"decis')
    return tmp_path


def test_lines_backwards_across_chunks_skips_a_torn_last_line(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(receipts, "CHUNK", 5)
    path = tmp_path / "000000000000.jsonl"
    path.write_bytes(b"first line\nsecond\n\nthird one is longer\ntorn wri")
    assert list(receipts.lines_backwards(path)) == [b"third one is longer", b"second", b"first line"]
    path.write_bytes(b"a\nb\n")
    assert list(receipts.lines_backwards(path)) == [b"b", b"a"]
    path.write_bytes(b"only a torn write, longer than one chunk")
    assert list(receipts.lines_backwards(path)) == []
    path.write_bytes(b"")
    assert list(receipts.lines_backwards(path)) == []


def test_query_newest_first_with_every_filter(log: Path) -> None:
    newest = receipts.query(log, limit=3)
    assert [r["seq"] for r in newest] == [39, 37, 35] and all(r["kind"] == "receipt" for r in newest)
    blocked = receipts.query(log, decision="BLOCK", limit=100)
    assert [r["seq"] for r in blocked] == [37, 31, 25, 19, 13, 7, 1]
    merges = receipts.query(log, action="github.", limit=100)
    assert {r["action"] for r in merges} == {"github.merge_pr"} and len(merges) == 10
    assert [r["seq"] for r in receipts.query(log, actor="alice@x.com")] == [15]
    recent = receipts.query(log, since=T0 + timedelta(minutes=17), limit=100)
    assert [r["seq"] for r in recent] == [39, 37, 35]
    assert receipts.query(log, decision="PASS", action="hubspot.", actor="nobody@x.com") == []


def test_a_query_reads_only_as_far_as_it_needs(log: Path) -> None:
    stats: dict[str, Any] = {}
    receipts.query(log, limit=2, stats=stats)
    assert stats == {"scanned": 3, "complete": True}  # two receipts and the intent between them
    receipts.query(log, since=T0 + timedelta(minutes=35), stats=stats)
    assert stats["scanned"] == 1  # the newest is 09:19, more than SINCE_SLACK before 09:35: nothing older can match
    receipts.query(log, since=T0 + timedelta(minutes=25), stats=stats)
    assert stats["scanned"] == 11  # back to 09:14, the first record older than 09:25 minus SINCE_SLACK


def test_the_scan_budget_is_reported(log: Path, monkeypatch) -> None:
    monkeypatch.setattr(receipts, "MAX_SCANNED", 10)
    stats: dict[str, Any] = {}
    found = receipts.query(log, actor="alice@x.com", stats=stats)
    assert found == [] and stats["complete"] is False  # alice's receipt is older than the budget reaches
    assert receipts.find(log, "00000000-0000-0000-0000-000000000015")["actor_email"] == "alice@x.com"


def test_find_returns_the_receipt_not_its_intent(log: Path) -> None:
    found = receipts.find(log, "00000000-0000-0000-0000-000000000003")
    assert found is not None and found["kind"] == "receipt" and found["payload"]["note"] == "</script> \u00e9"
    assert receipts.find(log, "00000000-0000-0000-0000-000000000002") is None  # no record has that run_id
    assert receipts.find(log, "ffffffff-0000-0000-0000-000000000000") is None
    assert receipts.find(log / "missing", "x") is None and receipts.query(log / "missing") == []
