"""Counters over time for policies such as ``limit_tasks_per_contact``.

The default store is an embedded SQLite file beside the receipts; anything implementing
:class:`StateStore` (a shared PostgreSQL table, say) can replace it.
"""

from __future__ import annotations

import sqlite3
import threading
from datetime import datetime
from pathlib import Path
from typing import Protocol


class StateStore(Protocol):
    def count(self, key: str, since: datetime) -> int: ...

    def add(self, key: str, at: datetime) -> None: ...


class SqliteStateStore:
    def __init__(self, path: Path | str = ":memory:"):
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS events (key TEXT NOT NULL, at REAL NOT NULL)")
            self._db.execute("CREATE INDEX IF NOT EXISTS events_key_at ON events (key, at)")

    def count(self, key: str, since: datetime) -> int:
        with self._lock:
            row = self._db.execute(
                "SELECT count(*) FROM events WHERE key = ? AND at > ?", (key, since.timestamp())
            ).fetchone()
        return int(row[0])

    def add(self, key: str, at: datetime) -> None:
        with self._lock:
            self._db.execute("INSERT INTO events (key, at) VALUES (?, ?)", (key, at.timestamp()))

    def close(self) -> None:
        with self._lock:
            self._db.close()
