"""Reading receipts for the admin API and console: newest first, filtered, one by run_id."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any


def iter_receipts(directory: Path) -> Iterator[dict[str, Any]]:
    """Every receipt record of the log under ``directory``; a torn last line is no record."""
    if not directory.is_dir():
        return
    # Segments in log order: by the first seq their names carry (SPEC §6), not by folder.
    for path in sorted(directory.glob("*/*.jsonl"), key=lambda p: int(p.stem) if p.stem.isdigit() else -1):
        with path.open("rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    break  # a torn last line is no record
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and record.get("kind", "receipt") == "receipt":
                    yield record


def query(directory: Path, *, decision: str | None = None, action: str | None = None, actor: str | None = None,
          since: datetime | None = None, limit: int = 100) -> list[dict[str, Any]]:
    """Newest first; ``action`` matches a prefix (``github.`` or ``github.merge_pr``)."""
    found = []
    for record in iter_receipts(directory):
        if decision and record.get("decision") != decision:
            continue
        if action and not str(record.get("action") or "").startswith(action):
            continue
        if actor and record.get("actor_email") != actor:
            continue
        if since and str(record.get("timestamp", "")) < since.isoformat().replace("+00:00", "Z"):
            continue
        found.append(record)
    found.sort(key=lambda r: (str(r.get("timestamp", "")), r.get("seq", 0)), reverse=True)
    return found[:limit]


def find(directory: Path, run_id: str) -> dict[str, Any] | None:
    for record in iter_receipts(directory):
        if record.get("run_id") == run_id:
            return record
    return None
