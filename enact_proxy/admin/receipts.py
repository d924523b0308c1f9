"""Reading receipts for the admin API and console: newest first, filtered, one by run_id.

The console polls ``/api/receipts`` every 2 s while it is open, and this runs in the sidecar's own
process (on the admin thread, sharing the GIL with the proxy), so a query must cost what it returns,
not what the log holds: segments are read backwards from the newest, a line is parsed only when its
bytes can match the filters (records are canonical JSON, SPEC §6), and the scan stops once ``limit``
receipts matched, once it is past ``since`` (with slack for receipts written after their decision), or
after ``MAX_SCANNED`` lines (the answer then says the search was not complete).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

CHUNK = 256 * 1024
MAX_SCANNED = 200_000  # lines one query reads at most
# A receipt is appended when its action's outcome is known, so one decided earlier may sit a little
# later in the log than one decided after it; past ``since`` by this much, nothing older can follow.
SINCE_SLACK = timedelta(minutes=10)


def segments_newest_first(directory: Path) -> list[Path]:
    """``<dir>/<YYYY-MM-DD>/<first seq>.jsonl``, ordered by their first seq (not by folder), newest first."""
    found = []
    for path in directory.glob("*/*.jsonl"):
        if path.stem.isdigit():
            found.append((int(path.stem), path))
    return [path for _, path in sorted(found, reverse=True)]


def lines_backwards(path: Path) -> Iterator[bytes]:
    """The complete lines of a segment, last first. A last line without ``\\n`` is a torn write: skipped."""
    with path.open("rb") as handle:
        position = handle.seek(0, os.SEEK_END)
        buffer = b""
        torn = True  # until the last "\n" is found, the bytes belong to a torn last line
        while position > 0:
            step = min(CHUNK, position)
            position -= step
            handle.seek(position)
            buffer = handle.read(step) + buffer
            if torn:
                cut = buffer.rfind(b"\n")
                if cut < 0:
                    buffer = b""
                    continue
                buffer, torn = buffer[:cut], False
            parts = buffer.split(b"\n")
            buffer = parts[0]  # may continue before ``position``: completed by the next chunk
            for line in reversed(parts[1:]):
                if line:
                    yield line
        if buffer and not torn:
            yield buffer


def _hint(value: str, exact: bool = True) -> bytes:
    """The bytes a canonical record holds for a string field's ``value`` (or a prefix of it)."""
    text = json.dumps(value, ensure_ascii=False)
    return (text if exact else text[:-1]).encode("utf-8")


def _receipts_newest_first(directory: Path, hints: list[bytes], stats: dict[str, Any],
                            budget: int | None) -> Iterator[dict[str, Any]]:
    hints = [b'"receipt"', *hints]
    for path in segments_newest_first(directory):
        for line in lines_backwards(path):
            stats["scanned"] += 1
            if budget is not None and stats["scanned"] > budget:
                stats["complete"] = False
                return
            if not all(hint in line for hint in hints):
                continue  # cannot match: not worth parsing
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("kind") == "receipt":
                yield record


def query(directory: Path, *, decision: str | None = None, action: str | None = None, actor: str | None = None,
          since: datetime | None = None, limit: int = 100, stats: dict[str, Any] | None = None
          ) -> list[dict[str, Any]]:
    """Newest first; ``action`` matches a prefix (``github.`` or ``github.merge_pr``). ``stats`` (when
    given) gets ``scanned`` (lines read) and ``complete`` (False when the scan stopped at MAX_SCANNED)."""
    stats = stats if stats is not None else {}
    stats.update(scanned=0, complete=True)
    if not directory.is_dir():
        return []
    hints = [_hint(decision)] if decision else []
    hints += [_hint(action, exact=False)] if action else []
    hints += [_hint(actor)] if actor else []
    since_text = _utc_text(since) if since else None
    stop_text = _utc_text(since - SINCE_SLACK) if since else None
    found = []
    for record in _receipts_newest_first(directory, hints, stats, budget=MAX_SCANNED):
        timestamp = str(record.get("timestamp", ""))
        if stop_text and timestamp < stop_text:
            break
        if decision and record.get("decision") != decision:
            continue
        if action and not str(record.get("action") or "").startswith(action):
            continue
        if actor and record.get("actor_email") != actor:
            continue
        if since_text and timestamp < since_text:
            continue
        found.append(record)
        if len(found) >= limit:
            break
    found.sort(key=lambda r: (str(r.get("timestamp", "")), r.get("seq", 0)), reverse=True)
    return found[:limit]


def find(directory: Path, run_id: str) -> dict[str, Any] | None:
    """The receipt ``run_id`` (a person asked for this one: the whole log may be read)."""
    if not directory.is_dir():
        return None
    stats: dict[str, Any] = {"scanned": 0, "complete": True}
    for record in _receipts_newest_first(directory, [_hint(run_id)], stats, budget=None):
        if record.get("run_id") == run_id:
            return record
    return None


def _utc_text(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
